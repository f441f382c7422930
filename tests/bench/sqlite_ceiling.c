/* SPDX-License-Identifier: MIT
 * sqlite_ceiling.c: the raw SQLite ceiling of the PUT write path. Applies
 * the node's migrations (node/schema.h) to a temp database with the node's
 * pragmas (WAL, synchronous=NORMAL, cache_size=-16000, foreign_keys=ON) and
 * inserts, per "write", the rows the node writes for one PUT, in batched
 * transactions of --batch writes, with no HTTP, JSON or hashing:
 *
 *   rows  (default): blob row (1 KiB, unique) + artifact_versions row +
 *                    change_events row (~750-byte body) + provenance row
 *   full:            rows + what the node also does per PUT: read the head
 *                    (artifacts), SELECT MAX(seq), UPDATE the head row, and
 *                    replace the search_fts row (delete + insert 1 KiB)
 *
 *   sqlite_ceiling --db PATH [--writes N] [--batch B] [--variant rows|full]
 *                  [--artifacts 1000] [--size 1024]
 *
 * Prints one JSON line: writes/s, rows/s, batch, seconds. */
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../node/schema.h"
#include "bench_common.h"

#define N_STMTS 10

enum {
    S_BLOB,
    S_VERSION,
    S_EVENT,
    S_PROV,
    S_HEAD_READ,
    S_MAXSEQ,
    S_HEAD_UPDATE,
    S_FTS_DEL,
    S_FTS_INS,
    S_ART_INS
};

static const char *const sqls[N_STMTS] = {
    "INSERT INTO blobs(hash, size, data) VALUES (?1, ?2, ?3)",
    "INSERT INTO artifact_versions(uri, version_id, version, parent_id,"
    " merged_from, content_hash, size, content_type, deleted, author_id,"
    " approved_by, summary, created_at, origin_node, origin_region,"
    " origin_seq, payload_state, local_seq) VALUES (?1, ?2, ?3, ?4, NULL,"
    " ?5, ?6, 'application/json', 0, 'admin', NULL, NULL, ?7, 'eu-1', 'eu',"
    " ?8, 'inline', ?8)",
    "INSERT INTO change_events(seq, event_id, artifact_uri, org, domain,"
    " version_id, author_id, created_us, body) VALUES (?1, ?2, ?3, 'bench',"
    " 'load', ?4, 'admin', ?5, ?6)",
    "INSERT INTO provenance(actor_id, operation, artifact_uri,"
    " version_touched, version_id, downstream_uri, detail, created_at)"
    " VALUES ('admin', 'write', ?1, ?2, ?3, NULL, NULL, ?4)",
    "SELECT head_version_id, head_version, deleted_at IS NOT NULL, name,"
    " content_type FROM artifacts WHERE uri = ?1",
    "SELECT COALESCE(MAX(seq), 0) + 1 FROM change_events",
    "UPDATE artifacts SET content_type = ?2, updated_at = ?3,"
    " head_version_id = ?4, head_version = ?5 WHERE uri = ?1",
    "DELETE FROM search_fts WHERE rowid = ?1 AND uri = ?2",
    "INSERT INTO search_fts(rowid, uri, org, domain, name, summary, body)"
    " VALUES (?1, ?2, 'bench', 'load', ?3, NULL, ?4)",
    "INSERT INTO artifacts(uri, org, domain, name, content_type, created_at,"
    " updated_at, head_version_id, head_version, deleted_at, fork_id)"
    " VALUES (?1, 'bench', 'load', ?2, 'application/json', ?3, ?3, ?4, 0,"
    " NULL, NULL)",
};

typedef struct cfg {
    const char *db_path;
    long long writes;
    int batch, artifacts;
    size_t size;
    bool full;
} cfg;

static int
exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlite_ceiling: %s: %s\n", sql,
                err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int
step(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite_ceiling: %s\n", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static void
fmt_time(int64_t us, char out[64])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

static int
one_write(const cfg *c, sqlite3 *db, sqlite3_stmt **st, long long k,
          char *content, int64_t *seq)
{
    char uri[64], hash[80], vid[80], parent[80], created[64], ev_id[64];
    char body[1024];
    int a = (int)(k % c->artifacts);
    int64_t now = bc_wall_us(), version = k / c->artifacts + 2;
    int n;

    snprintf(uri, sizeof(uri), "ctx://bench/load/a%06d", a);
    snprintf(hash, sizeof(hash), "sha256:%064llx", (unsigned long long)k);
    snprintf(vid, sizeof(vid), "v:%064llx", (unsigned long long)k);
    snprintf(parent, sizeof(parent), "v:%064llx",
             k >= c->artifacts ? (unsigned long long)(k - c->artifacts)
                               : 0xffffffffull + (unsigned long long)a);
    fmt_time(now, created);
    /* unique content: patch the counter into the first 16 bytes */
    snprintf(content, 17, "%016llx", (unsigned long long)k);
    content[16] = 'x';

    if (c->full) {
        sqlite3_bind_text(st[S_HEAD_READ], 1, uri, -1, SQLITE_STATIC);
        if (step(db, st[S_HEAD_READ]) != 0 || step(db, st[S_MAXSEQ]) != 0)
            return -1;
    }
    (*seq)++;
    snprintf(ev_id, sizeof(ev_id), "eu-1:%lld", (long long)*seq);
    n = snprintf(body, sizeof(body),
                 "{\"event_id\":\"%s\",\"event_type\":\"artifact.updated\","
                 "\"artifact_uri\":\"%s\",\"org\":\"bench\",\"domain\":"
                 "\"load\",\"version\":%lld,\"previous_version\":%lld,"
                 "\"version_id\":\"%s\",\"parent_id\":\"%s\",\"merged_from\":"
                 "[],\"author_id\":\"admin\",\"actor_type\":\"human\","
                 "\"agent_class\":null,\"approved_by\":null,\"summary\":null,"
                 "\"content_type\":\"application/json\",\"content_hash\":"
                 "\"%s\",\"size\":%zu,\"created_at\":\"%s\",\"origin\":"
                 "{\"node_id\":\"eu-1\",\"region\":\"eu\",\"seq\":%lld},"
                 "\"deleted\":false,\"home_region\":null,\"payload_state\":"
                 "\"inline\"}",
                 ev_id, uri, (long long)version, (long long)version - 1, vid,
                 parent, hash, c->size, created, (long long)*seq);
    if (n < 0 || (size_t)n >= sizeof(body))
        return -1;

    sqlite3_bind_text(st[S_BLOB], 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_BLOB], 2, (sqlite3_int64)c->size);
    sqlite3_bind_blob(st[S_BLOB], 3, content, (int)c->size, SQLITE_STATIC);
    if (step(db, st[S_BLOB]) != 0)
        return -1;

    sqlite3_bind_text(st[S_VERSION], 1, uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[S_VERSION], 2, vid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_VERSION], 3, version);
    sqlite3_bind_text(st[S_VERSION], 4, parent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[S_VERSION], 5, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_VERSION], 6, (sqlite3_int64)c->size);
    sqlite3_bind_text(st[S_VERSION], 7, created, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_VERSION], 8, *seq);
    if (step(db, st[S_VERSION]) != 0)
        return -1;

    if (c->full) {
        sqlite3_bind_text(st[S_HEAD_UPDATE], 1, uri, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_HEAD_UPDATE], 2, "application/json", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st[S_HEAD_UPDATE], 3, created, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_HEAD_UPDATE], 4, vid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[S_HEAD_UPDATE], 5, version);
        if (step(db, st[S_HEAD_UPDATE]) != 0)
            return -1;
    }

    sqlite3_bind_int64(st[S_EVENT], 1, *seq);
    sqlite3_bind_text(st[S_EVENT], 2, ev_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[S_EVENT], 3, uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[S_EVENT], 4, vid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_EVENT], 5, now);
    sqlite3_bind_text(st[S_EVENT], 6, body, n, SQLITE_STATIC);
    if (step(db, st[S_EVENT]) != 0)
        return -1;

    if (c->full) {
        sqlite3_bind_int64(st[S_FTS_DEL], 1, a + 1);
        sqlite3_bind_text(st[S_FTS_DEL], 2, uri, -1, SQLITE_STATIC);
        if (step(db, st[S_FTS_DEL]) != 0)
            return -1;
        sqlite3_bind_int64(st[S_FTS_INS], 1, a + 1);
        sqlite3_bind_text(st[S_FTS_INS], 2, uri, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_FTS_INS], 3, uri + 17, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_FTS_INS], 4, content, (int)c->size,
                          SQLITE_STATIC);
        if (step(db, st[S_FTS_INS]) != 0)
            return -1;
    }

    sqlite3_bind_text(st[S_PROV], 1, uri, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[S_PROV], 2, version);
    sqlite3_bind_text(st[S_PROV], 3, vid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[S_PROV], 4, created, -1, SQLITE_STATIC);
    return step(db, st[S_PROV]);
}

static int
seed_artifacts(const cfg *c, sqlite3 *db, sqlite3_stmt **st)
{
    char uri[64], vid[80], created[64];
    fmt_time(bc_wall_us(), created);
    if (exec(db, "BEGIN") != 0)
        return -1;
    for (int a = 0; a < c->artifacts; a++) {
        snprintf(uri, sizeof(uri), "ctx://bench/load/a%06d", a);
        snprintf(vid, sizeof(vid), "v:%064llx",
                 0xffffffffull + (unsigned long long)a);
        sqlite3_bind_text(st[S_ART_INS], 1, uri, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_ART_INS], 2, uri + 17, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_ART_INS], 3, created, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[S_ART_INS], 4, vid, -1, SQLITE_STATIC);
        if (step(db, st[S_ART_INS]) != 0)
            return -1;
    }
    return exec(db, "COMMIT");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"writes", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'b'},
        {"variant", required_argument, NULL, 'v'},
        {"artifacts", required_argument, NULL, 'a'},
        {"size", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    cfg c = {NULL, 200000, 64, 1000, 1024, false};
    sqlite3 *db = NULL;
    sqlite3_stmt *st[N_STMTS] = {NULL};
    char *content = NULL;
    int64_t seq = 0, t0, t1;
    int o, rc = 2;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': c.db_path = optarg; break;
        case 'n': c.writes = atoll(optarg); break;
        case 'b': c.batch = atoi(optarg); break;
        case 'v': c.full = strcmp(optarg, "full") == 0; break;
        case 'a': c.artifacts = atoi(optarg); break;
        case 's': c.size = (size_t)atol(optarg); break;
        default: goto out;
        }
    }
    if (c.db_path == NULL || c.writes < 1 || c.batch < 1 ||
        c.artifacts < 1 || c.size < 32 || c.size > (1u << 20)) {
        fprintf(stderr, "usage: sqlite_ceiling --db PATH [--writes N] "
                        "[--batch B] [--variant rows|full] [--artifacts N] "
                        "[--size BYTES]\n");
        goto out;
    }
    rc = 1;
    content = malloc(c.size);
    if (content == NULL)
        goto out;
    for (size_t i = 0; i < c.size; i++)
        content[i] = (char)('a' + i % 26);
    if (sqlite3_open(c.db_path, &db) != SQLITE_OK) {
        fprintf(stderr, "sqlite_ceiling: cannot open %s\n", c.db_path);
        goto out;
    }
    if (exec(db, "PRAGMA journal_mode=WAL") != 0 ||
        exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"
                 " PRAGMA cache_size=-16000;") != 0)
        goto out;
    for (int i = 0; i < CS_MIGRATION_COUNT; i++) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", i + 1);
        if (exec(db, "BEGIN") != 0 || exec(db, cs_migrations[i]) != 0 ||
            exec(db, pragma) != 0 || exec(db, "COMMIT") != 0)
            goto out;
    }
    for (int i = 0; i < N_STMTS; i++) {
        if (sqlite3_prepare_v2(db, sqls[i], -1, &st[i], NULL) != SQLITE_OK) {
            fprintf(stderr, "sqlite_ceiling: prepare: %s\n",
                    sqlite3_errmsg(db));
            goto out;
        }
    }
    if (seed_artifacts(&c, db, st) != 0)
        goto out;

    t0 = bc_mono_us();
    for (long long k = 0; k < c.writes;) {
        if (exec(db, "BEGIN IMMEDIATE") != 0)
            goto out;
        for (int b = 0; b < c.batch && k < c.writes; b++, k++)
            if (one_write(&c, db, st, k, content, &seq) != 0)
                goto out;
        if (exec(db, "COMMIT") != 0)
            goto out;
    }
    t1 = bc_mono_us();
    {
        double secs = (double)(t1 - t0) / 1e6;
        int rows = 4;
        printf("{\"variant\":\"%s\",\"writes\":%lld,\"batch\":%d,"
               "\"rows_per_write\":%d,\"seconds\":%.3f,\"writes_per_s\":%.1f,"
               "\"rows_per_s\":%.1f}\n",
               c.full ? "full" : "rows", c.writes, c.batch, rows, secs,
               (double)c.writes / secs, (double)c.writes * rows / secs);
    }
    rc = 0;
out:
    for (int i = 0; i < N_STMTS; i++)
        sqlite3_finalize(st[i]);
    if (db != NULL)
        sqlite3_close(db);
    free(content);
    return rc;
}
