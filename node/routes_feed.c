/* SPDX-License-Identifier: MIT
 * routes_feed.c: the change feed (/changes, /domains/{d}/changes),
 * persistent subscriptions and the SSE streams.
 *
 * Feed pages are built as text: each stored event body (JSON without
 * "seq") gets "seq" spliced in front, so paging never re-parses events.
 * Read filtering: events the caller cannot read are skipped silently, and
 * next_since is the last seq *scanned*, so paging always makes progress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_uri.h"
#include "node.h"
#include "sse.h"

#define FEED_MAX 1000
#define SCAN_FACTOR 20 /* rows scanned per returned event, at most */

/* since= is a seq or an RFC 3339 time; answers 400 itself on error. */
static bool
parse_since(cs_req *r, const char *v, int64_t *out)
{
    char *end = NULL;
    long long x;
    int64_t us;
    cs_dbst *st;
    if (v == NULL || *v == '\0') {
        *out = 0;
        return true;
    }
    x = strtoll(v, &end, 10);
    if (end != v && *end == '\0') {
        if (x < 0) {
            cs_res_error(r, 400, "bad_request", "since must be >= 0");
            return false;
        }
        *out = x;
        return true;
    }
    if (cs_time_parse(v, &us) != CS_OK) {
        cs_res_error(r, 400, "bad_request",
                     "since must be a seq (integer) or an RFC 3339 time, "
                     "got '%.64s'",
                     v);
        return false;
    }
    /* The feed is in commit order and created_us is the local commit
     * time, so "after time T" = after the last event at or before T. */
    st = cs_stmt(cs_req_db(r), "SELECT COALESCE(MAX(seq), 0) FROM"
                               " change_events WHERE created_us <= ?1");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return false;
    }
    cs_db_bind_int64(st, 1, us);
    *out = cs_db_step(st) == CS_DB_ROW ? cs_db_column_int64(st, 0) : 0;
    cs_db_reset(st);
    return true;
}

static void
feed_page(cs_req *r, const char *org, const char *domain)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    const cs_actor *me = cs_req_actor(r);
    const char *actor = cs_req_query(r, "actor");
    int64_t since, limit, last = 0, head, scanned = 0, returned = 0;
    cs_dbst *st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool reached_end = false, more;

    if (!parse_since(r, cs_req_query(r, "since"), &since) ||
        !cs_req_query_int(r, "limit", 100, 1, FEED_MAX, &limit))
        return;
    if (domain != NULL)
        st = cs_stmt(db, "SELECT seq, artifact_uri, body, author_id FROM"
                         " change_events WHERE domain = ?2 AND"
                         " (?3 IS NULL OR org = ?3) AND seq > ?1"
                         " ORDER BY seq LIMIT ?4");
    else
        st = cs_stmt(db, "SELECT seq, artifact_uri, body, author_id FROM"
                         " change_events WHERE seq > ?1 ORDER BY seq"
                         " LIMIT ?4");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    last = since;
    cs_buf_appendf(&buf, &len, &cap, "{\"events\":[");
    for (;;) {
        int rows = 0;
        int64_t page = limit * 2;
        cs_db_reset(st);
        cs_db_clear_bindings(st);
        cs_db_bind_int64(st, 1, last);
        if (domain != NULL) {
            cs_db_bind_text(st, 2, domain, -1, CS_DB_STATIC);
            if (org != NULL)
                cs_db_bind_text(st, 3, org, -1, CS_DB_STATIC);
        }
        cs_db_bind_int64(st, 4, page);
        while (returned < limit && cs_db_step(st) == CS_DB_ROW) {
            int64_t seq = cs_db_column_int64(st, 0);
            const char *uri = (const char *)cs_db_column_text(st, 1);
            const char *body = (const char *)cs_db_column_text(st, 2);
            const char *author = (const char *)cs_db_column_text(st, 3);
            rows++;
            scanned++;
            last = seq;
            if (actor != NULL && *actor && strcmp(actor, author) != 0)
                continue;
            if (!cs_authz_check(n->authz, db, me, uri, CS_OP_READ, NULL))
                continue;
            cs_buf_appendf(&buf, &len, &cap, "%s{\"seq\":%lld%s%s",
                           returned ? "," : "", (long long)seq,
                           body[1] != '}' ? "," : "", body + 1);
            returned++;
        }
        if (returned >= limit)
            break;
        if (rows < page) {
            reached_end = true;
            break;
        }
        if (scanned >= limit * SCAN_FACTOR)
            break;
    }
    cs_db_reset(st);
    head = cs_store_head_seq(n->store);
    /* Unfiltered feeds also report events committed after our snapshot. */
    more = !reached_end || (domain == NULL && last < head);
    cs_buf_appendf(&buf, &len, &cap,
                   "],\"next_since\":%lld,\"has_more\":%s,\"head\":%lld}",
                   (long long)last, more ? "true" : "false", (long long)head);
    if (buf == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        return;
    }
    cs_res_text(r, 200, "application/json", buf, len);
}

static void
h_changes(cs_req *r)
{
    feed_page(r, NULL, NULL);
}

static void
h_domain_changes(cs_req *r)
{
    const char *domain = cs_req_param(r, 0);
    const char *org = cs_req_query(r, "org");
    if (org != NULL && *org == '\0')
        org = NULL;
    feed_page(r, org, domain);
}

/* ---- subscriptions ---- */

static json_t *
sub_json(cs_dbst *st)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:s}", "id",
                     (const char *)cs_db_column_text(st, 0), "actor_id",
                     (const char *)cs_db_column_text(st, 1), "pattern",
                     (const char *)cs_db_column_text(st, 2), "cursor",
                     (json_int_t)cs_db_column_int64(st, 3), "created_at",
                     (const char *)cs_db_column_text(st, 4));
}

typedef struct sub_new {
    char id[24];
    const char *actor_id, *pattern;
    int64_t cursor;
    char created_at[CS_TIME_LEN];
} sub_new;

static cs_err
sub_insert(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    sub_new *s = arg;
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st = cs_stmt(db, "INSERT INTO subscriptions(id, actor_id,"
                                   " pattern, cursor, created_at) VALUES"
                                   " (?1, ?2, ?3, ?4, ?5)");
    int rc;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, s->id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, s->actor_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, s->pattern, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 4, s->cursor);
    cs_db_bind_text(st, 5, s->created_at, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    return rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
}

static void
h_sub_create(cs_req *r)
{
    json_t *b = cs_req_body(r);
    cs_node *n = cs_req_node(r);
    cs_errbuf eb = {{0}};
    sub_new s;
    char hex[17];
    json_t *since;
    cs_err rv;

    memset(&s, 0, sizeof(s));
    if (!json_is_object(b)) {
        cs_res_error(r, 400, "bad_request", "body must be a JSON object");
        return;
    }
    rv = cs_json_get_str(b, "pattern", &s.pattern, &eb);
    if (rv == CS_ENOTFOUND) {
        cs_res_error(r, 400, "bad_request", "missing field 'pattern'");
        return;
    }
    if (rv != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return;
    }
    if (cs_pattern_validate(s.pattern, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "invalid pattern: %s", eb.msg);
        return;
    }
    since = json_object_get(b, "since");
    if (since == NULL || json_is_null(since)) {
        s.cursor = cs_store_head_seq(n->store);
    } else if (json_is_integer(since) && json_integer_value(since) >= 0) {
        s.cursor = json_integer_value(since);
    } else {
        cs_res_error(r, 400, "bad_request",
                     "field 'since' must be a non-negative integer seq");
        return;
    }
    cs_random_hex(hex, 8);
    snprintf(s.id, sizeof(s.id), "sub_%s", hex);
    s.actor_id = cs_req_actor(r)->actor_id;
    cs_time_format(cs_now_us(), s.created_at);
    rv = cs_store_write(n->store, sub_insert, &s, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    cs_res_json(r, 201,
                json_pack("{s:s,s:s,s:s,s:I,s:s}", "id", s.id, "actor_id",
                          s.actor_id, "pattern", s.pattern, "cursor",
                          (json_int_t)s.cursor, "created_at", s.created_at));
}

static void
h_sub_list(cs_req *r)
{
    cs_dbst *st = cs_stmt(cs_req_db(r),
                               "SELECT id, actor_id, pattern, cursor,"
                               " created_at FROM subscriptions WHERE"
                               " actor_id = ?1 ORDER BY created_at, id");
    json_t *arr = json_array();
    if (st == NULL) {
        json_decref(arr);
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    cs_db_bind_text(st, 1, cs_req_actor(r)->actor_id, -1, CS_DB_STATIC);
    while (cs_db_step(st) == CS_DB_ROW)
        json_array_append_new(arr, sub_json(st));
    cs_db_reset(st);
    cs_res_json(r, 200, json_pack("{s:o}", "subscriptions", arr));
}

/* Loads a subscription; answers 404/403 itself and returns false. */
static bool
sub_load(cs_req *r, const char *id, char *pattern, size_t plen,
         int64_t *cursor)
{
    cs_dbst *st = cs_stmt(cs_req_db(r),
                               "SELECT actor_id, pattern, cursor FROM"
                               " subscriptions WHERE id = ?1");
    bool ok = false;
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return false;
    }
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_ROW) {
        cs_res_error(r, 404, "not_found", "no subscription '%s'", id);
    } else if (strcmp((const char *)cs_db_column_text(st, 0),
                      cs_req_actor(r)->actor_id) != 0) {
        cs_res_error(r, 403, "forbidden",
                     "subscription '%s' belongs to another actor", id);
    } else {
        snprintf(pattern, plen, "%s", cs_db_column_text(st, 1));
        *cursor = cs_db_column_int64(st, 2);
        ok = true;
    }
    cs_db_reset(st);
    return ok;
}

static cs_err
sub_delete(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st = cs_stmt(db, "DELETE FROM subscriptions WHERE id = ?1");
    int rc;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, (const char *)arg, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    return rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
}

static void
h_sub_delete(cs_req *r)
{
    char pattern[1100];
    int64_t cursor;
    cs_errbuf eb = {{0}};
    cs_err rv;
    if (!sub_load(r, cs_req_param(r, 0), pattern, sizeof(pattern), &cursor))
        return;
    rv = cs_store_write(cs_req_node(r)->store, sub_delete,
                        (void *)cs_req_param(r, 0), &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    cs_res_text(r, 204, "application/json", NULL, 0);
}

/* Last-Event-ID wins over since=; -1 when neither (start live). */
static bool
resume_point(cs_req *r, int64_t dflt, int64_t *out)
{
    const char *lei = cs_req_header(r, "Last-Event-ID");
    const char *since = cs_req_query(r, "since");
    const char *v = (lei != NULL && *lei) ? lei : since;
    char *end = NULL;
    long long x;
    if (v == NULL || *v == '\0') {
        *out = dflt;
        return true;
    }
    x = strtoll(v, &end, 10);
    if (end != v && *end == '\0' && x >= 0) {
        *out = x;
        return true;
    }
    if (v == since)
        return parse_since(r, v, out);
    cs_res_error(r, 400, "bad_request",
                 "Last-Event-ID must be a non-negative integer seq");
    return false;
}

static void
start_stream(cs_req *r, const char *pattern, int64_t since, const char *sub)
{
    sse_client *c = NULL;
    if (sse_client_new(cs_req_node(r)->hub, cs_req_actor(r), pattern, since,
                       sub, &c) != CS_OK) {
        cs_res_error(r, 503, "unavailable", "cannot open a stream");
        return;
    }
    cs_res_sse(r, c);
}

static void
h_stream(cs_req *r)
{
    const char *pattern = cs_req_query(r, "pattern");
    cs_errbuf eb = {{0}};
    int64_t since;
    if (pattern == NULL || *pattern == '\0')
        pattern = "**";
    if (cs_pattern_validate(pattern, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "invalid pattern: %s", eb.msg);
        return;
    }
    if (!resume_point(r, -1, &since))
        return;
    start_stream(r, pattern, since, NULL);
}

static void
h_sub_feed(cs_req *r)
{
    char pattern[1100];
    int64_t cursor, since;
    if (!sub_load(r, cs_req_param(r, 0), pattern, sizeof(pattern), &cursor))
        return;
    if (!resume_point(r, cursor, &since))
        return;
    start_stream(r, pattern, since, cs_req_param(r, 0));
}

const cs_route cs_routes_feed[] = {
    {"GET", "/changes", h_changes, 0},
    {"GET", "/domains/{}/changes", h_domain_changes, 0},
    {"POST", "/subscriptions", h_sub_create, CS_ROUTE_BODY},
    {"GET", "/subscriptions", h_sub_list, 0},
    {"GET", "/subscriptions/stream", h_stream, 0},
    {"GET", "/subscriptions/{}/feed", h_sub_feed, 0},
    {"DELETE", "/subscriptions/{}", h_sub_delete, 0},
    {NULL, NULL, NULL, 0},
};
