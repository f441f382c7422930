/* SPDX-License-Identifier: MIT
 * routes_federation.c: the federation endpoints of a node
 * (docs/federation-protocol.md): info, changes, stream, versions, payload,
 * checkpoints, dead letters and ingest. Every endpoint needs `replicate`
 * (or admin) on the URIs it touches; events a caller may not replicate
 * are skipped silently, like reads in /changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cs_json.h"
#include "cs_uri.h"
#include "federation.h"
#include "ingest.h"
#include "node.h"
#include "residency_node.h"
#include "sse.h"

#define FED_PAGE_DEFAULT 500
#define FED_PAGE_MAX 5000
#define FED_BYTES_DEFAULT (4u << 20)

/* True when the caller holds replicate or admin on some pattern: the
 * right to talk federation at all (per-URI checks come on top). */
static bool
may_federate(cs_req *r)
{
    const cs_actor *a = cs_req_actor(r);
    cs_dbst *st;
    bool ok = false;
    if (cs_authz_check_pattern(cs_req_node(r)->authz, cs_req_db(r), a, "**",
                               CS_OP_REPLICATE))
        return true;
    st = cs_stmt(cs_req_db(r),
                 "SELECT 1 FROM permissions WHERE (actor_id = ?1 OR"
                 " (?2 <> '' AND agent_class = ?2)) AND"
                 " (operations LIKE '%\"replicate\"%' OR"
                 "  operations LIKE '%\"admin\"%') LIMIT 1");
    if (st != NULL) {
        cs_db_bind_text(st, 1, a->actor_id, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, a->agent_class, -1, CS_DB_STATIC);
        ok = cs_db_step(st) == CS_DB_ROW;
        cs_db_reset(st);
    }
    if (!ok)
        cs_res_error(r, 403, "forbidden",
                     "actor '%s' holds no replicate grant", a->actor_id);
    return ok;
}

static bool
parse_mode(cs_req *r, bool *full)
{
    const char *m = cs_req_query(r, "mode");
    if (m == NULL || *m == '\0' || strcmp(m, "metadata") == 0) {
        *full = false;
        return true;
    }
    if (strcmp(m, "full") == 0) {
        *full = true;
        return true;
    }
    cs_res_error(r, 400, "bad_request", "mode must be metadata or full");
    return false;
}

static bool
parse_patterns(cs_req *r, const char **out)
{
    cs_errbuf eb = {{0}};
    const char *p = cs_req_query(r, "pattern");
    if (p == NULL || *p == '\0')
        p = "**";
    if (cs_fed_patterns_validate(p, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "invalid pattern: %s", eb.msg);
        return false;
    }
    *out = p;
    return true;
}

static void
h_info(cs_req *r)
{
    cs_store *s = cs_req_node(r)->store;
    if (!may_federate(r))
        return;
    json_t *lost = json_loads(cs_store_lost_seqs(s), 0, NULL);
    if (!json_is_array(lost)) {
        json_decref(lost);
        lost = json_array();
    }
    cs_res_json(r, 200,
                json_pack("{s:s,s:s,s:s,s:I,s:i,s:[ssssssss],s:o}", "node_id",
                          cs_store_node_id(s), "region", cs_store_region(s),
                          "epoch", cs_store_epoch(s), "head_seq",
                          (json_int_t)cs_store_head_seq(s), "proto",
                          CS_FED_PROTO, "capabilities", "changes", "stream",
                          "ingest", "versions", "payload", "checkpoints",
                          "deadletters", "origins", "lost_seqs", lost));
}

/* GET /federation/origins/{node_id}: the highest origin seq of that node
 * this node holds (applied, or deferred waiting for a parent). A restored
 * node asks its peers before giving out seqs again (new-epoch --peers). */
static void
h_origin_get(cs_req *r)
{
    const char *origin = cs_req_param(r, 0);
    cs_dbst *st;

    if (!may_federate(r))
        return;
    st = cs_stmt_pg(cs_req_db(r),
                 "SELECT MAX((SELECT COALESCE(MAX(origin_seq), 0) FROM"
                 "  artifact_versions WHERE origin_node = ?1),"
                 " (SELECT COALESCE(MAX(json_extract(event, '$.origin.seq')), 0)"
                 "  FROM fed_pending WHERE"
                 "  json_extract(event, '$.origin.node_id') = ?1)),"
                 " (SELECT COUNT(*) FROM artifact_versions WHERE"
                 "  origin_node = ?1)",
                 "SELECT GREATEST((SELECT COALESCE(MAX(origin_seq), 0) FROM"
                 "  artifact_versions WHERE origin_node = $1),"
                 " (SELECT COALESCE(MAX((event::jsonb #>> '{origin,seq}')::bigint), 0)"
                 "  FROM fed_pending WHERE"
                 "  event::jsonb #>> '{origin,node_id}' = $1)),"
                 " (SELECT COUNT(*) FROM artifact_versions WHERE"
                 "  origin_node = $1)");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    cs_db_bind_text(st, 1, origin, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_ROW) {
        cs_db_reset(st);
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    cs_res_json(r, 200,
                json_pack("{s:s,s:I,s:I}", "node_id", origin, "max_seq",
                          (json_int_t)cs_db_column_int64(st, 0), "versions",
                          (json_int_t)cs_db_column_int64(st, 1)));
    cs_db_reset(st);
}

static void
h_changes(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    const char *patterns;
    int64_t since, limit, max_bytes, last, head;
    size_t bytes = 0;
    bool full, more = false;
    json_t *events;
    cs_dbst *st;
    cs_fed_view view;
    int rows = 0;

    if (!may_federate(r) || !parse_mode(r, &full) ||
        !parse_patterns(r, &patterns) ||
        !cs_req_query_int(r, "since", 0, 0, 0, &since) ||
        !cs_req_query_int(r, "limit", FED_PAGE_DEFAULT, 1, FED_PAGE_MAX,
                          &limit) ||
        !cs_req_query_int(r, "max_bytes", FED_BYTES_DEFAULT, 1, 1 << 30,
                          &max_bytes))
        return;
    st = cs_stmt(db, "SELECT seq, artifact_uri, body FROM change_events"
                     " WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    events = json_array();
    last = since;
    cs_res_fed_view(n, cs_req_actor(r), &view); /* residency: withholding */
    cs_db_bind_int64(st, 1, since);
    cs_db_bind_int64(st, 2, limit);
    while (cs_db_step(st) == CS_DB_ROW) {
        int64_t seq = cs_db_column_int64(st, 0);
        const char *uri = (const char *)cs_db_column_text(st, 1);
        const char *body = (const char *)cs_db_column_text(st, 2);
        json_t *ev = NULL;
        size_t pb = 0;
        rows++;
        if (cs_fed_patterns_match(patterns, uri) &&
            cs_authz_check(n->authz, db, cs_req_actor(r), uri,
                           CS_OP_REPLICATE, NULL)) {
            if (cs_fed_event(n->store, db, seq, body, full, &view, &pb, &ev,
                             NULL) != CS_OK)
                continue;
            if (json_array_size(events) > 0 && bytes + pb > (size_t)max_bytes) {
                json_decref(ev);
                more = true; /* this one starts the next page */
                break;
            }
            bytes += pb;
            json_array_append_new(events, ev);
        }
        last = seq;
    }
    cs_db_reset(st);
    head = cs_store_head_seq(n->store);
    if (!more)
        more = rows >= limit || last < head;
    cs_res_json(r, 200,
                json_pack("{s:s,s:s,s:o,s:I,s:b,s:I}", "node_id",
                          cs_store_node_id(n->store), "epoch",
                          cs_store_epoch(n->store), "events", events,
                          "next_since", (json_int_t)last, "has_more", more,
                          "head", (json_int_t)head));
}

static void
h_stream(cs_req *r)
{
    const char *patterns, *lei = cs_req_header(r, "Last-Event-ID");
    int64_t since;
    bool full;
    sse_client *c = NULL;
    if (!may_federate(r) || !parse_mode(r, &full) ||
        !parse_patterns(r, &patterns) ||
        !cs_req_query_int(r, "since", 0, 0, 0, &since))
        return;
    if (lei != NULL && *lei) {
        char *end = NULL;
        long long x = strtoll(lei, &end, 10);
        if (end == lei || *end != '\0' || x < 0) {
            cs_res_error(r, 400, "bad_request",
                         "Last-Event-ID must be a non-negative integer seq");
            return;
        }
        since = x;
    }
    if (sse_client_new_fed(cs_req_node(r)->hub, cs_req_actor(r), patterns,
                           since, full, &c) != CS_OK) {
        cs_res_error(r, 503, "unavailable", "cannot open a stream");
        return;
    }
    cs_res_sse(r, c);
}

static void
h_versions(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    const char *uri;
    bool full;
    json_t *arr;
    cs_dbst *st;
    cs_fed_view view;
    if (!may_federate(r) || !cs_req_query_uri(r, "uri", &uri) ||
        !parse_mode(r, &full))
        return;
    if (!cs_authz_check(n->authz, db, cs_req_actor(r), uri, CS_OP_REPLICATE,
                        NULL)) {
        cs_res_error(r, 403, "forbidden", "no replicate permission on %s", uri);
        return;
    }
    st = cs_stmt(db, "SELECT seq, body FROM change_events WHERE"
                     " artifact_uri = ?1 ORDER BY seq");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    arr = json_array();
    cs_res_fed_view(n, cs_req_actor(r), &view); /* residency: withholding */
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    while (cs_db_step(st) == CS_DB_ROW) {
        json_t *ev = NULL;
        if (cs_fed_event(n->store, db, cs_db_column_int64(st, 0),
                         (const char *)cs_db_column_text(st, 1), full,
                         &view, NULL, &ev, NULL) == CS_OK)
            json_array_append_new(arr, ev);
    }
    cs_db_reset(st);
    cs_res_json(r, 200, json_pack("{s:s,s:o}", "uri", uri, "versions", arr));
}

static void
h_payload(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    const char *vid;
    char uri[1100] = "", hash[80] = "", ctype[300] = "", pstate[16] = "";
    long long version = 0;
    char *data = NULL;
    size_t len = 0;
    cs_errbuf eb = {{0}};
    cs_dbst *st;
    bool found = false;

    if (!may_federate(r) || !cs_req_query_str(r, "version_id", &vid))
        return;
    st = cs_stmt(db, "SELECT uri, content_hash, content_type, payload_state,"
                     " version FROM artifact_versions WHERE version_id = ?1");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    cs_db_bind_text(st, 1, vid, -1, CS_DB_STATIC);
    if (cs_db_step(st) == CS_DB_ROW) {
        found = true;
        snprintf(uri, sizeof(uri), "%s", cs_db_column_text(st, 0));
        if (cs_db_column_type(st, 1) != CS_DB_NULL)
            snprintf(hash, sizeof(hash), "%s", cs_db_column_text(st, 1));
        if (cs_db_column_type(st, 2) != CS_DB_NULL)
            snprintf(ctype, sizeof(ctype), "%s", cs_db_column_text(st, 2));
        snprintf(pstate, sizeof(pstate), "%s", cs_db_column_text(st, 3));
        version = cs_db_column_int64(st, 4);
    }
    cs_db_reset(st);
    if (!found) {
        cs_res_error(r, 404, "not_found", "no version %s", vid);
        return;
    }
    if (!cs_authz_check(n->authz, db, cs_req_actor(r), uri, CS_OP_REPLICATE,
                        NULL)) {
        cs_res_error(r, 403, "forbidden", "no replicate permission on %s", uri);
        return;
    }
    /* residency: on_behalf_of checks and withholding (answers when refused) */
    if (!cs_res_payload_gate(r, uri))
        return;
    if (hash[0] == '\0') {
        cs_res_error(r, 404, "not_found", "version %s is a deletion", vid);
        return;
    }
    if (strcmp(pstate, "inline") != 0 ||
        cs_blob_get(n->store, db, hash, &data, &len, &eb) != CS_OK) {
        cs_res_error(r, 404, "not_found",
                     "the payload of %s is not stored on this node", vid);
        return;
    }
    /* residency: the remote_fetch provenance row of an on-demand read */
    if (!cs_res_payload_served(r, uri, version, vid)) {
        free(data);
        return;
    }
    cs_res_header(r, "X-Content-Hash", hash);
    cs_res_text(r, 200, ctype[0] ? ctype : "application/octet-stream", data,
                len);
}

static void
h_checkpoint_get(cs_req *r)
{
    const char *src = cs_req_param(r, 0);
    cs_dbst *st;
    if (!may_federate(r))
        return;
    st = cs_stmt(cs_req_db(r), "SELECT epoch, seq, updated_at FROM"
                               " fed_checkpoints WHERE source = ?1");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    cs_db_bind_text(st, 1, src, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_ROW) {
        cs_db_reset(st);
        cs_res_error(r, 404, "not_found", "no checkpoint for source '%s'", src);
        return;
    }
    cs_res_json(r, 200,
                json_pack("{s:s,s:s,s:I,s:s}", "source", src, "epoch",
                          (const char *)cs_db_column_text(st, 0), "seq",
                          (json_int_t)cs_db_column_int64(st, 1),
                          "updated_at",
                          (const char *)cs_db_column_text(st, 2)));
    cs_db_reset(st);
}

static cs_err
checkpoint_delete(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st = cs_stmt(db, "DELETE FROM fed_checkpoints WHERE"
                                   " source = ?1");
    int rc;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, (const char *)arg, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    return cs_db_changes(db) > 0
               ? CS_OK
               : cs_errf(eb, CS_ENOTFOUND, "no checkpoint for source '%s'",
                         (const char *)arg);
}

static void
h_checkpoint_delete(cs_req *r)
{
    cs_errbuf eb = {{0}};
    cs_err rv;
    /* The link's own federation agent may reset the checkpoint it writes
     * (ctxsync-bridge reset-link): the worst it can cause is a replay,
     * which ingest answers with duplicates. */
    if (!may_federate(r))
        return;
    rv = cs_store_write(cs_req_node(r)->store, checkpoint_delete,
                        (void *)cs_req_param(r, 0), &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    cs_res_text(r, 204, "application/json", NULL, 0);
}

static void
h_deadletters(cs_req *r)
{
    int64_t limit, since;
    cs_dbst *st;
    json_t *arr;
    if (!may_federate(r) ||
        !cs_req_query_int(r, "limit", 100, 1, 1000, &limit) ||
        !cs_req_query_int(r, "since", 0, 0, 0, &since))
        return;
    st = cs_stmt(cs_req_db(r),
                 "SELECT id, event_id, version_id, uri, source, reason,"
                 " received_at FROM fed_deadletters WHERE (?1 = 0 OR id < ?1)"
                 " ORDER BY id DESC LIMIT ?2");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    arr = json_array();
    cs_db_bind_int64(st, 1, since);
    cs_db_bind_int64(st, 2, limit);
    while (cs_db_step(st) == CS_DB_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(cs_db_column_int64(st, 0)));
        for (int i = 1; i <= 6; i++) {
            static const char *const k[] = {"", "event_id", "version_id",
                                            "uri", "source", "reason",
                                            "received_at"};
            const unsigned char *v = cs_db_column_text(st, i);
            json_object_set_new(o, k[i], v ? json_string((const char *)v)
                                           : json_null());
        }
        json_array_append_new(arr, o);
    }
    cs_db_reset(st);
    cs_res_json(r, 200, json_pack("{s:o}", "deadletters", arr));
}

static void
h_ingest(cs_req *r)
{
    if (!may_federate(r))
        return;
    cs_ingest_handle(r);
}

const cs_route cs_routes_federation[] = {
    {"GET", "/federation/info", h_info, 0},
    {"GET", "/federation/changes", h_changes, 0},
    {"GET", "/federation/stream", h_stream, 0},
    {"GET", "/federation/versions", h_versions, 0},
    {"GET", "/federation/payload", h_payload, 0},
    {"GET", "/federation/checkpoints/{}", h_checkpoint_get, 0},
    {"GET", "/federation/origins/{}", h_origin_get, 0},
    {"DELETE", "/federation/checkpoints/{}", h_checkpoint_delete, 0},
    {"GET", "/federation/deadletters", h_deadletters, 0},
    {"POST", "/federation/ingest", h_ingest, CS_ROUTE_BODY},
    {NULL, NULL, NULL, 0},
};
