/* SPDX-License-Identifier: MIT
 * cs_sqlpg.h: the node's SQL, written in SQLite's dialect, rewritten for
 * PostgreSQL when a statement is prepared there (node/db.c):
 *   ?N and ?                 -> $N (? alone: the next number)
 *   ?N IS [NOT] NULL          -> $N::text IS [NOT] NULL (PostgreSQL cannot
 *                                type a parameter from that alone; every such
 *                                parameter of the node is a text filter)
 *   a IS b / a IS NOT b       -> IS [NOT] DISTINCT FROM (b not NULL, TRUE,
 *                                FALSE or DISTINCT)
 *   INSERT OR IGNORE ...      -> INSERT ... ON CONFLICT DO NOTHING
 *   BEGIN IMMEDIATE|DEFERRED|EXCLUSIVE -> BEGIN
 * Text inside '...' and "..." is copied as is. Anything else SQLite-only
 * (json_each, FTS5, scalar MAX(a, b), sqlite_sequence) is not rewritten:
 * such a statement carries a PostgreSQL text of its own (cs_stmt_pg). */
#ifndef CS_SQLPG_H
#define CS_SQLPG_H

#include <stdbool.h>
#include <stddef.h>

/* Parameter numbers above this are not counted (PostgreSQL allows 65535;
 * the node uses fewer than 30). */
#define CS_SQLPG_MAX_PARAM 999

/* The PostgreSQL text of sql (malloc'd; NULL when out of memory) and, in
 * *nparams, its highest parameter number. */
char *cs_sqlpg_rewrite(const char *sql, int *nparams);

/* The highest $N of a PostgreSQL text; when used is not NULL, used[i]
 * tells whether $(i+1) appears, for i < nused. */
int cs_sqlpg_params(const char *sql, bool *used, int nused);

/* True when the n-th word (0-based) of sql is `word` (any case). */
bool cs_sqlpg_word(const char *sql, int n, const char *word);

/* The store location for logs: a PostgreSQL URL's password (user:PW@ or
 * password=PW) replaced by ***; anything else copied (truncated to sz). */
void cs_sqlpg_redact_url(const char *store, char *out, size_t sz);

#endif
