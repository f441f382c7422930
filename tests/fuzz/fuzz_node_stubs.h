/* SPDX-License-Identifier: MIT
 * fuzz_node_stubs.h: lets a libFuzzer target include node/versions.c and
 * node/ingest.c directly (their static functions are what is fuzzed) and
 * link with cs_core_fuzz only: no SQLite, no MHD, no store.
 *
 * Every function the included node code calls but the fuzzed paths must
 * never reach (the database, blobs, provenance, SSE publishing) aborts, so
 * an unexpected call is a finding. The request/response functions of
 * node/http.c are replaced by a fake cs_req that records the one answer
 * (status + body) a handler must produce. All stubs are weak: if the fuzz
 * library ever provides the real symbol, the real one wins.
 *
 * Include this AFTER the node .c files. */
#ifndef CS_FUZZ_NODE_STUBS_H
#define CS_FUZZ_NODE_STUBS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_WEAK __attribute__((weak))
#define FZ_NEVER(name)                                                        \
    do {                                                                      \
        fprintf(stderr, "fuzz: %s must not be reached on this path\n", name); \
        abort();                                                              \
    } while (0)

/* ---- the fake request ---- */
struct cs_req {
    cs_node *node;
    cs_actor actor;
    json_t *body;
    int answers;     /* responses produced: must end up exactly 1 */
    int status;
    json_t *resp;    /* the answer body (owned) */
    const char *query_uri;
};

FZ_WEAK cs_node *cs_req_node(cs_req *r) { return r->node; }
FZ_WEAK cs_db *cs_req_db(cs_req *r) { (void)r; return NULL; }
FZ_WEAK const cs_actor *cs_req_actor(cs_req *r) { return &r->actor; }
FZ_WEAK json_t *cs_req_body(cs_req *r) { return r->body; }
FZ_WEAK const char *
cs_req_query(cs_req *r, const char *key)
{
    return strcmp(key, "uri") == 0 ? r->query_uri : NULL;
}
FZ_WEAK bool
cs_req_query_uri(cs_req *r, const char *key, const char **out)
{
    *out = cs_req_query(r, key);
    if (*out == NULL) {
        cs_res_error(r, 400, "bad_request", "query parameter '%s' is required", key);
        return false;
    }
    if (cs_uri_parse(*out, NULL, NULL) != CS_OK) {
        cs_res_error(r, 400, "invalid_uri", "bad uri");
        return false;
    }
    return true;
}

FZ_WEAK void
cs_res_json(cs_req *r, int status, json_t *body)
{
    r->answers++;
    r->status = status;
    json_decref(r->resp);
    r->resp = body;
}

FZ_WEAK void
cs_res_error_x(cs_req *r, int status, const char *code, json_t *extra,
               const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status < 400 || status > 599 || code == NULL || msg[0] == '\0')
        abort(); /* an error answer needs a 4xx/5xx, a code and a message */
    r->answers++;
    r->status = status;
    json_decref(r->resp);
    r->resp = json_pack("{s:s,s:s}", "error", code, "message", msg);
    if (extra != NULL) {
        json_object_update(r->resp, extra);
        json_decref(extra);
    }
}

FZ_WEAK void
cs_res_store_error(cs_req *r, cs_err rv, const cs_errbuf *eb)
{
    (void)eb;
    cs_res_error(r, rv == CS_EFULL ? 507 : 503, "unavailable", "store error");
}

FZ_WEAK void
cs_buf_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    (void)buf; (void)len; (void)cap; (void)fmt;
}

/* ---- authorization, residency: decided by the fuzz input ---- */
static bool fz_allow = true;
FZ_WEAK bool
cs_authz_check(cs_authz *a, cs_db *db, const cs_actor *actor,
               const char *uri, unsigned op, char *matched_grant)
{
    (void)a; (void)db; (void)actor; (void)op; (void)matched_grant;
    return fz_allow || strstr(uri, "allowed") != NULL;
}
FZ_WEAK const char *cs_op_name(unsigned op) { (void)op; return "op"; }

/* ---- never reached from the fuzzed paths ---- */
FZ_WEAK const char *cs_store_node_id(const cs_store *s) { (void)s; return "fuzz-node"; }
FZ_WEAK const char *cs_store_region(const cs_store *s) { (void)s; return "eu"; }
FZ_WEAK const char *cs_store_epoch(const cs_store *s) { (void)s; return "00000000000000000000000000000000"; }
FZ_WEAK cs_dbst *cs_stmt(cs_db *db, const char *sql) { (void)db; (void)sql; FZ_NEVER("cs_stmt"); }
FZ_WEAK cs_err cs_db_err(cs_db *db, int rc, cs_errbuf *eb) { (void)db; (void)rc; (void)eb; FZ_NEVER("cs_db_err"); }
FZ_WEAK cs_db *cs_tx_db(cs_tx *tx) { (void)tx; FZ_NEVER("cs_tx_db"); }
FZ_WEAK cs_store *cs_tx_store(cs_tx *tx) { (void)tx; FZ_NEVER("cs_tx_store"); }
FZ_WEAK cs_err cs_tx_publish(cs_tx *tx, int64_t seq, const char *uri, const char *body)
{ (void)tx; (void)seq; (void)uri; (void)body; FZ_NEVER("cs_tx_publish"); }
FZ_WEAK cs_err cs_blob_put(cs_tx *tx, const char *hash, const void *data, size_t len, cs_errbuf *eb)
{ (void)tx; (void)hash; (void)data; (void)len; (void)eb; FZ_NEVER("cs_blob_put"); }
FZ_WEAK cs_err cs_blob_get(cs_store *s, cs_db *db, const char *hash, char **out, size_t *len, cs_errbuf *eb)
{ (void)s; (void)db; (void)hash; (void)out; (void)len; (void)eb; FZ_NEVER("cs_blob_get"); }
FZ_WEAK cs_err cs_prov_append(cs_tx *tx, const char *actor_id, const char *operation,
                              const char *uri, long long version_touched,
                              const char *version_id, const char *downstream_uri, cs_errbuf *eb)
{ (void)tx; (void)actor_id; (void)operation; (void)uri; (void)version_touched;
  (void)version_id; (void)downstream_uri; (void)eb; FZ_NEVER("cs_prov_append"); }
FZ_WEAK cs_err cs_forks_after_apply(cs_tx *tx, const char *uri, const cs_uri_parts *parts,
                                    const char *version_id, const char *parent_id,
                                    bool has_siblings, const char *author_id,
                                    const char *detected_by, cs_errbuf *eb)
{ (void)tx; (void)uri; (void)parts; (void)version_id; (void)parent_id; (void)has_siblings;
  (void)author_id; (void)detected_by; (void)eb; FZ_NEVER("cs_forks_after_apply"); }

/* The write transaction is not run: a target may set fz_store_hook to
 * stand in for it (e.g. mark the statuses the transaction would set
 * without a database); what the fuzzers check is everything before it. */
static cs_err (*fz_store_hook)(cs_write_fn fn, void *arg);
FZ_WEAK cs_err
cs_store_write(cs_store *s, cs_write_fn fn, void *arg, cs_errbuf *eb)
{
    (void)s; (void)eb;
    return fz_store_hook != NULL ? fz_store_hook(fn, arg) : CS_OK;
}

/* The database (node/db.h): the fuzzed paths never touch one. */
FZ_WEAK cs_dbst *cs_stmt_pg(cs_db *db, const char *sql, const char *pg_sql)
{ (void)db; (void)sql; (void)pg_sql; FZ_NEVER("cs_stmt_pg"); }
FZ_WEAK int cs_db_bind_int(cs_dbst *s, int i, int v) { (void)s; (void)i; (void)v; FZ_NEVER("db"); }
FZ_WEAK int cs_db_bind_int64(cs_dbst *s, int i, int64_t v) { (void)s; (void)i; (void)v; FZ_NEVER("db"); }
FZ_WEAK int cs_db_bind_null(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK int cs_db_bind_text(cs_dbst *s, int i, const char *v, int n, int life)
{ (void)s; (void)i; (void)v; (void)n; (void)life; FZ_NEVER("db"); }
FZ_WEAK int cs_db_bind_blob(cs_dbst *s, int i, const void *v, size_t n, int life)
{ (void)s; (void)i; (void)v; (void)n; (void)life; FZ_NEVER("db"); }
FZ_WEAK int cs_db_changes(cs_db *db) { (void)db; FZ_NEVER("db"); }
FZ_WEAK int cs_db_errcode(cs_db *db) { (void)db; FZ_NEVER("db"); }
FZ_WEAK const char *cs_db_errmsg(cs_db *db) { (void)db; FZ_NEVER("db"); }
FZ_WEAK int cs_db_column_bytes(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK int cs_db_column_int(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK int64_t cs_db_column_int64(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK double cs_db_column_double(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK const void *cs_db_column_blob(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK const unsigned char *cs_db_column_text(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK int cs_db_column_type(cs_dbst *s, int i) { (void)s; (void)i; FZ_NEVER("db"); }
FZ_WEAK int cs_db_reset(cs_dbst *s) { (void)s; FZ_NEVER("db"); }
FZ_WEAK int cs_db_step(cs_dbst *s) { (void)s; FZ_NEVER("db"); }

/* ---- helpers for the targets ---- */
static void
fz_req_init(cs_req *r, cs_node *n, json_t *body)
{
    memset(r, 0, sizeof(*r));
    r->node = n;
    r->body = body;
    snprintf(r->actor.actor_id, sizeof(r->actor.actor_id), "fed");
    snprintf(r->actor.actor_type, sizeof(r->actor.actor_type), "agent");
}

static void
fz_req_done(cs_req *r)
{
    json_decref(r->resp);
    r->resp = NULL;
}

#endif
