/* SPDX-License-Identifier: MIT
 * store.c: SQLite store with a single group-committing writer thread.
 *
 * Why one writer: SQLite allows one writer at a time anyway; funnelling all
 * writes through one thread lets many concurrent requests share a single
 * COMMIT (and its fsync), and it makes change-feed order equal to commit
 * order, so that a feed reader never sees seq N+1 before seq N. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "schema.h"

#define GROUP_MAX 512

typedef struct wjob {
    cs_write_fn fn;
    void *arg;
    void (*done)(void *, cs_err); /* async jobs */
    cs_err rv;
    cs_errbuf eb;
    bool finished;
    bool is_async;
    struct wjob *next;
} wjob;

typedef struct pubev {
    int64_t seq;
    char *msg; /* 8-byte seq + uri + NUL + body + NUL */
    size_t len;
    struct pubev *next;
} pubev;

struct cs_tx {
    cs_store *store;
    sqlite3 *db;
    pubev *events, **events_tail; /* events of the current job */
    bool grants_changed;
};

struct cs_store {
    char *data_dir;
    char *db_path;
    char node_id[129], region[65], epoch[33];
    bool sync_full;
    size_t blob_inline_max;
    int lock_fd; /* flock on DIR/ctxsync.lock while open */
    sqlite3 *wdb;
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    wjob *q_head, *q_tail;
    bool stopping;
    nng_socket pub;
    _Atomic uint64_t grants_gen;
    _Atomic int64_t head_seq;
    char *lost_seqs; /* meta 'lost_seqs' (JSON text) or NULL */
    _Atomic uint64_t n_commits, n_writes, n_write_errors, n_group_max;

    /* the checkpointer: WAL frames are copied back into the database by
     * its own thread and connection, not by the writer after a commit */
    sqlite3 *ckdb;
    pthread_t ckpt;
    bool ckpt_running, ck_due, ck_stop;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    _Atomic int wal_frames;
    _Atomic uint64_t n_checkpoints, n_writer_checkpoints;
};

/* ---- statement cache: per connection, keyed by SQL pointer ---- */

typedef struct stmt_ent {
    sqlite3 *db;
    const char *sql;
    sqlite3_stmt *st;
} stmt_ent;

#define STMT_CACHE 128
static _Thread_local stmt_ent t_cache[STMT_CACHE];

sqlite3_stmt *
cs_stmt(sqlite3 *db, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) ^ ((uintptr_t)db >> 4);
    for (size_t i = 0; i < STMT_CACHE; i++) {
        stmt_ent *e = &t_cache[(h + i) % STMT_CACHE];
        if (e->st != NULL && e->db == db && e->sql == sql) {
            sqlite3_reset(e->st);
            sqlite3_clear_bindings(e->st);
            return e->st;
        }
        if (e->st == NULL) {
            if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                   &e->st, NULL) != SQLITE_OK) {
                cs_log(CS_LOG_ERROR, "DB-PREPARE", "%s: %s", sqlite3_errmsg(db),
                       sql);
                e->st = NULL;
                return NULL;
            }
            e->db = db;
            e->sql = sql;
            return e->st;
        }
    }
    /* Cache full: fall back to an uncached statement is not possible
     * without leaking; evict slot h. */
    stmt_ent *e = &t_cache[h % STMT_CACHE];
    sqlite3_finalize(e->st);
    e->st = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &e->st,
                           NULL) != SQLITE_OK) {
        cs_log(CS_LOG_ERROR, "DB-PREPARE", "%s", sqlite3_errmsg(db));
        return NULL;
    }
    e->db = db;
    e->sql = sql;
    return e->st;
}

/* Finalizes this thread's cached statements of db (before closing it). */
static void
stmt_cache_drop(sqlite3 *db)
{
    for (size_t i = 0; i < STMT_CACHE; i++) {
        if (t_cache[i].st != NULL && t_cache[i].db == db) {
            sqlite3_finalize(t_cache[i].st);
            t_cache[i].st = NULL;
            t_cache[i].db = NULL;
            t_cache[i].sql = NULL;
        }
    }
}

cs_err
cs_db_err(sqlite3 *db, int rc, cs_errbuf *eb)
{
    int prim = rc & 0xff;
    const char *m = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (prim == SQLITE_FULL)
        return cs_errf(eb, CS_EFULL, "storage full: %s", m);
    if (prim == SQLITE_CONSTRAINT)
        return cs_errf(eb, CS_ECONFLICT, "constraint: %s", m);
    if (prim == SQLITE_IOERR || prim == SQLITE_CANTOPEN)
        return cs_errf(eb, CS_EIO, "storage i/o error: %s", m);
    return cs_errf(eb, CS_EDB, "database error: %s", m);
}

static int
exec(sqlite3 *db, const char *sql, cs_errbuf *eb)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        cs_errf(eb, CS_EDB, "%s", msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

static int
open_conn(const char *path, int flags, bool sync_full, sqlite3 **out,
          cs_errbuf *eb)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        cs_errf(eb, CS_EIO, "cannot open %s: %s", path,
                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 10000);
    rc = exec(db,
              sync_full ? "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;"
                          " PRAGMA cache_size=-16000;"
                        : "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"
                          " PRAGMA cache_size=-16000;",
              eb);
    if (rc != SQLITE_OK) {
        sqlite3_close_v2(db);
        return rc;
    }
    *out = db;
    return SQLITE_OK;
}

static char *
path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static cs_err
migrate(sqlite3 *db, cs_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int ver = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return cs_errf(eb, CS_EDB, "cannot read schema version: %s",
                       sqlite3_errmsg(db));
    }
    ver = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (ver > CS_MIGRATION_COUNT)
        return cs_errf(eb, CS_EINVAL,
                       "database schema version %d is newer than this "
                       "ctxsync-node supports (%d): upgrade ctxsync-node",
                       ver, CS_MIGRATION_COUNT);
    for (int i = ver; i < CS_MIGRATION_COUNT; i++) {
        char pragma[64];
        if (exec(db, "BEGIN IMMEDIATE", eb) != SQLITE_OK)
            return CS_EDB;
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", i + 1);
        if (exec(db, cs_migrations[i], eb) != SQLITE_OK ||
            exec(db, pragma, eb) != SQLITE_OK) {
            exec(db, "ROLLBACK", NULL);
            return cs_errf(eb, CS_EDB, "migration %d failed: %s", i + 1,
                           eb ? eb->msg : "");
        }
        if (exec(db, "COMMIT", eb) != SQLITE_OK)
            return CS_EDB;
        cs_log(CS_LOG_NOTICE, "DB-MIGRATE", "schema migrated to version %d",
               i + 1);
    }
    return CS_OK;
}

static cs_err
mkdir_p(const char *dir, cs_errbuf *eb)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cs_errf(eb, CS_EIO, "cannot create %s: %s", dir,
                       strerror(errno));
    return CS_OK;
}

cs_err
cs_store_init(const char *data_dir, const char *node_id, const char *region,
              cs_errbuf *eb)
{
    cs_err rv = CS_OK;
    char *dbp = NULL, *blobs = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char epoch[33], now[CS_TIME_LEN];
    struct stat sb;

    dbp = path_join(data_dir, "ctxsync.db");
    blobs = path_join(data_dir, "blobs");
    if (dbp == NULL || blobs == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    if (stat(dbp, &sb) == 0) {
        rv = cs_errf(eb, CS_ECONFLICT,
                     "%s already holds a ContextSync database; refusing to "
                     "overwrite it",
                     data_dir);
        goto out;
    }
    if ((rv = mkdir_p(data_dir, eb)) != CS_OK ||
        (rv = mkdir_p(blobs, eb)) != CS_OK)
        goto out;
    if (open_conn(dbp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, true, &db,
                  eb) != SQLITE_OK) {
        rv = CS_EIO;
        goto out;
    }
    if (exec(db, "PRAGMA journal_mode=WAL", eb) != SQLITE_OK) {
        rv = CS_EDB;
        goto out;
    }
    if ((rv = migrate(db, eb)) != CS_OK)
        goto out;
    if ((rv = cs_random_hex(epoch, 16)) != CS_OK)
        goto out;
    cs_time_format(cs_now_us(), now);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO meta(key, value) VALUES"
                           " ('node_id', ?1), ('region', ?2), ('epoch', ?3),"
                           " ('created_at', ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = cs_db_err(db, SQLITE_ERROR, eb);
        goto out;
    }
    sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, epoch, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = cs_db_err(db, sqlite3_errcode(db), eb);
        goto out;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    free(dbp);
    free(blobs);
    return rv;
}

/* Takes the data directory's lock (one process at a time: a serving node,
 * or an offline tool such as new-epoch). Returns the fd or -1. */
static int
lock_data_dir(const char *data_dir, cs_errbuf *eb)
{
    char *p = path_join(data_dir, "ctxsync.lock");
    int fd;
    if (p == NULL)
        return -1;
    fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0) {
        cs_errf(eb, CS_EIO, "cannot open the lock file in %s: %s", data_dir,
                strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        cs_errf(eb, CS_ECONFLICT,
                "%s is in use by another ctxsync-node process (stop it "
                "first)",
                data_dir);
        close(fd);
        return -1;
    }
    return fd;
}

/* One integer from a one-row query on an offline connection. */
static int
query_int(sqlite3 *db, const char *sql, int64_t *out, cs_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        cs_db_err(db, rc, eb);
    sqlite3_finalize(st);
    return rc;
}

/* Runs sql with text ?1 and, when b is not NULL, text ?2. */
static int
exec_text2(sqlite3 *db, const char *sql, const char *a, const char *b,
           cs_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b != NULL)
            sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    if (rc != SQLITE_OK)
        cs_db_err(db, rc, eb);
    sqlite3_finalize(st);
    return rc;
}

/* Opens DIR's database offline, with the directory lock held. */
static cs_err
open_offline(const char *data_dir, int *lock_fd, sqlite3 **db, cs_errbuf *eb)
{
    char *dbp = path_join(data_dir, "ctxsync.db");
    struct stat sb;
    cs_err rv = CS_OK;

    *lock_fd = -1;
    *db = NULL;
    if (dbp == NULL)
        return CS_ENOMEM;
    if (stat(dbp, &sb) != 0) {
        rv = cs_errf(eb, CS_ENOTFOUND, "no database in %s", data_dir);
        goto out;
    }
    *lock_fd = lock_data_dir(data_dir, eb);
    if (*lock_fd < 0) {
        rv = cs_errf(eb, CS_ECONFLICT,
                     "%s is in use: stop ctxsync-node first", data_dir);
        goto out;
    }
    if (open_conn(dbp, SQLITE_OPEN_READWRITE, true, db, eb) != SQLITE_OK) {
        close(*lock_fd);
        *lock_fd = -1;
        rv = CS_EIO;
    }
out:
    free(dbp);
    return rv;
}

cs_err
cs_store_peek_node_id(const char *data_dir, char *node_id, size_t sz,
                      cs_errbuf *eb)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int lock_fd;
    cs_err rv = open_offline(data_dir, &lock_fd, &db, eb);

    if (rv != CS_OK)
        return rv;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'node_id'",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        rv = cs_errf(eb, CS_EINVAL, "%s has no node identity", data_dir);
    else
        snprintf(node_id, sz, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    close(lock_fd);
    return rv;
}

/* Appends [from, to] to the JSON array text old (NULL: empty); at most
 * CS_LOST_RANGES_MAX ranges are kept: beyond, the two oldest merge (the
 * merged range may cover seqs that were not lost: a bridge then sends a
 * few events the target already holds, which ingest counts duplicate). */
#define CS_LOST_RANGES_MAX 32
static char *
lost_append(const char *old, int64_t from, int64_t to)
{
    json_t *a = old != NULL ? json_loads(old, 0, NULL) : NULL;
    char *out = NULL;
    if (!json_is_array(a)) {
        json_decref(a);
        a = json_array();
    }
    if (a == NULL)
        return NULL;
    json_array_append_new(a, json_pack("[I,I]", (json_int_t)from, (json_int_t)to));
    while (json_array_size(a) > CS_LOST_RANGES_MAX) {
        json_t *r1 = json_array_get(a, 1);
        json_array_set_new(a, 1, json_pack("[I,I]",
            json_integer_value(json_array_get(json_array_get(a, 0), 0)),
            json_integer_value(json_array_get(r1, 1))));
        json_array_remove(a, 0);
    }
    out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return out;
}

cs_err
cs_store_new_epoch(const char *data_dir, int64_t seq_floor,
                   cs_epoch_change *out, cs_errbuf *eb)
{
    cs_err rv;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int lock_fd = -1;
    int64_t given = 0;
    char *lost = NULL, num[32];

    memset(out, 0, sizeof(*out));
    if ((rv = open_offline(data_dir, &lock_fd, &db, eb)) != CS_OK)
        return rv;
    if (exec(db, "BEGIN IMMEDIATE", eb) != SQLITE_OK) {
        rv = CS_EDB;
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'epoch'",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rv = cs_errf(eb, CS_EINVAL, "database has no epoch");
        goto rollback;
    }
    snprintf(out->old_epoch, sizeof(out->old_epoch), "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    /* the seq floor of an earlier new-epoch counts too */
    if (query_int(db, CS_SQL_LAST_SEQ, &given, eb) != SQLITE_OK) {
        rv = CS_EDB;
        goto rollback;
    }
    out->restored_seq = given;
    out->next_seq = given + 1;
    if (seq_floor > given + 1) {
        const unsigned char *old = NULL;
        out->next_seq = seq_floor;
        out->lost_from = given + 1;
        out->lost_to = seq_floor - 1;
        if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'lost_seqs'",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            old = sqlite3_column_text(st, 0);
        lost = lost_append((const char *)old, out->lost_from, out->lost_to);
        sqlite3_finalize(st);
        st = NULL;
        if (lost == NULL) {
            rv = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto rollback;
        }
        /* The next local seq is the floor: move the AUTOINCREMENT
         * counter (a row in sqlite_sequence exists once an event was
         * ever written; insert it otherwise). */
        snprintf(num, sizeof(num), "%lld", (long long)(seq_floor - 1));
        if (exec_text2(db, "DELETE FROM sqlite_sequence WHERE name = ?1",
                       "change_events", NULL, eb) != SQLITE_OK ||
            exec_text2(db, "INSERT INTO sqlite_sequence(name, seq)"
                           " VALUES (?1, CAST(?2 AS INTEGER))",
                       "change_events", num, eb) != SQLITE_OK ||
            exec_text2(db, "INSERT INTO meta(key, value) VALUES ('lost_seqs', ?1)"
                           " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       lost, NULL, eb) != SQLITE_OK) {
            rv = CS_EDB;
            goto rollback;
        }
    }
    if ((rv = cs_random_hex(out->new_epoch, 16)) != CS_OK)
        goto rollback;
    if (exec_text2(db, "UPDATE meta SET value = ?1 WHERE key = 'epoch'",
                   out->new_epoch, NULL, eb) != SQLITE_OK) {
        rv = CS_EDB;
        goto rollback;
    }
    if (exec(db, "COMMIT", eb) != SQLITE_OK)
        rv = CS_EDB;
    goto out;
rollback:
    exec(db, "ROLLBACK", NULL);
out:
    free(lost);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    if (lock_fd >= 0)
        close(lock_fd);
    return rv;
}

static cs_err
load_identity(cs_store *s, cs_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(s->wdb, "SELECT key, value FROM meta", -1, &st,
                           NULL) != SQLITE_OK)
        return cs_db_err(s->wdb, SQLITE_ERROR, eb);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (strcmp(k, "node_id") == 0) {
            snprintf(s->node_id, sizeof(s->node_id), "%s", v);
            found++;
        } else if (strcmp(k, "region") == 0) {
            snprintf(s->region, sizeof(s->region), "%s", v);
            found++;
        } else if (strcmp(k, "epoch") == 0) {
            snprintf(s->epoch, sizeof(s->epoch), "%s", v);
            found++;
        } else if (strcmp(k, "lost_seqs") == 0) {
            free(s->lost_seqs);
            s->lost_seqs = strdup(v);
        }
    }
    sqlite3_finalize(st);
    if (found != 3)
        return cs_errf(eb, CS_EINVAL,
                       "database has no node identity; was it created with "
                       "'ctxsync-node init'?");
    if (sqlite3_prepare_v2(s->wdb, "SELECT COALESCE(MAX(seq),0) FROM change_events",
                           -1, &st, NULL) != SQLITE_OK)
        return cs_db_err(s->wdb, SQLITE_ERROR, eb);
    if (sqlite3_step(st) == SQLITE_ROW)
        atomic_store(&s->head_seq, sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return CS_OK;
}

/* ---- the writer ---- */

static void
free_events(pubev *e)
{
    while (e != NULL) {
        pubev *n = e->next;
        free(e->msg);
        free(e);
        e = n;
    }
}

static void *
writer_main(void *arg)
{
    cs_store *s = arg;
    cs_tx tx = {.store = s, .db = s->wdb};

    for (;;) {
        wjob *batch, *j;
        size_t n = 0;
        pubev *all = NULL, **all_tail = &all;
        bool grants = false;
        int rc;
        cs_err commit_rv = CS_OK;
        cs_errbuf ceb = {{0}};

        pthread_mutex_lock(&s->mu);
        while (s->q_head == NULL && !s->stopping)
            pthread_cond_wait(&s->cv_work, &s->mu);
        if (s->q_head == NULL && s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* Take up to GROUP_MAX jobs. */
        batch = s->q_head;
        j = batch;
        n = 1;
        while (j->next != NULL && n < GROUP_MAX) {
            j = j->next;
            n++;
        }
        s->q_head = j->next;
        if (s->q_head == NULL)
            s->q_tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&s->mu);

        if (n > atomic_load(&s->n_group_max))
            atomic_store(&s->n_group_max, n);

        rc = exec(s->wdb, "BEGIN IMMEDIATE", &ceb);
        if (rc != SQLITE_OK)
            commit_rv = cs_db_err(s->wdb, rc, &ceb);
        for (j = batch; j != NULL; j = j->next) {
            if (commit_rv != CS_OK) {
                j->rv = commit_rv;
                j->eb = ceb;
                continue;
            }
            tx.events = NULL;
            tx.events_tail = &tx.events;
            tx.grants_changed = false;
            exec(s->wdb, "SAVEPOINT w", NULL);
            j->rv = j->fn(&tx, j->arg, &j->eb);
            if (j->rv == CS_OK) {
                exec(s->wdb, "RELEASE w", NULL);
                if (tx.events != NULL) {
                    *all_tail = tx.events;
                    all_tail = tx.events_tail;
                }
                grants = grants || tx.grants_changed;
            } else {
                exec(s->wdb, "ROLLBACK TO w; RELEASE w", NULL);
                free_events(tx.events);
            }
            tx.events = NULL;
        }
        if (commit_rv == CS_OK) {
            rc = exec(s->wdb, "COMMIT", &ceb);
            if (rc != SQLITE_OK) {
                commit_rv = cs_db_err(s->wdb, sqlite3_extended_errcode(s->wdb),
                                      &ceb);
                exec(s->wdb, "ROLLBACK", NULL);
                cs_log(CS_LOG_ERROR, "DB-COMMIT", "group commit of %zu writes "
                       "failed: %s", n, ceb.msg);
                for (j = batch; j != NULL; j = j->next) {
                    if (j->rv == CS_OK) {
                        j->rv = commit_rv;
                        j->eb = ceb;
                    }
                }
                free_events(all);
                all = NULL;
                grants = false;
            }
        }
        atomic_fetch_add(&s->n_commits, 1);
        if (grants)
            atomic_fetch_add(&s->grants_gen, 1);
        /* Publish after the commit, in seq order. */
        for (pubev *e = all; e != NULL; e = e->next) {
            atomic_store(&s->head_seq, e->seq);
            nng_send(s->pub, e->msg, e->len, NNG_FLAG_NONBLOCK);
        }
        free_events(all);

        /* Complete the jobs. */
        pthread_mutex_lock(&s->mu);
        for (j = batch; j != NULL;) {
            wjob *next = j->next;
            atomic_fetch_add(&s->n_writes, 1);
            if (j->rv != CS_OK)
                atomic_fetch_add(&s->n_write_errors, 1);
            if (j->is_async) {
                pthread_mutex_unlock(&s->mu);
                if (j->done != NULL)
                    j->done(j->arg, j->rv);
                free(j);
                pthread_mutex_lock(&s->mu);
            } else {
                j->finished = true;
            }
            j = next;
        }
        pthread_cond_broadcast(&s->cv_done);
        pthread_mutex_unlock(&s->mu);
    }
    /* Our cached statements live in this thread's cache: finalize them
     * here (never sqlite3_next_stmt: that also finds FTS5's own). */
    stmt_cache_drop(s->wdb);
    return NULL;
}

static bool
enqueue(cs_store *s, wjob *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    if (s->q_tail != NULL)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    return true;
}

cs_err
cs_store_write(cs_store *s, cs_write_fn fn, void *arg, cs_errbuf *eb)
{
    wjob j;
    memset(&j, 0, sizeof(j));
    j.fn = fn;
    j.arg = arg;
    if (!enqueue(s, &j))
        return cs_errf(eb, CS_ESHUTDOWN, "node is shutting down");
    pthread_mutex_lock(&s->mu);
    while (!j.finished)
        pthread_cond_wait(&s->cv_done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (j.rv != CS_OK && eb != NULL)
        *eb = j.eb;
    return j.rv;
}

void
cs_store_write_async(cs_store *s, cs_write_fn fn, void *arg,
                     void (*done)(void *arg, cs_err rv))
{
    wjob *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        if (done != NULL)
            done(arg, CS_ENOMEM);
        return;
    }
    j->fn = fn;
    j->arg = arg;
    j->done = done;
    j->is_async = true;
    if (!enqueue(s, j)) {
        free(j);
        if (done != NULL)
            done(arg, CS_ESHUTDOWN);
    }
}

sqlite3 *
cs_tx_db(cs_tx *tx)
{
    return tx->db;
}

cs_store *
cs_tx_store(cs_tx *tx)
{
    return tx->store;
}

cs_err
cs_tx_publish(cs_tx *tx, int64_t seq, const char *uri, const char *body)
{
    size_t ul = strlen(uri), bl = strlen(body);
    pubev *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CS_ENOMEM;
    e->len = 8 + ul + 1 + bl + 1;
    e->msg = malloc(e->len);
    if (e->msg == NULL) {
        free(e);
        return CS_ENOMEM;
    }
    e->seq = seq;
    memcpy(e->msg, &seq, 8);
    memcpy(e->msg + 8, uri, ul + 1);
    memcpy(e->msg + 8 + ul + 1, body, bl + 1);
    *tx->events_tail = e;
    tx->events_tail = &e->next;
    return CS_OK;
}

void
cs_tx_grants_changed(cs_tx *tx)
{
    tx->grants_changed = true;
}

uint64_t
cs_store_grants_gen(const cs_store *s)
{
    return atomic_load(&((cs_store *)s)->grants_gen);
}

int64_t
cs_store_head_seq(const cs_store *s)
{
    return atomic_load(&((cs_store *)s)->head_seq);
}

void
cs_store_get_stats(const cs_store *s, cs_store_stats *out)
{
    cs_store *m = (cs_store *)s;
    out->commits = atomic_load(&m->n_commits);
    out->writes = atomic_load(&m->n_writes);
    out->write_errors = atomic_load(&m->n_write_errors);
    out->group_max = atomic_load(&m->n_group_max);
    out->checkpoints = atomic_load(&m->n_checkpoints);
    out->writer_checkpoints = atomic_load(&m->n_writer_checkpoints);
    out->wal_frames = (uint64_t)atomic_load(&m->wal_frames);
}

/* ---- open / close ---- */

/* ---- the checkpointer ---- */

/* A background PASSIVE checkpoint once the WAL holds this many frames
 * (4 KiB pages: 16 MiB); the writer checkpoints itself only past
 * CKPT_WRITER_FRAMES (64 MiB), when the checkpointer cannot keep up
 * (checkpoint starvation under continuous writes would grow the WAL). */
#define CKPT_FRAMES 4000
#define CKPT_WRITER_FRAMES 16000

/* sqlite3_wal_hook on the writer connection, called after each commit in
 * the writer thread (it replaces SQLite's auto-checkpoint). */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    cs_store *s = arg;
    /* without a checkpointer: SQLite's default (1000 frames) */
    int writer_at = s->ckpt_running ? CKPT_WRITER_FRAMES : 1000;
    atomic_store(&s->wal_frames, frames);
    if (frames >= writer_at) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add(&s->n_writer_checkpoints, 1);
        return SQLITE_OK;
    }
    if (s->ckpt_running && frames >= CKPT_FRAMES) {
        pthread_mutex_lock(&s->ck_mu);
        if (!s->ck_due) {
            s->ck_due = true;
            pthread_cond_signal(&s->ck_cv);
        }
        pthread_mutex_unlock(&s->ck_mu);
    }
    return SQLITE_OK;
}

static void *
ckpt_main(void *arg)
{
    cs_store *s = arg;
    pthread_mutex_lock(&s->ck_mu);
    while (!s->ck_stop) {
        int rc, logf = 0, done = 0;
        if (!s->ck_due) {
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
            continue;
        }
        s->ck_due = false;
        pthread_mutex_unlock(&s->ck_mu);
        rc = sqlite3_wal_checkpoint_v2(s->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       &logf, &done);
        atomic_fetch_add(&s->n_checkpoints, 1);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            cs_log(CS_LOG_WARN, "DB-CHECKPOINT", "checkpoint failed: %s",
                   sqlite3_errmsg(s->ckdb));
        pthread_mutex_lock(&s->ck_mu);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

/* Starts the checkpointer; without it the writer checkpoints itself (the
 * hook's fallback), so a failure here only costs speed. */
static void
ckpt_start(cs_store *s)
{
    pthread_mutex_init(&s->ck_mu, NULL);
    pthread_cond_init(&s->ck_cv, NULL);
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    if (open_conn(s->db_path, SQLITE_OPEN_READWRITE, s->sync_full, &s->ckdb,
                  NULL) != SQLITE_OK) {
        s->ckdb = NULL;
        return;
    }
    sqlite3_wal_autocheckpoint(s->ckdb, 0);
    if (pthread_create(&s->ckpt, NULL, ckpt_main, s) != 0) {
        sqlite3_close_v2(s->ckdb);
        s->ckdb = NULL;
        return;
    }
    s->ckpt_running = true;
}

static void
ckpt_stop(cs_store *s)
{
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->ck_mu);
        s->ck_stop = true;
        pthread_cond_signal(&s->ck_cv);
        pthread_mutex_unlock(&s->ck_mu);
        pthread_join(s->ckpt, NULL);
        s->ckpt_running = false;
    }
    if (s->ckdb != NULL)
        sqlite3_close_v2(s->ckdb);
    s->ckdb = NULL;
    pthread_mutex_destroy(&s->ck_mu);
    pthread_cond_destroy(&s->ck_cv);
}

cs_err
cs_store_open(const cs_store_opts *o, cs_store **out, cs_errbuf *eb)
{
    cs_err rv = CS_OK;
    cs_store *s = calloc(1, sizeof(*s));
    struct stat sb;
    int nrv;

    if (s == NULL)
        return CS_ENOMEM;
    s->lock_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    s->sync_full = o->sync_full;
    s->blob_inline_max = o->blob_inline_max ? o->blob_inline_max : 65536;
    s->data_dir = strdup(o->data_dir);
    s->db_path = path_join(o->data_dir, "ctxsync.db");
    if (s->data_dir == NULL || s->db_path == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    if (stat(s->db_path, &sb) != 0) {
        rv = cs_errf(eb, CS_ENOTFOUND,
                     "no database in %s: run 'ctxsync-node init --data %s' "
                     "first",
                     o->data_dir, o->data_dir);
        goto out;
    }
    s->lock_fd = lock_data_dir(o->data_dir, eb);
    if (s->lock_fd < 0) {
        rv = CS_ECONFLICT;
        goto out;
    }
    /* One budget for the page caches of every connection (writer, one
     * reader per worker, the hub's): per-connection cache_size alone lets
     * RSS grow with the worker count and the database (soak: +26 MiB over
     * 10 minutes with 16 workers). SQLite frees cache pages to stay under
     * it; the OS page cache keeps the hot pages anyway. */
    if (o->cache_bytes > 0)
        sqlite3_soft_heap_limit64(o->cache_bytes);
    if (open_conn(s->db_path, SQLITE_OPEN_READWRITE, o->sync_full, &s->wdb,
                  eb) != SQLITE_OK) {
        rv = CS_EIO;
        goto out;
    }
    if (exec(s->wdb, "PRAGMA journal_mode=WAL", eb) != SQLITE_OK) {
        rv = CS_EDB;
        goto out;
    }
    if ((rv = migrate(s->wdb, eb)) != CS_OK ||
        (rv = load_identity(s, eb)) != CS_OK)
        goto out;
    if ((nrv = nng_pub0_open(&s->pub)) != 0 ||
        (nrv = nng_listen(s->pub, CS_EVENTS_URL, NULL, 0)) != 0) {
        rv = cs_errf(eb, CS_EIO, "nng pub %s: %s", CS_EVENTS_URL,
                     nng_strerror(nrv));
        goto out;
    }
    ckpt_start(s);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        ckpt_stop(s);
        rv = cs_errf(eb, CS_ENOMEM, "cannot start the writer thread");
        goto out;
    }
    *out = s;
    return CS_OK;
out:
    if (s->wdb != NULL)
        sqlite3_close_v2(s->wdb);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->data_dir);
    free(s->db_path);
    free(s);
    return rv;
}

void
cs_store_close(cs_store *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    ckpt_stop(s);
    nng_close(s->pub);
    exec(s->wdb, "PRAGMA wal_checkpoint(PASSIVE)", NULL);
    sqlite3_close_v2(s->wdb);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    free(s->data_dir);
    free(s->db_path);
    free(s->lost_seqs);
    free(s);
}

cs_err
cs_store_reader(cs_store *s, sqlite3 **out)
{
    sqlite3 *db = NULL;
    if (open_conn(s->db_path, SQLITE_OPEN_READWRITE, s->sync_full, &db,
                  NULL) != SQLITE_OK)
        return CS_EIO;
    exec(db, "PRAGMA query_only=ON", NULL);
    /* Readers are many (one per worker): 4 MB of page cache each keeps the
     * node's RSS bounded; the writer keeps 16 MB. */
    exec(db, "PRAGMA cache_size=-4000", NULL);
    *out = db;
    return CS_OK;
}

void
cs_store_reader_close(sqlite3 *db)
{
    if (db == NULL)
        return;
    stmt_cache_drop(db);
    sqlite3_close_v2(db);
}

void
cs_store_reader_idle(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    while ((st = sqlite3_next_stmt(db, st)) != NULL)
        sqlite3_reset(st);
}

const char *
cs_store_node_id(const cs_store *s)
{
    return s->node_id;
}
const char *
cs_store_region(const cs_store *s)
{
    return s->region;
}
const char *
cs_store_epoch(const cs_store *s)
{
    return s->epoch;
}
const char *
cs_store_lost_seqs(const cs_store *s)
{
    return s->lost_seqs != NULL ? s->lost_seqs : "[]";
}
const char *
cs_store_data_dir(const cs_store *s)
{
    return s->data_dir;
}

/* ---- blobs ---- */

static char *
blob_path(const cs_store *s, const char *hash, bool dir_only)
{
    /* hash = "sha256:<64 hex>" -> DIR/blobs/ab/cdef... */
    const char *hex = hash + 7;
    size_t n = strlen(s->data_dir) + 80;
    char *p = malloc(n);
    if (p == NULL)
        return NULL;
    if (dir_only)
        snprintf(p, n, "%s/blobs/%.2s", s->data_dir, hex);
    else
        snprintf(p, n, "%s/blobs/%.2s/%s", s->data_dir, hex, hex + 2);
    return p;
}

static bool
hash_ok(const char *hash)
{
    if (strncmp(hash, "sha256:", 7) != 0 || strlen(hash) != 71)
        return false;
    for (const char *p = hash + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static cs_err
write_file_durable(const char *dir, const char *path, const void *data,
                   size_t len, bool do_fsync, cs_errbuf *eb)
{
    cs_err rv = CS_OK;
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    int fd = -1;
    const char *p = data;
    size_t left = len;

    if (tmp == NULL)
        return CS_ENOMEM;
    snprintf(tmp, n, "%s.tmp", path);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rv = cs_errf(eb, CS_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = cs_errf(eb, errno == ENOSPC ? CS_EFULL : CS_EIO,
                     "cannot create blob file: %s", strerror(errno));
        goto out;
    }
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rv = cs_errf(eb, errno == ENOSPC ? CS_EFULL : CS_EIO,
                         "cannot write blob file: %s", strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (do_fsync && fsync(fd) != 0) {
        rv = cs_errf(eb, CS_EIO, "fsync of blob failed: %s", strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rv = cs_errf(eb, errno == ENOSPC ? CS_EFULL : CS_EIO,
                     "cannot close blob file: %s", strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rv = cs_errf(eb, CS_EIO, "cannot rename blob file: %s",
                     strerror(errno));
        goto out;
    }
    if (do_fsync) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
out:
    if (fd >= 0)
        close(fd);
    if (rv != CS_OK)
        unlink(tmp);
    free(tmp);
    return rv;
}

cs_err
cs_blob_put(cs_tx *tx, const char *hash, const void *data, size_t len,
            cs_errbuf *eb)
{
    cs_store *s = tx->store;
    sqlite3 *db = tx->db;
    sqlite3_stmt *st;
    cs_err rv = CS_OK;
    int rc;

    if (!hash_ok(hash))
        return cs_errf(eb, CS_EINVAL, "malformed content hash");
    st = cs_stmt(db, "SELECT 1 FROM blobs WHERE hash = ?1");
    if (st == NULL)
        return cs_db_err(db, SQLITE_ERROR, eb);
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return CS_OK; /* stored once per hash */
    if (len > s->blob_inline_max) {
        char *dir = blob_path(s, hash, true);
        char *path = blob_path(s, hash, false);
        struct stat sb;
        if (dir == NULL || path == NULL) {
            free(dir);
            free(path);
            return CS_ENOMEM;
        }
        /* Durable before the commit that references it. A file left by a
         * write whose commit failed is complete (temp file + rename) and
         * content-addressed: reuse it. */
        if (stat(path, &sb) == 0 && (size_t)sb.st_size == len)
            rv = CS_OK;
        else
            rv = write_file_durable(dir, path, data, len, s->sync_full, eb);
        free(dir);
        free(path);
        if (rv != CS_OK)
            return rv;
    }
    st = cs_stmt(db, "INSERT INTO blobs(hash, size, data) VALUES (?1, ?2, ?3)");
    if (st == NULL)
        return cs_db_err(db, SQLITE_ERROR, eb);
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)len);
    if (len > s->blob_inline_max)
        sqlite3_bind_null(st, 3);
    else
        sqlite3_bind_blob64(st, 3, data, len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cs_db_err(db, rc, eb);
    return CS_OK;
}

cs_err
cs_blob_get(cs_store *s, sqlite3 *db, const char *hash, char **out,
            size_t *len, cs_errbuf *eb)
{
    sqlite3_stmt *st;
    cs_err rv = CS_OK;
    int rc;
    char *buf = NULL;
    size_t n = 0;

    if (!hash_ok(hash))
        return cs_errf(eb, CS_EINVAL, "malformed content hash");
    st = cs_stmt(db, "SELECT size, data FROM blobs WHERE hash = ?1");
    if (st == NULL)
        return cs_db_err(db, SQLITE_ERROR, eb);
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return cs_errf(eb, CS_ENOTFOUND, "blob %s not stored here", hash);
    }
    n = (size_t)sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
        buf = malloc(n + 1);
        if (buf == NULL) {
            rv = CS_ENOMEM;
        } else {
            if (n > 0)
                memcpy(buf, sqlite3_column_blob(st, 1), n);
            buf[n] = '\0';
        }
        sqlite3_reset(st);
    } else {
        char *path = blob_path(s, hash, false);
        FILE *f = NULL;
        sqlite3_reset(st);
        if (path == NULL)
            return CS_ENOMEM;
        f = fopen(path, "rb");
        buf = malloc(n + 1);
        if (f == NULL || buf == NULL || fread(buf, 1, n, f) != n) {
            rv = cs_errf(eb, CS_EIO, "cannot read blob file for %s", hash);
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
        if (f != NULL)
            fclose(f);
        free(path);
    }
    if (rv == CS_OK) {
        *out = buf;
        *len = n;
    }
    return rv;
}
