/* SPDX-License-Identifier: MIT
 * db.c: one statement API over SQLite and PostgreSQL (see db.h). */
#include "db.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_log.h"
#include "cs_sqlpg.h"

#define PG_MAX_PARAMS 64

struct cs_db {
    cs_db_kind kind;
    sqlite3 *lite;
    PGconn *pg;
    unsigned gen;      /* bumped when the PostgreSQL session was reset */
    unsigned next_id;  /* names of server-side prepared statements */
    bool in_tx;        /* between BEGIN and COMMIT/ROLLBACK (PostgreSQL) */
    int changes;
    int errcode;
    char errmsg[512];
};

typedef struct pg_param {
    char *buf; /* owned copy of the value (NULL: SQL NULL) */
    size_t cap;
    int len;
    int fmt; /* 0 text, 1 binary */
    bool null;
} pg_param;

struct cs_dbst {
    cs_db *db;
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char *sql;       /* rewritten text */
    char name[24];   /* server-side name ("" when unprepared) */
    unsigned gen;    /* db->gen it was prepared under */
    int nparams;
    pg_param *params;
    PGresult *res;
    int row, nrows;
    unsigned char *blob; /* decoded bytea of (blob_row, blob_col) */
    size_t blob_len;
    int blob_row, blob_col;
};

/* ---- errors ---- */

static void
set_err(cs_db *db, int code, const char *msg)
{
    size_t n;
    db->errcode = code;
    snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg ? msg : "unknown error");
    n = strlen(db->errmsg);
    while (n > 0 && (db->errmsg[n - 1] == '\n' || db->errmsg[n - 1] == ' '))
        db->errmsg[--n] = '\0';
}

/* The error class of a failed PostgreSQL result (SQLSTATE). */
static int
pg_class(const PGresult *res, PGconn *conn)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(conn) == CONNECTION_BAD)
        return CS_DB_IOERR;
    if (state == NULL)
        return CS_DB_ERROR;
    if (strncmp(state, "23", 2) == 0)
        return CS_DB_CONSTRAINT;
    if (strcmp(state, "53100") == 0)
        return CS_DB_FULL;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "58", 2) == 0)
        return CS_DB_IOERR;
    return CS_DB_ERROR;
}

static int
pg_fail(cs_db *db, PGresult *res)
{
    int code = pg_class(res, db->pg);
    set_err(db, code, res ? PQresultErrorMessage(res) : PQerrorMessage(db->pg));
    if (res != NULL && *db->errmsg == '\0')
        set_err(db, code, PQerrorMessage(db->pg));
    return code;
}

cs_err
cs_db_err(cs_db *db, int rc, cs_errbuf *eb)
{
    int prim = rc & 0xff;
    const char *m;
    if (db == NULL)
        m = sqlite3_errstr(rc);
    else if (db->kind == CS_DB_SQLITE)
        m = sqlite3_errmsg(db->lite);
    else
        m = db->errmsg;
    if (prim == CS_DB_FULL)
        return cs_errf(eb, CS_EFULL, "storage full: %s", m);
    if (prim == CS_DB_CONSTRAINT)
        return cs_errf(eb, CS_ECONFLICT, "constraint: %s", m);
    if (prim == CS_DB_IOERR || prim == SQLITE_CANTOPEN)
        return cs_errf(eb, CS_EIO, "storage i/o error: %s", m);
    return cs_errf(eb, CS_EDB, "database error: %s", m);
}

const char *
cs_db_errmsg(cs_db *db)
{
    return db->kind == CS_DB_SQLITE ? sqlite3_errmsg(db->lite) : db->errmsg;
}

int
cs_db_errcode(cs_db *db)
{
    return db->kind == CS_DB_SQLITE ? sqlite3_errcode(db->lite) & 0xff
                                    : db->errcode;
}

int
cs_db_changes(cs_db *db)
{
    return db->kind == CS_DB_SQLITE ? sqlite3_changes(db->lite) : db->changes;
}

cs_db_kind
cs_db_kind_of(const cs_db *db)
{
    return db->kind;
}

void *
cs_db_handle(cs_db *db)
{
    return db->kind == CS_DB_SQLITE ? (void *)db->lite : (void *)db->pg;
}

bool
cs_db_is_pg_url(const char *store)
{
    return store != NULL && (strncmp(store, "postgres://", 11) == 0 ||
                             strncmp(store, "postgresql://", 13) == 0);
}

/* Parameter types for PostgreSQL: 0 (the server infers it) for each $N
 * the text uses, text for the numbers it skips (a statement may be bound
 * with parameters it ignores, as SQLite allows; PostgreSQL cannot type
 * those). */
static void
pg_param_types(const char *sql, Oid *types, int n)
{
    bool used[PG_MAX_PARAMS];
    cs_sqlpg_params(sql, used, n);
    for (int i = 0; i < n; i++)
        types[i] = used[i] ? 0 : 25; /* TEXTOID */
}

/* ---- connections ---- */

static int
lite_exec(cs_db *db, const char *sql, cs_errbuf *eb)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->lite, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        cs_errf(eb, CS_EDB, "%s", msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

cs_err
cs_db_open_sqlite(const char *path, int flags, cs_db **out, cs_errbuf *eb)
{
    cs_db *db = calloc(1, sizeof(*db));
    int rc;
    if (db == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    db->kind = CS_DB_SQLITE;
    rc = sqlite3_open_v2(path, &db->lite, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        cs_errf(eb, CS_EIO, "cannot open %s: %s", path,
                db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(rc));
        sqlite3_close_v2(db->lite);
        free(db);
        return CS_EIO;
    }
    *out = db;
    return CS_OK;
}

/* Session settings of every PostgreSQL connection. */
#define PG_SESSION_SQL                                                      \
    "SET client_min_messages = warning; SET TIME ZONE 'UTC';"              \
    " SET standard_conforming_strings = on"

cs_err
cs_db_open_pg(const char *url, cs_db **out, cs_errbuf *eb)
{
    cs_db *db = calloc(1, sizeof(*db));
    PGresult *res;
    if (db == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    db->kind = CS_DB_POSTGRES;
    {
        /* application_name names the node's sessions (pg_stat_activity;
         * new-epoch refuses to run while one is open); it comes after
         * dbname, so it wins over one set in the URL */
        const char *const keys[] = {"dbname", "application_name", NULL};
        const char *const vals[] = {url, "ctxsync-node", NULL};
        db->pg = PQconnectdbParams(keys, vals, 1);
    }
    if (db->pg == NULL || PQstatus(db->pg) != CONNECTION_OK) {
        cs_errf(eb, CS_EIO, "cannot connect to PostgreSQL: %s",
                db->pg ? PQerrorMessage(db->pg) : "out of memory");
        PQfinish(db->pg);
        free(db);
        return CS_EIO;
    }
    res = PQexec(db->pg, PG_SESSION_SQL);
    PQclear(res);
    *out = db;
    return CS_OK;
}

/* A broken PostgreSQL session is reconnected, but never inside a
 * transaction (its work is gone: the caller must see the failure). */
static bool
pg_ensure(cs_db *db)
{
    PGresult *res;
    if (PQstatus(db->pg) == CONNECTION_OK)
        return true;
    if (db->in_tx) {
        set_err(db, CS_DB_IOERR, "connection to PostgreSQL lost");
        return false;
    }
    PQreset(db->pg);
    if (PQstatus(db->pg) != CONNECTION_OK) {
        set_err(db, CS_DB_IOERR, PQerrorMessage(db->pg));
        return false;
    }
    db->gen++;
    res = PQexec(db->pg, PG_SESSION_SQL);
    PQclear(res);
    cs_log(CS_LOG_NOTICE, "DB-RECONNECT", "reconnected to PostgreSQL");
    return true;
}

/* After a failure: true when it was the server going away (a restart)
 * outside a transaction, nothing was done, and the session is back: the
 * caller runs its statement once more instead of failing the request
 * (libpq only learns of a restart at the first use after it). */
static bool
pg_retry(cs_db *db, int rc, bool *retried)
{
    if (rc != CS_DB_IOERR || db->in_tx || *retried ||
        PQstatus(db->pg) != CONNECTION_BAD)
        return false;
    *retried = true;
    return pg_ensure(db);
}

void
cs_db_close(cs_db *db)
{
    if (db == NULL)
        return;
    cs_db_stmt_cache_drop(db);
    if (db->kind == CS_DB_SQLITE)
        sqlite3_close_v2(db->lite);
    else
        PQfinish(db->pg);
    free(db);
}

static void
track_tx(cs_db *db, const char *sql)
{
    if (cs_sqlpg_word(sql, 0, "BEGIN"))
        db->in_tx = true;
    else if (cs_sqlpg_word(sql, 0, "COMMIT") || cs_sqlpg_word(sql, 0, "END") ||
             (cs_sqlpg_word(sql, 0, "ROLLBACK") && !cs_sqlpg_word(sql, 1, "TO")))
        db->in_tx = false;
}

int
cs_db_exec(cs_db *db, const char *sql, cs_errbuf *eb)
{
    PGresult *res;
    char *txt;
    int n, rc = CS_DB_OK;
    if (db->kind == CS_DB_SQLITE)
        return lite_exec(db, sql, eb);
    txt = cs_sqlpg_rewrite(sql, &n);
    if (txt == NULL) {
        cs_errf(eb, CS_ENOMEM, "out of memory");
        return CS_DB_ERROR;
    }
    if (!pg_ensure(db)) {
        cs_errf(eb, CS_EIO, "%s", db->errmsg);
        track_tx(db, sql); /* a COMMIT or ROLLBACK ends the lost one */
        free(txt);
        return CS_DB_IOERR;
    }
    for (bool retried = false;;) {
        res = PQexec(db->pg, txt);
        if (PQresultStatus(res) == PGRES_COMMAND_OK ||
            PQresultStatus(res) == PGRES_TUPLES_OK) {
            rc = CS_DB_OK;
            break;
        }
        rc = pg_fail(db, res);
        if (!pg_retry(db, rc, &retried)) {
            cs_errf(eb, CS_EDB, "%s", db->errmsg);
            break;
        }
        PQclear(res);
    }
    /* a failed COMMIT ends the transaction too */
    track_tx(db, sql);
    if (rc != CS_DB_OK && db->in_tx &&
        PQtransactionStatus(db->pg) == PQTRANS_IDLE)
        db->in_tx = false;
    PQclear(res);
    free(txt);
    return rc;
}

/* ---- statements ---- */

static int
pg_prepare_server(cs_dbst *st)
{
    cs_db *db = st->db;
    PGresult *res;
    Oid types[PG_MAX_PARAMS];
    bool retried = false;
    if (st->nparams > PG_MAX_PARAMS) {
        set_err(db, CS_DB_ERROR, "too many parameters");
        return CS_DB_ERROR;
    }
    pg_param_types(st->sql, types, st->nparams);
again:
    if (!pg_ensure(db))
        return CS_DB_IOERR;
    snprintf(st->name, sizeof(st->name), "cs%u", ++db->next_id);
    res = PQprepare(db->pg, st->name, st->sql, st->nparams, types);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        int rc = pg_fail(db, res);
        PQclear(res);
        st->name[0] = '\0';
        if (pg_retry(db, rc, &retried))
            goto again;
        return rc;
    }
    PQclear(res);
    st->gen = db->gen;
    return CS_DB_OK;
}

/* A statement object; server = prepare it on the server now (cached
 * statements) rather than send the text at each execution. */
static int
st_new(cs_db *db, const char *sql, const char *pg_sql, bool server,
       cs_dbst **out)
{
    cs_dbst *st = calloc(1, sizeof(*st));
    int rc;
    *out = NULL;
    if (st == NULL)
        return CS_DB_ERROR;
    st->db = db;
    st->blob_col = -1;
    if (db->kind == CS_DB_SQLITE) {
        rc = sqlite3_prepare_v3(db->lite, sql, -1,
                                server ? SQLITE_PREPARE_PERSISTENT : 0,
                                &st->lite, NULL);
        if (rc != SQLITE_OK) {
            free(st);
            return rc;
        }
        *out = st;
        return CS_DB_OK;
    }
    if (pg_sql != NULL) {
        st->sql = strdup(pg_sql);
        st->nparams = cs_sqlpg_params(pg_sql, NULL, 0);
    } else {
        st->sql = cs_sqlpg_rewrite(sql, &st->nparams);
    }
    if (st->sql == NULL ||
        (st->nparams > 0 &&
         (st->params = calloc((size_t)st->nparams, sizeof(pg_param))) == NULL)) {
        free(st->sql);
        free(st);
        set_err(db, CS_DB_ERROR, "out of memory");
        return CS_DB_ERROR;
    }
    for (int i = 0; i < st->nparams; i++)
        st->params[i].null = true;
    if (server && (rc = pg_prepare_server(st)) != CS_DB_OK) {
        free(st->params);
        free(st->sql);
        free(st);
        return rc;
    }
    *out = st;
    return CS_DB_OK;
}

int
cs_db_prepare(cs_db *db, const char *sql, cs_dbst **out)
{
    return st_new(db, sql, NULL, false, out);
}

static void
pg_clear_result(cs_dbst *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->row = -1;
    st->nrows = 0;
    if (st->blob != NULL)
        PQfreemem(st->blob);
    st->blob = NULL;
    st->blob_col = -1;
}

void
cs_db_finalize(cs_dbst *st)
{
    if (st == NULL)
        return;
    if (st->db->kind == CS_DB_SQLITE) {
        sqlite3_finalize(st->lite);
    } else {
        pg_clear_result(st);
        if (st->name[0] != '\0' && st->gen == st->db->gen &&
            PQstatus(st->db->pg) == CONNECTION_OK && !st->db->in_tx) {
            char sql[48];
            snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
            PQclear(PQexec(st->db->pg, sql));
        }
        for (int i = 0; i < st->nparams; i++)
            free(st->params[i].buf);
        free(st->params);
        free(st->sql);
    }
    free(st);
}

/* ---- statement cache: per thread, keyed by SQL pointer and db ---- */

typedef struct stmt_ent {
    cs_db *db;
    const char *sql;
    cs_dbst *st;
} stmt_ent;

#define STMT_CACHE 128
static _Thread_local stmt_ent t_cache[STMT_CACHE];

cs_dbst *
cs_stmt_pg(cs_db *db, const char *sql, const char *pg_sql)
{
    size_t h = ((uintptr_t)sql >> 3) ^ ((uintptr_t)db >> 4);
    stmt_ent *e = NULL;
    for (size_t i = 0; i < STMT_CACHE; i++) {
        stmt_ent *c = &t_cache[(h + i) % STMT_CACHE];
        if (c->st != NULL && c->db == db && c->sql == sql) {
            cs_db_reset(c->st);
            cs_db_clear_bindings(c->st);
            return c->st;
        }
        if (c->st == NULL) {
            e = c;
            break;
        }
    }
    if (e == NULL) {
        /* full: evict slot h */
        e = &t_cache[h % STMT_CACHE];
        cs_db_finalize(e->st);
        e->st = NULL;
    }
    if (st_new(db, sql, db->kind == CS_DB_POSTGRES ? pg_sql : NULL, true,
               &e->st) != CS_DB_OK) {
        cs_log(CS_LOG_ERROR, "DB-PREPARE", "%s: %s", cs_db_errmsg(db),
               db->kind == CS_DB_POSTGRES && pg_sql ? pg_sql : sql);
        e->st = NULL;
        return NULL;
    }
    e->db = db;
    e->sql = sql;
    return e->st;
}

cs_dbst *
cs_stmt(cs_db *db, const char *sql)
{
    return cs_stmt_pg(db, sql, NULL);
}

void
cs_db_stmt_cache_drop(cs_db *db)
{
    for (size_t i = 0; i < STMT_CACHE; i++) {
        if (t_cache[i].st != NULL && t_cache[i].db == db) {
            cs_db_finalize(t_cache[i].st);
            t_cache[i].st = NULL;
            t_cache[i].db = NULL;
            t_cache[i].sql = NULL;
        }
    }
}

void
cs_db_idle(cs_db *db)
{
    if (db->kind == CS_DB_SQLITE) {
        sqlite3_stmt *st = NULL;
        while ((st = sqlite3_next_stmt(db->lite, st)) != NULL)
            sqlite3_reset(st);
        return;
    }
    for (size_t i = 0; i < STMT_CACHE; i++)
        if (t_cache[i].st != NULL && t_cache[i].db == db)
            pg_clear_result(t_cache[i].st);
}

/* ---- bind ---- */

static pg_param *
pg_slot(cs_dbst *st, int i)
{
    if (i < 1 || i > st->nparams)
        return NULL;
    return &st->params[i - 1];
}

static int
pg_set(cs_dbst *st, int i, const void *p, size_t n, int fmt)
{
    pg_param *pp = pg_slot(st, i);
    if (pp == NULL)
        return CS_DB_ERROR;
    if (pp->cap < n + 1) {
        char *b = realloc(pp->buf, n + 1);
        if (b == NULL)
            return CS_DB_ERROR;
        pp->buf = b;
        pp->cap = n + 1;
    }
    if (n > 0)
        memcpy(pp->buf, p, n);
    pp->buf[n] = '\0';
    pp->len = (int)n;
    pp->fmt = fmt;
    pp->null = false;
    return CS_DB_OK;
}

int
cs_db_bind_text(cs_dbst *st, int i, const char *s, int n, int life)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_bind_text(st->lite, i, s, n,
                                 life == CS_DB_TRANSIENT ? SQLITE_TRANSIENT
                                                         : SQLITE_STATIC);
    if (s == NULL)
        return cs_db_bind_null(st, i);
    return pg_set(st, i, s, n < 0 ? strlen(s) : (size_t)n, 0);
}

int
cs_db_bind_blob(cs_dbst *st, int i, const void *p, size_t n, int life)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_bind_blob64(st->lite, i, p, n,
                                   life == CS_DB_TRANSIENT ? SQLITE_TRANSIENT
                                                           : SQLITE_STATIC);
    return pg_set(st, i, p, n, 1);
}

int
cs_db_bind_int64(cs_dbst *st, int i, int64_t v)
{
    char num[24];
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_bind_int64(st->lite, i, v);
    snprintf(num, sizeof(num), "%lld", (long long)v);
    return pg_set(st, i, num, strlen(num), 0);
}

int
cs_db_bind_int(cs_dbst *st, int i, int v)
{
    return cs_db_bind_int64(st, i, v);
}

int
cs_db_bind_null(cs_dbst *st, int i)
{
    pg_param *pp;
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_bind_null(st->lite, i);
    if ((pp = pg_slot(st, i)) == NULL)
        return CS_DB_ERROR;
    pp->null = true;
    return CS_DB_OK;
}

int
cs_db_clear_bindings(cs_dbst *st)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_clear_bindings(st->lite);
    for (int i = 0; i < st->nparams; i++)
        st->params[i].null = true;
    return CS_DB_OK;
}

int
cs_db_reset(cs_dbst *st)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_reset(st->lite);
    pg_clear_result(st);
    return CS_DB_OK;
}

/* ---- step ---- */

static int
pg_execute(cs_dbst *st)
{
    cs_db *db = st->db;
    const char *vals[PG_MAX_PARAMS];
    int lens[PG_MAX_PARAMS], fmts[PG_MAX_PARAMS];
    ExecStatusType es;
    bool retried = false;

    if (st->nparams > PG_MAX_PARAMS) {
        set_err(db, CS_DB_ERROR, "too many parameters");
        return CS_DB_ERROR;
    }
    for (int i = 0; i < st->nparams; i++) {
        pg_param *pp = &st->params[i];
        vals[i] = pp->null ? NULL : pp->buf;
        lens[i] = pp->len;
        fmts[i] = pp->fmt;
    }
again:
    if (!pg_ensure(db))
        return CS_DB_IOERR;
    if (st->name[0] != '\0' && st->gen != db->gen) {
        int rc = pg_prepare_server(st); /* the session was reset */
        if (rc != CS_DB_OK)
            return rc;
    }
    if (st->name[0] != '\0')
        st->res = PQexecPrepared(db->pg, st->name, st->nparams, vals, lens,
                                 fmts, 0);
    else {
        Oid types[PG_MAX_PARAMS];
        pg_param_types(st->sql, types, st->nparams);
        st->res = PQexecParams(db->pg, st->sql, st->nparams, types, vals,
                               lens, fmts, 0);
    }
    es = PQresultStatus(st->res);
    if (es == PGRES_TUPLES_OK) {
        st->nrows = PQntuples(st->res);
        st->row = -1;
        /* as sqlite3_changes: a SELECT leaves the count of the last
         * INSERT/UPDATE/DELETE (... RETURNING) alone */
        if (strncmp(PQcmdStatus(st->res), "SELECT", 6) != 0 &&
            *PQcmdTuples(st->res) != '\0')
            db->changes = atoi(PQcmdTuples(st->res));
        return CS_DB_OK;
    }
    if (es == PGRES_COMMAND_OK) {
        db->changes = atoi(PQcmdTuples(st->res));
        st->nrows = 0;
        st->row = -1;
        return CS_DB_OK;
    }
    {
        int rc = pg_fail(db, st->res);
        PQclear(st->res);
        st->res = NULL;
        if (pg_retry(db, rc, &retried))
            goto again;
        return rc;
    }
}

int
cs_db_step(cs_dbst *st)
{
    int rc;
    if (st->db->kind == CS_DB_SQLITE) {
        rc = sqlite3_step(st->lite);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? rc : rc & 0xff;
    }
    if (st->res == NULL && (rc = pg_execute(st)) != CS_DB_OK)
        return rc;
    if (st->blob != NULL) {
        PQfreemem(st->blob);
        st->blob = NULL;
        st->blob_col = -1;
    }
    if (st->row + 1 < st->nrows) {
        st->row++;
        return CS_DB_ROW;
    }
    st->row = st->nrows;
    return CS_DB_DONE;
}

/* ---- columns ---- */

static bool
pg_has(const cs_dbst *st, int i)
{
    return st->res != NULL && st->row >= 0 && st->row < st->nrows && i >= 0 &&
           i < PQnfields(st->res);
}

/* PostgreSQL type OIDs (pg_type.h is server-side). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

int
cs_db_column_type(cs_dbst *st, int i)
{
    Oid t;
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_type(st->lite, i);
    if (!pg_has(st, i) || PQgetisnull(st->res, st->row, i))
        return CS_DB_NULL;
    t = PQftype(st->res, i);
    if (t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_BOOL)
        return CS_DB_INTEGER;
    if (t == OID_FLOAT4 || t == OID_FLOAT8 || t == OID_NUMERIC)
        return CS_DB_FLOAT;
    if (t == OID_BYTEA)
        return CS_DB_BLOB;
    return CS_DB_TEXT;
}

const unsigned char *
cs_db_column_text(cs_dbst *st, int i)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_text(st->lite, i);
    if (!pg_has(st, i) || PQgetisnull(st->res, st->row, i))
        return NULL;
    return (const unsigned char *)PQgetvalue(st->res, st->row, i);
}

int64_t
cs_db_column_int64(cs_dbst *st, int i)
{
    const char *v;
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_int64(st->lite, i);
    v = (const char *)cs_db_column_text(st, i);
    if (v == NULL)
        return 0;
    if (PQftype(st->res, i) == OID_BOOL)
        return *v == 't';
    return strtoll(v, NULL, 10);
}

int
cs_db_column_int(cs_dbst *st, int i)
{
    return (int)cs_db_column_int64(st, i);
}

double
cs_db_column_double(cs_dbst *st, int i)
{
    const char *v;
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_double(st->lite, i);
    v = (const char *)cs_db_column_text(st, i);
    return v != NULL ? strtod(v, NULL) : 0.0;
}

/* Decodes the bytea of column i of the current row once. */
static bool
pg_blob(cs_dbst *st, int i)
{
    const char *v;
    if (st->blob != NULL && st->blob_col == i && st->blob_row == st->row)
        return true;
    if (st->blob != NULL)
        PQfreemem(st->blob);
    st->blob = NULL;
    st->blob_col = -1;
    v = (const char *)cs_db_column_text(st, i);
    if (v == NULL)
        return false;
    st->blob = PQunescapeBytea((const unsigned char *)v, &st->blob_len);
    if (st->blob == NULL)
        return false;
    st->blob_col = i;
    st->blob_row = st->row;
    return true;
}

const void *
cs_db_column_blob(cs_dbst *st, int i)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_blob(st->lite, i);
    if (pg_has(st, i) && PQftype(st->res, i) == OID_BYTEA)
        return pg_blob(st, i) ? st->blob : NULL;
    return cs_db_column_text(st, i);
}

int
cs_db_column_bytes(cs_dbst *st, int i)
{
    if (st->db->kind == CS_DB_SQLITE)
        return sqlite3_column_bytes(st->lite, i);
    if (!pg_has(st, i) || PQgetisnull(st->res, st->row, i))
        return 0;
    if (PQftype(st->res, i) == OID_BYTEA)
        return pg_blob(st, i) ? (int)st->blob_len : 0;
    return PQgetlength(st->res, st->row, i);
}
