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
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>

#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "schema.h"
#include "schema_pg.h"

/* PostgreSQL advisory lock keys ("ctxs", "ctxm"): the write lock every
 * process's writer holds from BEGIN to COMMIT (one writer at a time across
 * processes: seq is given out and committed in the same order), and the
 * migration lock. */
#define PG_WRITE_LOCK 1668577395
#define PG_MIGRATE_LOCK 1668577389

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
    cs_db *db;
    pubev *events, **events_tail; /* events of the current job */
    bool grants_changed;
};

struct cs_store {
    char *data_dir; /* the SQLite directory, or the PostgreSQL URL */
    char *db_path;
    bool pg;        /* PostgreSQL store */
    char node_id[129], region[65], epoch[33];
    bool sync_full;
    size_t blob_inline_max;
    int lock_fd; /* flock on DIR/ctxsync.lock while open */
    cs_db *wdb;
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
    cs_db *ckdb;
    pthread_t ckpt;
    bool ckpt_running, ck_due, ck_stop;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    _Atomic int wal_frames;
    _Atomic uint64_t n_checkpoints, n_writer_checkpoints;

    /* PostgreSQL: the listener thread (LISTEN ctxsync_events and
     * ctxsync_grants) publishes every process's committed events to this
     * process's hub, in seq order, from the table */
    pthread_t listener;
    bool listener_running;
    _Atomic bool l_stop;
    int64_t l_published; /* highest seq published (listener thread) */
    _Atomic uint64_t n_notifies;
};

static int
open_conn(const char *path, int flags, bool sync_full, cs_db **out,
          cs_errbuf *eb)
{
    cs_db *db = NULL;
    int rc;
    if (cs_db_open_sqlite(path, flags, &db, eb) != CS_OK)
        return CS_DB_IOERR;
    sqlite3_busy_timeout(cs_db_handle(db), 10000);
    rc = cs_db_exec(db,
              sync_full ? "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;"
                          " PRAGMA cache_size=-16000;"
                        : "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"
                          " PRAGMA cache_size=-16000;",
              eb);
    if (rc != CS_DB_OK) {
        cs_db_close(db);
        return rc;
    }
    *out = db;
    return CS_DB_OK;
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

static int query_int(cs_db *db, const char *sql, int64_t *out,
                     cs_errbuf *eb);

#define STR_(x) #x
#define STR(x) STR_(x)

/* A PostgreSQL database must compare text bytewise (as SQLite does: every
 * node must pick the same provisional head and page in the same order) and
 * hold UTF-8. */
static cs_err
pg_check_database(cs_db *db, cs_errbuf *eb)
{
    cs_dbst *st = NULL;
    cs_err rv = CS_OK;
    const char *coll, *enc;
    if (cs_db_prepare(db, "SELECT datcollate, pg_encoding_to_char(encoding)"
                          " FROM pg_database WHERE datname = current_database()",
                      &st) != CS_DB_OK ||
        cs_db_step(st) != CS_DB_ROW) {
        rv = cs_errf(eb, CS_EDB, "cannot read the database's collation: %s",
                     cs_db_errmsg(db));
        goto out;
    }
    coll = (const char *)cs_db_column_text(st, 0);
    enc = (const char *)cs_db_column_text(st, 1);
    if (coll == NULL || enc == NULL ||
        (strcmp(coll, "C") != 0 && strcmp(coll, "POSIX") != 0 &&
         strcasecmp(coll, "C.UTF-8") != 0 && strcasecmp(coll, "C.utf8") != 0) ||
        strcmp(enc, "UTF8") != 0)
        rv = cs_errf(eb, CS_EINVAL,
                     "the database has collation %s and encoding %s; ContextSync "
                     "needs UTF8 with bytewise order: CREATE DATABASE name "
                     "TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'",
                     coll ? coll : "?", enc ? enc : "?");
out:
    cs_db_finalize(st);
    return rv;
}

/* Moves the schema forward, one transaction per migration. SQLite keeps
 * the version in PRAGMA user_version, PostgreSQL in schema_version (under
 * an advisory lock: several node processes may start at once). */
static cs_err
migrate(cs_db *db, cs_errbuf *eb)
{
    bool pg = cs_db_kind_of(db) == CS_DB_POSTGRES;
    const char *const *mig = pg ? cs_pg_migrations : cs_migrations;
    int count = pg ? CS_PG_MIGRATION_COUNT : CS_MIGRATION_COUNT;
    int64_t ver = 0;
    cs_err rv = CS_OK;

    if (pg && (rv = pg_check_database(db, eb)) != CS_OK)
        return rv;
    if (pg && (cs_db_exec(db, "SELECT pg_advisory_lock(" STR(PG_MIGRATE_LOCK) ")",
                    eb) != CS_DB_OK ||
               cs_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version("
                        "one INT PRIMARY KEY CHECK(one = 1),"
                        " version INT NOT NULL)",
                    eb) != CS_DB_OK))
        return cs_errf(eb, CS_EDB, "cannot prepare the schema: %s",
                       cs_db_errmsg(db));
    if (query_int(db,
                  pg ? "SELECT COALESCE((SELECT version FROM schema_version), 0)"
                     : "PRAGMA user_version",
                  &ver, eb) != CS_DB_OK) {
        rv = cs_errf(eb, CS_EDB, "cannot read schema version: %s",
                     cs_db_errmsg(db));
        goto out;
    }
    if (ver > count) {
        rv = cs_errf(eb, CS_EINVAL,
                     "database schema version %d is newer than this "
                     "ctxsync-node supports (%d): upgrade ctxsync-node",
                     (int)ver, count);
        goto out;
    }
    for (int i = (int)ver; i < count; i++) {
        char setver[160];
        if (cs_db_exec(db, "BEGIN IMMEDIATE", eb) != CS_DB_OK) {
            rv = CS_EDB;
            goto out;
        }
        if (pg)
            snprintf(setver, sizeof(setver),
                     "INSERT INTO schema_version VALUES (1, %d) ON CONFLICT"
                     " (one) DO UPDATE SET version = excluded.version",
                     i + 1);
        else
            snprintf(setver, sizeof(setver), "PRAGMA user_version=%d", i + 1);
        if (cs_db_exec(db, mig[i], eb) != CS_DB_OK ||
            cs_db_exec(db, setver, eb) != CS_DB_OK) {
            cs_db_exec(db, "ROLLBACK", NULL);
            rv = cs_errf(eb, CS_EDB, "migration %d failed: %s", i + 1,
                         eb ? eb->msg : "");
            goto out;
        }
        if (cs_db_exec(db, "COMMIT", eb) != CS_DB_OK) {
            rv = CS_EDB;
            goto out;
        }
        cs_log(CS_LOG_NOTICE, "DB-MIGRATE", "schema migrated to version %d",
               i + 1);
    }
out:
    if (pg)
        cs_db_exec(db, "SELECT pg_advisory_unlock(" STR(PG_MIGRATE_LOCK) ")", NULL);
    return rv;
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
    cs_db *db = NULL;
    cs_dbst *st = NULL;
    char epoch[33], now[CS_TIME_LEN];
    struct stat sb;

    if (cs_db_is_pg_url(data_dir)) {
        /* an existing database: the schema, then the identity rows (a
         * second init fails on meta's primary key) */
        if ((rv = cs_db_open_pg(data_dir, &db, eb)) != CS_OK ||
            (rv = migrate(db, eb)) != CS_OK)
            goto out;
        goto identity;
    }
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
                  eb) != CS_DB_OK) {
        rv = CS_EIO;
        goto out;
    }
    if (cs_db_exec(db, "PRAGMA journal_mode=WAL", eb) != CS_DB_OK) {
        rv = CS_EDB;
        goto out;
    }
    if ((rv = migrate(db, eb)) != CS_OK)
        goto out;
identity:
    if ((rv = cs_random_hex(epoch, 16)) != CS_OK)
        goto out;
    cs_time_format(cs_now_us(), now);
    if (cs_db_prepare(db, "INSERT INTO meta(key, value) VALUES"
                           " ('node_id', ?1), ('region', ?2), ('epoch', ?3),"
                           " ('created_at', ?4)", &st) != CS_DB_OK) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, node_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, region, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, epoch, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, now, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_DONE) {
        if (cs_db_errcode(db) == CS_DB_CONSTRAINT)
            rv = cs_errf(eb, CS_ECONFLICT,
                         "the database already holds a ContextSync node; "
                         "refusing to initialise it again");
        else
            rv = cs_db_err(db, cs_db_errcode(db), eb);
        goto out;
    }
out:
    cs_db_finalize(st);
    cs_db_close(db);
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
query_int(cs_db *db, const char *sql, int64_t *out, cs_errbuf *eb)
{
    cs_dbst *st = NULL;
    int rc = cs_db_prepare(db, sql, &st);
    if (rc == CS_DB_OK) {
        rc = cs_db_step(st);
        if (rc == CS_DB_ROW) {
            *out = cs_db_column_int64(st, 0);
            rc = CS_DB_OK;
        }
    }
    if (rc != CS_DB_OK)
        cs_db_err(db, rc, eb);
    cs_db_finalize(st);
    return rc;
}

/* Runs sql with text ?1 and, when b is not NULL, text ?2. */
static int
exec_text2(cs_db *db, const char *sql, const char *a, const char *b,
           cs_errbuf *eb)
{
    cs_dbst *st = NULL;
    int rc = cs_db_prepare(db, sql, &st);
    if (rc == CS_DB_OK) {
        cs_db_bind_text(st, 1, a, -1, CS_DB_STATIC);
        if (b != NULL)
            cs_db_bind_text(st, 2, b, -1, CS_DB_STATIC);
        rc = cs_db_step(st) == CS_DB_DONE ? CS_DB_OK : cs_db_errcode(db);
    }
    if (rc != CS_DB_OK)
        cs_db_err(db, rc, eb);
    cs_db_finalize(st);
    return rc;
}

/* A PostgreSQL store offline: no ctxsync-node process may be connected
 * to it (they connect with application_name ctxsync-node). */
static cs_err
open_offline_pg(const char *url, cs_db **db, cs_errbuf *eb)
{
    cs_err rv;
    int64_t others = 0;
    if ((rv = cs_db_open_pg(url, db, eb)) != CS_OK)
        return rv;
    if (query_int(*db,
                  "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                  " current_database() AND application_name = 'ctxsync-node'"
                  " AND pid <> pg_backend_pid()",
                  &others, eb) != CS_DB_OK)
        rv = CS_EDB;
    else if (others > 0)
        rv = cs_errf(eb, CS_ECONFLICT,
                     "%lld ctxsync-node connections are open on this "
                     "database: stop every ctxsync-node process first",
                     (long long)others);
    if (rv != CS_OK) {
        cs_db_close(*db);
        *db = NULL;
    }
    return rv;
}

/* Opens DIR's database offline, with the directory lock held (PostgreSQL:
 * with no node process connected). */
static cs_err
open_offline(const char *data_dir, int *lock_fd, cs_db **db, cs_errbuf *eb)
{
    char *dbp = NULL;
    struct stat sb;
    cs_err rv = CS_OK;

    *lock_fd = -1;
    *db = NULL;
    if (cs_db_is_pg_url(data_dir))
        return open_offline_pg(data_dir, db, eb);
    dbp = path_join(data_dir, "ctxsync.db");
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
    if (open_conn(dbp, SQLITE_OPEN_READWRITE, true, db, eb) != CS_DB_OK) {
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
    cs_db *db = NULL;
    cs_dbst *st = NULL;
    int lock_fd;
    cs_err rv = open_offline(data_dir, &lock_fd, &db, eb);

    if (rv != CS_OK)
        return rv;
    if (cs_db_prepare(db, "SELECT value FROM meta WHERE key = 'node_id'", &st) != CS_DB_OK ||
        cs_db_step(st) != CS_DB_ROW)
        rv = cs_errf(eb, CS_EINVAL, "%s has no node identity", data_dir);
    else
        snprintf(node_id, sz, "%s", cs_db_column_text(st, 0));
    cs_db_finalize(st);
    cs_db_close(db);
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
    cs_db *db = NULL;
    cs_dbst *st = NULL;
    int lock_fd = -1;
    int64_t given = 0;
    char *lost = NULL, num[32];

    memset(out, 0, sizeof(*out));
    if ((rv = open_offline(data_dir, &lock_fd, &db, eb)) != CS_OK)
        return rv;
    if (cs_db_exec(db, "BEGIN IMMEDIATE", eb) != CS_DB_OK) {
        rv = CS_EDB;
        goto out;
    }
    if (cs_db_prepare(db, "SELECT value FROM meta WHERE key = 'epoch'", &st) != CS_DB_OK ||
        cs_db_step(st) != CS_DB_ROW) {
        rv = cs_errf(eb, CS_EINVAL, "database has no epoch");
        goto rollback;
    }
    snprintf(out->old_epoch, sizeof(out->old_epoch), "%s", cs_db_column_text(st, 0));
    cs_db_finalize(st);
    st = NULL;
    /* the seq floor of an earlier new-epoch counts too */
    if (query_int(db,
                  cs_db_kind_of(db) == CS_DB_POSTGRES ? CS_PG_SQL_LAST_SEQ
                                                      : CS_SQL_LAST_SEQ,
                  &given, eb) != CS_DB_OK) {
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
        if (cs_db_prepare(db, "SELECT value FROM meta WHERE key = 'lost_seqs'", &st) == CS_DB_OK &&
            cs_db_step(st) == CS_DB_ROW)
            old = cs_db_column_text(st, 0);
        lost = lost_append((const char *)old, out->lost_from, out->lost_to);
        cs_db_finalize(st);
        st = NULL;
        if (lost == NULL) {
            rv = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto rollback;
        }
        /* The next local seq is the floor: move the AUTOINCREMENT
         * counter (a row in sqlite_sequence exists once an event was
         * ever written; insert it otherwise). */
        snprintf(num, sizeof(num), "%lld", (long long)(seq_floor - 1));
        if ((cs_db_kind_of(db) == CS_DB_POSTGRES
                 ? exec_text2(db, "UPDATE seq_floor SET seq = CAST(?1 AS BIGINT)",
                              num, NULL, eb)
                 : (exec_text2(db, "DELETE FROM sqlite_sequence WHERE name = ?1",
                               "change_events", NULL, eb) != CS_DB_OK
                        ? CS_DB_ERROR
                        : exec_text2(db, "INSERT INTO sqlite_sequence(name, seq)"
                                         " VALUES (?1, CAST(?2 AS INTEGER))",
                                     "change_events", num, eb))) != CS_DB_OK ||
            exec_text2(db, "INSERT INTO meta(key, value) VALUES ('lost_seqs', ?1)"
                           " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       lost, NULL, eb) != CS_DB_OK) {
            rv = CS_EDB;
            goto rollback;
        }
    }
    if ((rv = cs_random_hex(out->new_epoch, 16)) != CS_OK)
        goto rollback;
    if (exec_text2(db, "UPDATE meta SET value = ?1 WHERE key = 'epoch'",
                   out->new_epoch, NULL, eb) != CS_DB_OK) {
        rv = CS_EDB;
        goto rollback;
    }
    if (cs_db_exec(db, "COMMIT", eb) != CS_DB_OK)
        rv = CS_EDB;
    goto out;
rollback:
    cs_db_exec(db, "ROLLBACK", NULL);
out:
    free(lost);
    cs_db_finalize(st);
    cs_db_close(db);
    if (lock_fd >= 0)
        close(lock_fd);
    return rv;
}

static cs_err
load_identity(cs_store *s, cs_errbuf *eb)
{
    cs_dbst *st = NULL;
    int found = 0;
    if (cs_db_prepare(s->wdb, "SELECT key, value FROM meta", &st) != CS_DB_OK)
        return cs_db_err(s->wdb, CS_DB_ERROR, eb);
    while (cs_db_step(st) == CS_DB_ROW) {
        const char *k = (const char *)cs_db_column_text(st, 0);
        const char *v = (const char *)cs_db_column_text(st, 1);
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
    cs_db_finalize(st);
    if (found != 3)
        return cs_errf(eb, CS_EINVAL,
                       "database has no node identity; was it created with "
                       "'ctxsync-node init'?");
    if (cs_db_prepare(s->wdb, "SELECT COALESCE(MAX(seq),0) FROM change_events", &st) != CS_DB_OK)
        return cs_db_err(s->wdb, CS_DB_ERROR, eb);
    if (cs_db_step(st) == CS_DB_ROW)
        atomic_store(&s->head_seq, cs_db_column_int64(st, 0));
    cs_db_finalize(st);
    return CS_OK;
}

/* ---- the writer ---- */

/* head_seq only moves forward (the writer and the listener both move it). */
static void
head_advance(cs_store *s, int64_t seq)
{
    int64_t cur = atomic_load(&s->head_seq);
    while (cur < seq && !atomic_compare_exchange_weak(&s->head_seq, &cur, seq))
        ;
}

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

        /* PostgreSQL: the write lock makes this the only writer of the
         * database until COMMIT, as BEGIN IMMEDIATE does in SQLite */
        rc = cs_db_exec(s->wdb,
                  s->pg ? "BEGIN; SELECT pg_advisory_xact_lock("
                          STR(PG_WRITE_LOCK) ")"
                        : "BEGIN IMMEDIATE",
                  &ceb);
        if (rc != CS_DB_OK) {
            commit_rv = cs_db_err(s->wdb, rc, &ceb);
            /* ends what BEGIN may have opened (PostgreSQL: lets a lost
             * connection be re-established for the next group) */
            cs_db_exec(s->wdb, "ROLLBACK", NULL);
        }
        for (j = batch; j != NULL; j = j->next) {
            if (commit_rv != CS_OK) {
                j->rv = commit_rv;
                j->eb = ceb;
                continue;
            }
            tx.events = NULL;
            tx.events_tail = &tx.events;
            tx.grants_changed = false;
            cs_db_exec(s->wdb, "SAVEPOINT w", NULL);
            j->rv = j->fn(&tx, j->arg, &j->eb);
            if (j->rv == CS_OK) {
                cs_db_exec(s->wdb, "RELEASE w", NULL);
                if (tx.events != NULL) {
                    *all_tail = tx.events;
                    all_tail = tx.events_tail;
                }
                grants = grants || tx.grants_changed;
            } else {
                cs_db_exec(s->wdb, "ROLLBACK TO w; RELEASE w", NULL);
                free_events(tx.events);
            }
            tx.events = NULL;
        }
        /* PostgreSQL delivers notifications at COMMIT, to every
         * process's listener (this one's too) */
        if (commit_rv == CS_OK && s->pg && all != NULL)
            cs_db_exec(s->wdb, "NOTIFY ctxsync_events", NULL);
        if (commit_rv == CS_OK && s->pg && grants)
            cs_db_exec(s->wdb, "NOTIFY ctxsync_grants", NULL);
        if (commit_rv == CS_OK) {
            rc = cs_db_exec(s->wdb, "COMMIT", &ceb);
            if (rc != CS_DB_OK) {
                commit_rv = cs_db_err(s->wdb, cs_db_errcode(s->wdb),
                                      &ceb);
                cs_db_exec(s->wdb, "ROLLBACK", NULL);
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
        /* Publish after the commit, in seq order. PostgreSQL: the
         * listener publishes them, with the other processes' events, from
         * the table. */
        for (pubev *e = all; e != NULL; e = e->next) {
            head_advance(s, e->seq);
            if (!s->pg)
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
    cs_db_stmt_cache_drop(s->wdb);
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

cs_db *
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
    out->heap_bytes = sqlite3_memory_used();
    out->notifies = atomic_load(&m->n_notifies);
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
        return CS_DB_OK;
    }
    if (s->ckpt_running && frames >= CKPT_FRAMES) {
        pthread_mutex_lock(&s->ck_mu);
        if (!s->ck_due) {
            s->ck_due = true;
            pthread_cond_signal(&s->ck_cv);
        }
        pthread_mutex_unlock(&s->ck_mu);
    }
    return CS_DB_OK;
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
        rc = sqlite3_wal_checkpoint_v2(cs_db_handle(s->ckdb), NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       &logf, &done);
        atomic_fetch_add(&s->n_checkpoints, 1);
        if (rc != CS_DB_OK && rc != SQLITE_BUSY)
            cs_log(CS_LOG_WARN, "DB-CHECKPOINT", "checkpoint failed: %s",
                   cs_db_errmsg(s->ckdb));
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
    sqlite3_wal_hook(cs_db_handle(s->wdb), wal_hook, s);
    if (open_conn(s->db_path, SQLITE_OPEN_READWRITE, s->sync_full, &s->ckdb,
                  NULL) != CS_DB_OK) {
        s->ckdb = NULL;
        return;
    }
    sqlite3_wal_autocheckpoint(cs_db_handle(s->ckdb), 0);
    if (pthread_create(&s->ckpt, NULL, ckpt_main, s) != 0) {
        cs_db_close(s->ckdb);
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
        cs_db_close(s->ckdb);
    s->ckdb = NULL;
    pthread_mutex_destroy(&s->ck_mu);
    pthread_cond_destroy(&s->ck_cv);
}

/* ---- PostgreSQL: the listener ---- */

#define LISTEN_PAGE 1000
#define LISTEN_POLL_MS 250

/* The listener's own connection (LISTENing on both channels), or NULL. */
static cs_db *
listener_connect(cs_store *s)
{
    cs_db *db = NULL;
    if (cs_db_open_pg(s->data_dir, &db, NULL) != CS_OK)
        return NULL;
    if (cs_db_exec(db, "LISTEN ctxsync_events; LISTEN ctxsync_grants", NULL) !=
        CS_DB_OK) {
        cs_db_close(db);
        return NULL;
    }
    return db;
}

/* Publishes the committed events past l_published to this process's hub,
 * in seq order. Every process's writer holds the write lock from the
 * moment it takes a seq until its COMMIT, so a committed seq N means every
 * seq below N that will ever commit already has: `seq > last` never skips
 * one. */
static bool
listener_catch_up(cs_store *s, PGconn *c)
{
    char *msg = NULL;
    size_t cap = 0;
    bool ok = true;
    for (;;) {
        char since[24];
        const char *vals[1] = {since};
        PGresult *r;
        int n;
        snprintf(since, sizeof(since), "%lld", (long long)s->l_published);
        r = PQexecParams(c,
                         "SELECT seq, artifact_uri, body FROM change_events"
                         " WHERE seq > $1::bigint ORDER BY seq LIMIT "
                         STR(LISTEN_PAGE),
                         1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            cs_log(CS_LOG_WARN, "DB-LISTEN", "reading new events failed: %s",
                   PQerrorMessage(c));
            PQclear(r);
            ok = false;
            break;
        }
        n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            const char *uri = PQgetvalue(r, i, 1);
            const char *body = PQgetvalue(r, i, 2);
            size_t ul = strlen(uri), bl = strlen(body);
            size_t len = 8 + ul + 1 + bl + 1;
            if (msg == NULL || len > cap) {
                char *m = realloc(msg, len);
                if (m == NULL) {
                    n = i;
                    ok = false;
                    break;
                }
                msg = m;
                cap = len;
            }
            memcpy(msg, &seq, 8);
            memcpy(msg + 8, uri, ul + 1);
            memcpy(msg + 8 + ul + 1, body, bl + 1);
            nng_send(s->pub, msg, len, NNG_FLAG_NONBLOCK);
            s->l_published = seq;
            head_advance(s, seq);
        }
        PQclear(r);
        if (!ok || n < LISTEN_PAGE)
            break;
    }
    free(msg);
    return ok;
}

static void *
listener_main(void *arg)
{
    cs_store *s = arg;
    cs_db *ldb = NULL;
    PGconn *c = NULL;
    while (!atomic_load(&s->l_stop)) {
        struct pollfd pfd;
        PGnotify *nf;
        bool due;
        int pr;
        if (c == NULL) {
            ldb = listener_connect(s);
            c = ldb != NULL ? cs_db_handle(ldb) : NULL;
            if (c == NULL) {
                usleep(200 * 1000);
                continue;
            }
            /* whatever committed while we were away; and reload the
             * grants, whose notification we may have missed */
            atomic_fetch_add(&s->grants_gen, 1);
            listener_catch_up(s, c);
        }
        pfd.fd = PQsocket(c);
        pfd.events = POLLIN;
        pfd.revents = 0;
        pr = poll(&pfd, 1, LISTEN_POLL_MS);
        /* without a notification, a look every LISTEN_POLL_MS anyway: a
         * lost notification delays an event, never loses it */
        due = pr == 0;
        if (pr > 0 && !PQconsumeInput(c)) {
            cs_log(CS_LOG_WARN, "DB-LISTEN", "listener connection lost: %s",
                   PQerrorMessage(c));
            cs_db_close(ldb);
            ldb = NULL;
            c = NULL;
            continue;
        }
        while ((nf = PQnotifies(c)) != NULL) {
            if (strcmp(nf->relname, "ctxsync_grants") == 0)
                atomic_fetch_add(&s->grants_gen, 1);
            else
                due = true;
            atomic_fetch_add(&s->n_notifies, 1);
            PQfreemem(nf);
        }
        if (due && !listener_catch_up(s, c) && PQstatus(c) != CONNECTION_OK) {
            cs_db_close(ldb);
            ldb = NULL;
            c = NULL;
        }
    }
    cs_db_close(ldb);
    return NULL;
}

/* Opens a PostgreSQL store: the writer's connection, the schema, the
 * listener. No directory lock: any number of processes serve one
 * database. */
static cs_err
open_pg(cs_store *s, cs_errbuf *eb)
{
    cs_err rv;
    int nrv;
    s->pg = true;
    s->blob_inline_max = SIZE_MAX; /* no shared disk: every payload inline */
    if ((rv = cs_db_open_pg(s->data_dir, &s->wdb, eb)) != CS_OK ||
        (rv = migrate(s->wdb, eb)) != CS_OK ||
        (rv = load_identity(s, eb)) != CS_OK)
        return rv;
    if ((nrv = nng_pub0_open(&s->pub)) != 0 ||
        (nrv = nng_listen(s->pub, CS_EVENTS_URL, NULL, 0)) != 0)
        return cs_errf(eb, CS_EIO, "nng pub %s: %s", CS_EVENTS_URL,
                       nng_strerror(nrv));
    s->l_published = atomic_load(&s->head_seq);
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0)
        return cs_errf(eb, CS_ENOMEM, "cannot start the listener thread");
    s->listener_running = true;
    return CS_OK;
}

static void
listener_stop(cs_store *s)
{
    if (!s->listener_running)
        return;
    atomic_store(&s->l_stop, true);
    pthread_join(s->listener, NULL);
    s->listener_running = false;
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
    if (cs_db_is_pg_url(o->data_dir)) {
        if ((rv = open_pg(s, eb)) != CS_OK)
            goto out;
        goto start_writer;
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
                  eb) != CS_DB_OK) {
        rv = CS_EIO;
        goto out;
    }
    if (cs_db_exec(s->wdb, "PRAGMA journal_mode=WAL", eb) != CS_DB_OK) {
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
start_writer:
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        if (!s->pg)
            ckpt_stop(s);
        rv = cs_errf(eb, CS_ENOMEM, "cannot start the writer thread");
        goto out;
    }
    *out = s;
    return CS_OK;
out:
    listener_stop(s);
    if (s->wdb != NULL)
        cs_db_close(s->wdb);
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
    listener_stop(s);
    if (!s->pg)
        ckpt_stop(s);
    nng_close(s->pub);
    if (!s->pg)
        cs_db_exec(s->wdb, "PRAGMA wal_checkpoint(PASSIVE)", NULL);
    cs_db_close(s->wdb);
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
cs_store_reader(cs_store *s, cs_db **out)
{
    cs_db *db = NULL;
    if (s->pg) {
        /* one connection per worker thread: the pool is workers + the
         * writer + the hub + the listener + the permission cache's
         * (docs/scale-out.md section 7) */
        if (cs_db_open_pg(s->data_dir, &db, NULL) != CS_OK)
            return CS_EIO;
        cs_db_exec(db, "SET default_transaction_read_only = on", NULL);
        *out = db;
        return CS_OK;
    }
    if (open_conn(s->db_path, SQLITE_OPEN_READWRITE, s->sync_full, &db,
                  NULL) != CS_DB_OK)
        return CS_EIO;
    cs_db_exec(db, "PRAGMA query_only=ON", NULL);
    /* Readers are many (one per worker): 4 MB of page cache each keeps the
     * node's RSS bounded; the writer keeps 16 MB. */
    cs_db_exec(db, "PRAGMA cache_size=-4000", NULL);
    *out = db;
    return CS_OK;
}

void
cs_store_reader_close(cs_db *db)
{
    cs_db_close(db); /* drops this thread's cached statements of db */
}

void
cs_store_reader_idle(cs_db *db)
{
    cs_db_idle(db);
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
const char *
cs_store_backend(const cs_store *s)
{
    return s->pg ? "postgres" : "sqlite";
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
    cs_db *db = tx->db;
    cs_dbst *st;
    cs_err rv = CS_OK;
    int rc;

    if (!hash_ok(hash))
        return cs_errf(eb, CS_EINVAL, "malformed content hash");
    st = cs_stmt(db, "SELECT 1 FROM blobs WHERE hash = ?1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, hash, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc == CS_DB_ROW)
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
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, hash, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 2, (int64_t)len);
    if (len > s->blob_inline_max)
        cs_db_bind_null(st, 3);
    else
        cs_db_bind_blob(st, 3, data, len, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    return CS_OK;
}

cs_err
cs_blob_get(cs_store *s, cs_db *db, const char *hash, char **out,
            size_t *len, cs_errbuf *eb)
{
    cs_dbst *st;
    cs_err rv = CS_OK;
    int rc;
    char *buf = NULL;
    size_t n = 0;

    if (!hash_ok(hash))
        return cs_errf(eb, CS_EINVAL, "malformed content hash");
    st = cs_stmt(db, "SELECT size, data FROM blobs WHERE hash = ?1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, hash, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_ROW) {
        cs_db_reset(st);
        return cs_errf(eb, CS_ENOTFOUND, "blob %s not stored here", hash);
    }
    n = (size_t)cs_db_column_int64(st, 0);
    if (cs_db_column_type(st, 1) != CS_DB_NULL) {
        buf = malloc(n + 1);
        if (buf == NULL) {
            rv = CS_ENOMEM;
        } else {
            if (n > 0)
                memcpy(buf, cs_db_column_blob(st, 1), n);
            buf[n] = '\0';
        }
        cs_db_reset(st);
    } else {
        char *path = blob_path(s, hash, false);
        FILE *f = NULL;
        cs_db_reset(st);
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
