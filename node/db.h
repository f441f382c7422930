/* SPDX-License-Identifier: MIT
 * db.h: the node's database connection, over SQLite or PostgreSQL.
 *
 * One small statement API (prepare / bind / step / column / reset, the
 * shape of SQLite's) with two backends, so that every query of the node is
 * written once. SQL is written in SQLite's dialect; for PostgreSQL it is
 * rewritten when prepared:
 *   ?N and ?  -> $N                 IS ?N / IS NOT ?N -> IS [NOT] DISTINCT FROM
 *   ?N IS [NOT] NULL -> $N::text IS [NOT] NULL (a text filter parameter)
 *   INSERT OR IGNORE ... -> INSERT ... ON CONFLICT DO NOTHING
 *   BEGIN IMMEDIATE -> BEGIN
 * A statement the rewrite cannot express has a PostgreSQL text of its own
 * (cs_stmt_pg). PostgreSQL statements are prepared on the server once per
 * connection (named, text-format parameters whose types the server infers)
 * and executed with the whole result fetched at the first step.
 *
 * A connection (cs_db) is used by one thread at a time. */
#ifndef CS_DB_H
#define CS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"

typedef struct cs_db cs_db;
typedef struct cs_dbst cs_dbst;

typedef enum cs_db_kind { CS_DB_SQLITE = 1, CS_DB_POSTGRES = 2 } cs_db_kind;

/* Step results and error classes (values of SQLite's primary codes). */
#define CS_DB_OK 0
#define CS_DB_ERROR 1
#define CS_DB_IOERR 10
#define CS_DB_FULL 13
#define CS_DB_CONSTRAINT 19
#define CS_DB_ROW 100
#define CS_DB_DONE 101

/* Column types (SQLite's). */
#define CS_DB_INTEGER 1
#define CS_DB_FLOAT 2
#define CS_DB_TEXT 3
#define CS_DB_BLOB 4
#define CS_DB_NULL 5

/* Binding lifetimes: STATIC = valid until the next step/reset; TRANSIENT =
 * copied now. */
#define CS_DB_STATIC 0
#define CS_DB_TRANSIENT 1

/* True when `store` names a PostgreSQL store (postgres:// or
 * postgresql://). */
bool cs_db_is_pg_url(const char *store);

/* Opens a SQLite database file (flags: SQLITE_OPEN_*). */
cs_err cs_db_open_sqlite(const char *path, int flags, cs_db **out,
                         cs_errbuf *eb);
/* Connects to PostgreSQL (a libpq conninfo or URL). */
cs_err cs_db_open_pg(const char *url, cs_db **out, cs_errbuf *eb);
/* Closes db (drops this thread's cached statements of it first). */
void cs_db_close(cs_db *db);

cs_db_kind cs_db_kind_of(const cs_db *db);
/* The underlying handle: sqlite3 * or PGconn * (for backend code). */
void *cs_db_handle(cs_db *db);

/* Runs one or more statements without parameters or results. */
int cs_db_exec(cs_db *db, const char *sql, cs_errbuf *eb);

/* Cached prepared statement for `sql` on `db` (keyed by the sql pointer
 * and db, per thread; pass string literals). Reset and unbound before
 * return. Borrowed: do not finalize. NULL on a prepare error (logged). */
cs_dbst *cs_stmt(cs_db *db, const char *sql);
/* The same, with a text of its own for PostgreSQL (used as is: $N
 * parameters, no rewrite). */
cs_dbst *cs_stmt_pg(cs_db *db, const char *sql, const char *pg_sql);

/* Uncached statement (dynamic SQL); free with cs_db_finalize. */
int cs_db_prepare(cs_db *db, const char *sql, cs_dbst **out);
void cs_db_finalize(cs_dbst *st);

int cs_db_bind_text(cs_dbst *st, int i, const char *s, int n, int life);
int cs_db_bind_blob(cs_dbst *st, int i, const void *p, size_t n, int life);
int cs_db_bind_int64(cs_dbst *st, int i, int64_t v);
int cs_db_bind_int(cs_dbst *st, int i, int v);
int cs_db_bind_null(cs_dbst *st, int i);

/* CS_DB_ROW, CS_DB_DONE or an error class (message: cs_db_errmsg). */
int cs_db_step(cs_dbst *st);
/* Back to before the first step (bindings kept). */
int cs_db_reset(cs_dbst *st);
int cs_db_clear_bindings(cs_dbst *st);

/* Columns of the current row (0-based). Pointers stay valid until the
 * next step or reset. */
int cs_db_column_type(cs_dbst *st, int i);
const unsigned char *cs_db_column_text(cs_dbst *st, int i);
int64_t cs_db_column_int64(cs_dbst *st, int i);
int cs_db_column_int(cs_dbst *st, int i);
double cs_db_column_double(cs_dbst *st, int i);
const void *cs_db_column_blob(cs_dbst *st, int i);
int cs_db_column_bytes(cs_dbst *st, int i);

/* Rows changed by the last INSERT/UPDATE/DELETE on db. */
int cs_db_changes(cs_db *db);
const char *cs_db_errmsg(cs_db *db);
/* The error class of the last failure on db (CS_DB_*). */
int cs_db_errcode(cs_db *db);

/* Maps an error class to cs_err and fills eb with the db message. */
cs_err cs_db_err(cs_db *db, int rc, cs_errbuf *eb);

/* Drops every cached statement of this thread that belongs to db. */
void cs_db_stmt_cache_drop(cs_db *db);
/* Resets every cached statement of this thread on db (readers between
 * requests: no open read transaction is kept). */
void cs_db_idle(cs_db *db);

#endif
