/* SPDX-License-Identifier: MIT
 * routes_suggestions.c: proposed edits that someone else approves (spec §3
 * "Suggestions", an extension of the suggest/approve operations).
 *
 * POST /suggestions stores a proposed content for an existing artifact
 * (suggest on the URI); it never touches the artifact. Approving (approve on
 * the URI) writes a new version through cs_version_write_tx(), authored by
 * the suggester, with approved_by = the approver and base_version = the
 * suggestion's base, and marks the suggestion approved in the same
 * savepoint, so that a version conflict leaves the suggestion pending and
 * two approvers racing produce one version. Rejecting only marks it. A
 * suggestion is visible to those who can read its URI, to its author and to
 * approvers. Ids are "sg_" + 16 random hex digits. */
#include <stdlib.h>
#include <string.h>

#include "cs_hash.h"
#include "cs_json.h"
#include "cs_uri.h"
#include "node.h"
#include "versions.h"

#define SUGG_ID_LEN (3 + 16)
#define LIST_DEFAULT 100
#define LIST_MAX 1000

#define SUGG_COLS                                                          \
    "id, uri, content, summary, base_version, status, author_id,"          \
    " created_at, decided_by, decided_at, version_id"

/* ------------------------------------------------------------------ */
/* rows */

static json_t *
col_str(cs_dbst *st, int i)
{
    const char *t = (const char *)cs_db_column_text(st, i);
    int n = cs_db_column_bytes(st, i);

    if (t == NULL || !cs_utf8_valid(t, (size_t)n))
        return json_null();
    return json_stringn(t, (size_t)n);
}

/* The suggestion JSON of the current row; NULL on OOM. */
static json_t *
sugg_json(cs_dbst *st)
{
    const char *ctext = (const char *)cs_db_column_text(st, 2);
    json_t *o = json_object(), *content = NULL;
    bool bad = o == NULL;

    if (ctext == NULL ||
        cs_json_parse(ctext, (size_t)cs_db_column_bytes(st, 2), &content,
                      NULL) != CS_OK)
        content = json_null();
    if (bad) {
        json_decref(content);
        return NULL;
    }
    bad |= json_object_set_new(o, "id", col_str(st, 0)) != 0;
    bad |= json_object_set_new(o, "uri", col_str(st, 1)) != 0;
    bad |= json_object_set_new(o, "status", col_str(st, 5)) != 0;
    bad |= json_object_set_new(o, "content", content) != 0;
    bad |= json_object_set_new(o, "summary", col_str(st, 3)) != 0;
    bad |= json_object_set_new(
               o, "base_version",
               cs_db_column_type(st, 4) == CS_DB_NULL
                   ? json_null()
                   : json_integer(cs_db_column_int64(st, 4))) != 0;
    bad |= json_object_set_new(o, "author_id", col_str(st, 6)) != 0;
    bad |= json_object_set_new(o, "created_at", col_str(st, 7)) != 0;
    bad |= json_object_set_new(o, "decided_by", col_str(st, 8)) != 0;
    bad |= json_object_set_new(o, "decided_at", col_str(st, 9)) != 0;
    bad |= json_object_set_new(o, "version_id", col_str(st, 10)) != 0;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The suggestion `id` on db; CS_ENOTFOUND when unknown. */
static cs_err
sugg_load(cs_db *db, const char *id, json_t **out, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db, "SELECT " SUGG_COLS
                                   " FROM suggestions WHERE id = ?1");
    cs_err rv = CS_OK;
    int rc;

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW) {
        *out = sugg_json(st);
        if (*out == NULL)
            rv = CS_ENOMEM;
    } else if (rc == CS_DB_DONE) {
        rv = cs_errf(eb, CS_ENOTFOUND, "suggestion %s not found", id);
    } else {
        rv = cs_db_err(db, rc, eb);
    }
    cs_db_reset(st);
    return rv;
}

static const char *
jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ------------------------------------------------------------------ */
/* POST /suggestions */

typedef struct new_arg {
    char id[SUGG_ID_LEN + 1];
    const char *uri, *summary, *author_id;
    const char *content;   /* canonical JSON of the proposed content */
    int64_t base;
    json_t *out;
} new_arg;

static cs_err
new_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    new_arg *a = p;
    cs_db *db = cs_tx_db(tx);
    char now[CS_TIME_LEN];
    cs_dbst *st;
    int rc;

    st = cs_stmt(db, "INSERT INTO suggestions(id, uri, content, summary,"
                     " base_version, status, author_id, created_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_time_format(cs_now_us(), now);
    cs_db_bind_text(st, 1, a->id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, a->uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, a->content, -1, CS_DB_STATIC);
    if (a->summary != NULL)
        cs_db_bind_text(st, 4, a->summary, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, 4);
    cs_db_bind_int64(st, 5, a->base);
    cs_db_bind_text(st, 6, a->author_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 7, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    return sugg_load(db, a->id, &a->out, eb);
}

static void
h_suggest(cs_req *r)
{
    json_t *body = cs_req_body(r), *content;
    const char *uri = NULL, *summary = NULL;
    char *ctext = NULL;
    int64_t base;
    cs_version_ref head;
    cs_content probe = {0};
    cs_errbuf eb = {{0}};
    new_arg a;
    cs_err rv;

    memset(&a, 0, sizeof(a));
    if (!json_is_object(body)) {
        cs_res_error(r, 400, "bad_request",
                     "request body must be a JSON object");
        return;
    }
    if (!cs_req_body_str(r, body, "uri", true, CS_URI_MAX * 2, &uri))
        return;
    if (cs_uri_parse(uri, NULL, &eb) != CS_OK) {
        cs_res_error(r, 400, "invalid_uri", "invalid uri: %s", eb.msg);
        return;
    }
    if (!cs_req_authorize(r, uri, CS_OP_SUGGEST))
        return;
    if (!cs_req_body_str(r, body, "summary", false, CS_SUMMARY_MAX,
                         &summary) ||
        !cs_req_body_base(r, body, &base))
        return;
    content = json_object_get(body, "content");
    /* Same rules as PUT: what would be stored must be storable. */
    rv = cs_content_encode(content, NULL, &probe, &eb);
    cs_content_free(&probe);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    ctext = cs_json_canonical(content, NULL);
    if (ctext == NULL) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        return;
    }

    rv = cs_version_find(cs_req_db(r), uri, -1, NULL, &head, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    if (head.deleted) {
        cs_res_error_x(r, 404, "not_found", json_pack("{s:b}", "deleted", 1),
                       "artifact %s is deleted", uri);
        goto out;
    }
    if (base < 0) {
        base = head.version;
    } else if (base != head.version) {
        cs_res_error(r, 409, "version_conflict",
                     "base_version %lld is not the head version %lld",
                     (long long)base, (long long)head.version);
        goto out;
    }

    memcpy(a.id, "sg_", 3);
    if (cs_random_hex(a.id + 3, 8) != CS_OK) {
        cs_res_store_error(r, CS_EIO, NULL);
        goto out;
    }
    a.uri = uri;
    a.summary = summary;
    a.author_id = cs_req_actor(r)->actor_id;
    a.content = ctext;
    a.base = base;
    rv = cs_store_write(cs_req_node(r)->store, new_fn, &a, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    cs_res_json(r, 201, a.out);
    a.out = NULL;
out:
    json_decref(a.out);
    free(ctext);
}

/* ------------------------------------------------------------------ */
/* GET /suggestions */

/* True when the caller may see a suggestion on uri authored by author. */
static bool
may_see(cs_req *r, const char *uri, const char *author)
{
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);

    if (author != NULL && strcmp(author, me->actor_id) == 0)
        return true;
    return cs_authz_check(n->authz, cs_req_db(r), me, uri,
                          CS_OP_READ, NULL) ||
           cs_authz_check(n->authz, cs_req_db(r), me, uri, CS_OP_APPROVE,
                          NULL);
}

static void
h_list(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    const char *uri = NULL, *status = cs_req_query(r, "status");
    const char *cursor = cs_req_query(r, "cursor");
    char *cur_at = NULL;
    const char *cur_id = "";
    int64_t limit, count = 0;
    json_t *res = NULL, *arr = NULL, *last = NULL;
    cs_dbst *st;
    bool more = false, bad = false;
    int rc = CS_DB_DONE;

    if (cs_req_query(r, "uri") != NULL && !cs_req_uri(r, &uri))
        return;
    if (status != NULL && *status == '\0')
        status = NULL;
    if (status != NULL && strcmp(status, "pending") != 0 &&
        strcmp(status, "approved") != 0 && strcmp(status, "rejected") != 0) {
        cs_res_error(r, 400, "bad_request",
                     "status must be pending, approved or rejected");
        return;
    }
    if (!cs_req_query_int(r, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit))
        return;
    if (cursor != NULL && *cursor != '\0') {
        const char *bar = strchr(cursor, '|');
        if (bar == NULL || bar == cursor) {
            cs_res_error(r, 400, "bad_request", "malformed cursor");
            return;
        }
        cur_at = strndup(cursor, (size_t)(bar - cursor));
        cur_id = bar + 1;
        if (cur_at == NULL) {
            cs_res_store_error(r, CS_ENOMEM, NULL);
            return;
        }
    }
    res = json_object();
    arr = json_array();
    if (res == NULL || arr == NULL ||
        json_object_set(res, "suggestions", arr) != 0) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    st = cs_stmt(db, "SELECT " SUGG_COLS " FROM suggestions"
                     " WHERE (?1 IS NULL OR uri = ?1)"
                     " AND (?2 IS NULL OR status = ?2)"
                     " AND (created_at, id) > (?3, ?4)"
                     " ORDER BY created_at, id");
    if (st == NULL) {
        cs_res_store_error(r, CS_EDB, NULL);
        goto out;
    }
    if (uri != NULL)
        cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    if (status != NULL)
        cs_db_bind_text(st, 2, status, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, cur_at != NULL ? cur_at : "", -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, cur_id, -1, CS_DB_STATIC);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        const char *suri = (const char *)cs_db_column_text(st, 1);
        const char *author = (const char *)cs_db_column_text(st, 6);
        json_t *e;
        if (suri == NULL || !may_see(r, suri, author))
            continue;
        if (count == limit) {
            more = true;
            break;
        }
        e = sugg_json(st);
        if (e == NULL || json_array_append_new(arr, e) != 0) {
            bad = true;
            break;
        }
        last = e;
        count++;
    }
    cs_db_reset(st);
    if (bad || (rc != CS_DB_ROW && rc != CS_DB_DONE)) {
        cs_res_store_error(r, bad ? CS_ENOMEM : CS_EDB, NULL);
        goto out;
    }
    if (more) {
        json_t *nc = json_sprintf("%s|%s", jstr(last, "created_at"),
                                  jstr(last, "id"));
        if (nc == NULL || json_object_set_new(res, "next_cursor", nc) != 0) {
            cs_res_store_error(r, CS_ENOMEM, NULL);
            goto out;
        }
    } else if (json_object_set_new(res, "next_cursor", json_null()) != 0) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    cs_res_json(r, 200, res);
    res = NULL;
out:
    json_decref(arr);
    json_decref(res);
    free(cur_at);
}

/* ------------------------------------------------------------------ */
/* POST /suggestions/{id}/approve and /reject */

typedef struct decide {
    const char *id;
    const char *decider;
    bool approve;
    cs_version_write w;      /* approve only */
    cs_vw_status status;
    bool not_pending;
    json_t *version;         /* approve: the new version */
    json_t *sugg;            /* the updated suggestion */
} decide;

static cs_err
decide_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    decide *a = p;
    cs_db *db = cs_tx_db(tx);
    char now[CS_TIME_LEN];
    const char *vid = NULL;
    cs_dbst *st;
    cs_err rv;
    int rc;

    if (a->approve) {
        rv = cs_version_write_tx(tx, &a->w, &a->status, &a->version, eb);
        if (rv != CS_OK)
            return rv;
        vid = jstr(a->version, "version_id");
    }
    st = cs_stmt(db, "UPDATE suggestions SET status = ?2, decided_by = ?3,"
                     " decided_at = ?4, version_id = ?5"
                     " WHERE id = ?1 AND status = 'pending'");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_time_format(cs_now_us(), now);
    cs_db_bind_text(st, 1, a->id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, a->approve ? "approved" : "rejected", -1,
                      CS_DB_STATIC);
    cs_db_bind_text(st, 3, a->decider, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, now, -1, CS_DB_STATIC);
    if (vid != NULL)
        cs_db_bind_text(st, 5, vid, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, 5);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    if (cs_db_changes(db) == 0) {
        a->not_pending = true;
        return cs_errf(eb, CS_ECONFLICT, "suggestion %s is no longer pending",
                       a->id);
    }
    return sugg_load(db, a->id, &a->sugg, eb);
}

static void
decide_req(cs_req *r, bool approve)
{
    cs_db *db = cs_req_db(r);
    const char *id = cs_req_param(r, 0);
    const char *uri, *status, *author;
    json_t *s = NULL, *res = NULL;
    cs_actor suggester;
    cs_content c = {0};
    cs_errbuf eb = {{0}};
    decide a;
    cs_err rv;

    memset(&a, 0, sizeof(a));
    if (id == NULL || strlen(id) != SUGG_ID_LEN ||
        strncmp(id, "sg_", 3) != 0) {
        cs_res_error(r, 404, "not_found", "suggestion %s not found",
                     id != NULL ? id : "");
        return;
    }
    rv = sugg_load(db, id, &s, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    uri = jstr(s, "uri");
    status = jstr(s, "status");
    author = jstr(s, "author_id");
    if (uri == NULL || status == NULL || author == NULL) {
        cs_res_store_error(r, CS_EDB, NULL);
        goto out;
    }
    if (!cs_req_authorize(r, uri, CS_OP_APPROVE))
        goto out;
    if (strcmp(status, "pending") != 0) {
        cs_res_error(r, 409, "conflict", "suggestion %s is already %s", id,
                     status);
        goto out;
    }

    a.id = id;
    a.decider = cs_req_actor(r)->actor_id;
    a.approve = approve;
    if (approve) {
        json_t *base = json_object_get(s, "base_version");
        rv = cs_actor_load(db, author, &suggester);
        if (rv != CS_OK) {
            cs_res_error(r, 409, "conflict",
                         "the suggester %s is not a known actor", author);
            goto out;
        }
        rv = cs_content_encode(json_object_get(s, "content"), NULL, &c, &eb);
        if (rv != CS_OK) {
            cs_res_store_error(r, rv, &eb);
            goto out;
        }
        a.w.kind = CS_VW_UPDATE;
        a.w.uri = uri;
        a.w.content = c.bytes;
        a.w.len = c.len;
        a.w.content_hash = c.hash;
        a.w.content_json = c.json;
        a.w.summary = jstr(s, "summary");
        a.w.author = &suggester;
        a.w.approved_by = a.decider;
        a.w.prov_actor_id = a.decider;
        a.w.base_version = json_is_integer(base) ? json_integer_value(base)
                                                 : -1;
    }
    rv = cs_store_write(cs_req_node(r)->store, decide_fn, &a, &eb);
    if (rv != CS_OK) {
        if (a.not_pending)
            cs_res_error(r, 409, "conflict", "%s", eb.msg);
        else
            cs_res_version_error(r, rv, a.status, &eb);
        goto out;
    }
    if (approve) {
        res = json_pack("{s:O,s:O}", "suggestion", a.sugg, "version",
                        a.version);
        if (res == NULL) {
            cs_res_store_error(r, CS_ENOMEM, NULL);
            goto out;
        }
        cs_res_json(r, 200, res);
    } else {
        cs_res_json(r, 200, a.sugg);
        a.sugg = NULL;
    }
out:
    json_decref(a.sugg);
    json_decref(a.version);
    json_decref(s);
    cs_content_free(&c);
}

static void
h_approve(cs_req *r)
{
    decide_req(r, true);
}

static void
h_reject(cs_req *r)
{
    decide_req(r, false);
}

const cs_route cs_routes_suggestions[] = {
    {"POST", "/suggestions", h_suggest, CS_ROUTE_BODY},
    {"GET", "/suggestions", h_list, 0},
    {"POST", "/suggestions/{}/approve", h_approve, 0},
    {"POST", "/suggestions/{}/reject", h_reject, 0},
    {NULL, NULL, NULL, 0},
};
