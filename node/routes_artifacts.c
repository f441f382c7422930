/* SPDX-License-Identifier: MIT
 * routes_artifacts.c: the artifact endpoints of spec §3: create, read,
 * update, soft delete, history, diff and list.
 *
 * Every handler follows the same order: validate the URI, decide 403 from
 * the URI alone (before any lookup), validate the rest of the input, and
 * only then touch the store. Content is encoded and hashed here, on the
 * worker thread; the writer thread only runs cs_version_write_tx(). Reads
 * run on the worker's read connection; GET /artifacts and /artifacts/diff
 * append their "read" provenance row (a small write, committed) before the
 * response is produced. History and list are metadata reads and record
 * nothing (docs/internals/versions.md). */
#include <stdlib.h>
#include <string.h>

#include "cs_diff.h"
#include "cs_base64.h"
#include "cs_json.h"
#include "cs_jsonpatch.h"
#include "cs_uri.h"
#include "node.h"
#include "residency_node.h"
#include "versions.h"

#define DOWNSTREAM_MAX 2048
#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* ------------------------------------------------------------------ */
/* helpers */

typedef struct vw_arg {
    cs_version_write w;
    cs_vw_status status;
    json_t *out;
} vw_arg;

static cs_err
vw_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    vw_arg *a = p;
    return cs_version_write_tx(tx, &a->w, &a->status, &a->out, eb);
}

/* Runs the version write and answers: ok_status with the artifact, or the
 * error. */
static void
run_write(cs_req *r, vw_arg *a, int ok_status)
{
    cs_errbuf eb = {{0}};
    cs_err rv;

    a->status = CS_VW_OK;
    a->out = NULL;
    rv = cs_store_write(cs_req_node(r)->store, vw_fn, a, &eb);
    if (rv == CS_OK && a->out != NULL) {
        cs_res_json(r, ok_status, a->out);
        return;
    }
    json_decref(a->out); /* fn succeeded but the commit failed */
    a->out = NULL;
    cs_res_version_error(r, rv, a->status, &eb);
}

/* Optional ?downstream_uri=: any printable UTF-8 up to 2048 bytes. */
static bool
query_downstream(cs_req *r, const char **out)
{
    const char *v = cs_req_query(r, "downstream_uri");
    size_t n;

    *out = NULL;
    if (v == NULL || *v == '\0')
        return true;
    n = strlen(v);
    if (n > DOWNSTREAM_MAX || !cs_utf8_valid(v, n))
        goto bad;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            goto bad;
    *out = v;
    return true;
bad:
    cs_res_error(r, 400, "invalid_uri",
                 "downstream_uri must be printable UTF-8 of at most %d bytes",
                 DOWNSTREAM_MAX);
    return false;
}

/* The 404 of a read that hit a tombstone. a: the tombstone's JSON
 * (borrowed). */
static void
res_deleted(cs_req *r, const char *uri, const json_t *a)
{
    json_t *extra = json_pack("{s:b}", "deleted", 1);
    json_t *fork_id = json_object_get(a, "fork_id");

    if (extra != NULL && json_is_string(fork_id)) {
        json_object_set_new(extra, "forked", json_true());
        json_object_set(extra, "fork_id", fork_id);
    }
    cs_res_error_x(r, 404, "not_found", extra, "artifact %s is deleted", uri);
}

/* ------------------------------------------------------------------ */
/* POST /artifacts */

static void
h_create(cs_req *r)
{
    json_t *body = cs_req_body(r);
    const char *uri = NULL, *name = NULL, *ctype = NULL, *summary = NULL;
    cs_content c = {0};
    cs_errbuf eb = {{0}};
    vw_arg a;
    cs_err rv;

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
    if (!cs_req_authorize(r, uri, CS_OP_WRITE))
        return;
    if (!cs_req_body_str(r, body, "name", false, CS_NAME_MAX, &name) ||
        !cs_req_body_str(r, body, "content_type", false, CS_CONTENT_TYPE_MAX,
                         &ctype) ||
        !cs_req_body_str(r, body, "summary", false, CS_SUMMARY_MAX, &summary))
        return;
    if (ctype != NULL && cs_content_type_check(ctype, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return;
    }
    rv = cs_content_encode(json_object_get(body, "content"), ctype, &c, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }

    memset(&a, 0, sizeof(a));
    a.w.kind = CS_VW_CREATE;
    a.w.uri = uri;
    a.w.content = c.bytes;
    a.w.len = c.len;
    a.w.content_hash = c.hash;
    a.w.content_json = c.json;
    a.w.content_type = ctype;
    a.w.name = name;
    a.w.summary = summary;
    a.w.author = cs_req_actor(r);
    a.w.base_version = -1;
    run_write(r, &a, 201);
    cs_content_free(&c);
}

/* ------------------------------------------------------------------ */
/* GET /artifacts */

static void
h_get(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    const char *uri, *vid, *downstream, *meta;
    bool meta_only;
    int64_t version;
    json_t *a = NULL;
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!cs_req_uri(r, &uri) ||
        !cs_req_authorize(r, uri, CS_OP_READ))
        return;
    if (!cs_req_query_int(r, "version", -1, 1, 0, &version) ||
        !query_downstream(r, &downstream))
        return;
    vid = cs_req_query(r, "version_id");
    if (vid != NULL && *vid == '\0')
        vid = NULL;
    if (vid != NULL && version > 0) {
        cs_res_error(r, 400, "bad_request",
                     "give either 'version' or 'version_id', not both");
        return;
    }
    meta = cs_req_query(r, "metadata_only");
    meta_only = meta != NULL && (strcmp(meta, "1") == 0 ||
                                 strcmp(meta, "true") == 0);
    rv = cs_artifact_read(n->store, cs_req_db(r), uri, version, vid,
                          !meta_only, &a, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    if (json_is_true(json_object_get(a, "deleted"))) {
        res_deleted(r, uri, a);
        goto out;
    }
    /* residency: a payload stored elsewhere is fetched on demand */
    if (!meta_only && cs_res_is_remote(a)) {
        cs_res_read_remote(r, uri, a, downstream);
        a = NULL;
        goto out;
    }
    if (!cs_req_record_read(
            r, uri, json_integer_value(json_object_get(a, "version")),
            json_string_value(json_object_get(a, "version_id")), downstream))
        goto out;
    cs_res_json(r, 200, a);
    a = NULL;
out:
    json_decref(a);
}

/* ------------------------------------------------------------------ */
/* PUT /artifacts?uri= */

static void
h_put(cs_req *r)
{
    json_t *body = cs_req_body(r);
    const char *uri, *ctype = NULL, *summary = NULL;
    int64_t base;
    cs_content c = {0};
    cs_errbuf eb = {{0}};
    vw_arg a;
    cs_err rv;

    if (!cs_req_uri(r, &uri) ||
        !cs_req_authorize(r, uri, CS_OP_WRITE))
        return;
    if (!json_is_object(body)) {
        cs_res_error(r, 400, "bad_request",
                     "request body must be a JSON object");
        return;
    }
    if (!cs_req_body_str(r, body, "content_type", false, CS_CONTENT_TYPE_MAX,
                         &ctype) ||
        !cs_req_body_str(r, body, "summary", false, CS_SUMMARY_MAX,
                         &summary) ||
        !cs_req_body_base(r, body, &base))
        return;
    if (ctype != NULL && cs_content_type_check(ctype, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return;
    }
    rv = cs_content_encode(json_object_get(body, "content"), ctype, &c, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }

    memset(&a, 0, sizeof(a));
    a.w.kind = CS_VW_UPDATE;
    a.w.uri = uri;
    a.w.content = c.bytes;
    a.w.len = c.len;
    a.w.content_hash = c.hash;
    a.w.content_json = c.json;
    a.w.content_type = ctype;
    a.w.summary = summary;
    a.w.author = cs_req_actor(r);
    a.w.base_version = base;
    run_write(r, &a, 200);
    cs_content_free(&c);
}

/* ------------------------------------------------------------------ */
/* DELETE /artifacts?uri= */

static void
h_delete(cs_req *r)
{
    const char *uri;
    int64_t base;
    vw_arg a;

    if (!cs_req_uri(r, &uri) ||
        !cs_req_authorize(r, uri, CS_OP_WRITE))
        return;
    if (!cs_req_query_int(r, "base_version", -1, 0, 0, &base))
        return;
    memset(&a, 0, sizeof(a));
    a.w.kind = CS_VW_DELETE;
    a.w.uri = uri;
    a.w.author = cs_req_actor(r);
    a.w.base_version = base;
    run_write(r, &a, 200);
}

/* ------------------------------------------------------------------ */
/* GET /artifacts/history?uri= */

static void
h_history(cs_req *r)
{
    const char *uri;
    json_t *h = NULL;
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!cs_req_uri(r, &uri) ||
        !cs_req_authorize(r, uri, CS_OP_READ))
        return;
    rv = cs_artifact_history(cs_req_db(r), uri, &h, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    cs_res_json(r, 200, h);
}

/* ------------------------------------------------------------------ */
/* GET /artifacts/diff */

typedef enum { FMT_LINES, FMT_UNIFIED, FMT_PATCH } diff_fmt;

/* One side of a diff: ?<num_key>= (head-path number) or ?<id_key>=. */
static bool
diff_side(cs_req *r, const char *uri, const char *num_key, const char *id_key,
          cs_version_ref *out)
{
    const char *vid = cs_req_query(r, id_key);
    int64_t num;
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!cs_req_query_int(r, num_key, 0, 1, 0, &num))
        return false;
    if (vid != NULL && *vid == '\0')
        vid = NULL;
    if (vid == NULL && num == 0) {
        cs_res_error(r, 400, "bad_request",
                     "missing required query parameter '%s' (or '%s')",
                     num_key, id_key);
        return false;
    }
    if (vid != NULL && num > 0) {
        cs_res_error(r, 400, "bad_request",
                     "give either '%s' or '%s', not both", num_key, id_key);
        return false;
    }
    rv = cs_version_find(cs_req_db(r), uri, num, vid, out, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return false;
    }
    return true;
}

static bool
side_content(cs_req *r, const cs_version_ref *v, char **buf, size_t *len)
{
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!v->deleted && strcmp(v->payload_state, "inline") != 0) {
        cs_res_error(r, 503, "unavailable",
                     "the payload of %s is not stored on this node",
                     v->version_id);
        return false;
    }
    rv = cs_version_content(cs_req_node(r)->store, cs_req_db(r), v, buf, len,
                            &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return false;
    }
    return true;
}

static json_t *
diff_head(const cs_version_ref *from, const cs_version_ref *to)
{
    return json_pack("{s:I,s:I,s:s,s:s}", "from", (json_int_t)from->version,
                     "to", (json_int_t)to->version, "from_id",
                     from->version_id, "to_id", to->version_id);
}

/* {from, to, from_id, to_id, ops, stats}; NULL on OOM. */
static json_t *
diff_lines_json(const cs_version_ref *from, const cs_version_ref *to,
                const cs_diff *d)
{
    json_t *o = diff_head(from, to), *ops = json_array(), *stats;
    size_t n = cs_diff_count(d), add = 0, rem = 0, same = 0;

    if (o == NULL || ops == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const cs_diff_op *op = cs_diff_get(d, i);
        char opc[2] = {op->op, '\0'};
        json_t *e = json_pack("{s:s,s:s#}", "op", opc, "line",
                              op->line != NULL ? op->line : "", (int)op->len);
        if (e == NULL)
            goto fail;
        if (op->no_newline &&
            json_object_set_new(e, "no_newline", json_true()) != 0) {
            json_decref(e);
            goto fail;
        }
        if (json_array_append_new(ops, e) != 0)
            goto fail;
    }
    cs_diff_stats(d, &add, &rem, &same);
    stats = json_pack("{s:I,s:I,s:I}", "added", (json_int_t)add, "removed",
                      (json_int_t)rem, "unchanged", (json_int_t)same);
    if (json_object_set_new(o, "ops", ops) != 0) {
        ops = NULL;
        json_decref(stats);
        goto fail;
    }
    ops = NULL;
    if (stats == NULL || json_object_set_new(o, "stats", stats) != 0)
        goto fail;
    return o;
fail:
    json_decref(ops);
    json_decref(o);
    return NULL;
}

static void
h_diff(cs_req *r)
{
    const char *uri, *fmt_s, *downstream;
    cs_version_ref from, to;
    char *a = NULL, *b = NULL, *text = NULL, *la = NULL, *lb = NULL;
    size_t alen = 0, blen = 0, tlen = 0;
    json_t *ja = NULL, *jb = NULL, *patch = NULL, *res = NULL;
    cs_diff *d = NULL;
    diff_fmt fmt;
    cs_err rv;

    if (!cs_req_uri(r, &uri) ||
        !cs_req_authorize(r, uri, CS_OP_READ))
        return;
    fmt_s = cs_req_query(r, "format");
    if (fmt_s == NULL || *fmt_s == '\0' || strcmp(fmt_s, "lines") == 0) {
        fmt = FMT_LINES;
    } else if (strcmp(fmt_s, "unified") == 0) {
        fmt = FMT_UNIFIED;
    } else if (strcmp(fmt_s, "json-patch") == 0) {
        fmt = FMT_PATCH;
    } else {
        cs_res_error(r, 400, "bad_request",
                     "format must be lines, unified or json-patch");
        return;
    }
    if (!query_downstream(r, &downstream))
        return;
    if (!diff_side(r, uri, "from", "from_id", &from) ||
        !diff_side(r, uri, "to", "to_id", &to))
        return;

    if (fmt == FMT_PATCH &&
        (from.deleted || to.deleted ||
         !cs_content_type_is_json(from.content_type) ||
         !cs_content_type_is_json(to.content_type))) {
        cs_res_error(r, 400, "not_json",
                     "json-patch needs JSON content in both versions "
                     "(content_type application/json)");
        return;
    }
    if (!side_content(r, &from, &a, &alen) || !side_content(r, &to, &b, &blen))
        goto out;

    if (fmt == FMT_PATCH) {
        if (cs_json_parse(a, alen, &ja, NULL) != CS_OK ||
            cs_json_parse(b, blen, &jb, NULL) != CS_OK) {
            cs_res_error(r, 400, "not_json",
                         "stored content is not valid JSON");
            goto out;
        }
        rv = cs_jsonpatch_diff(ja, jb, &patch);
        if (rv != CS_OK) {
            cs_res_store_error(r, rv, NULL);
            goto out;
        }
        res = diff_head(&from, &to);
        if (res == NULL || json_object_set_new(res, "patch", patch) != 0) {
            patch = NULL;
            cs_res_store_error(r, CS_ENOMEM, NULL);
            goto out;
        }
        patch = NULL;
    } else {
        rv = cs_diff_lines(a, alen, b, blen, &d);
        if (rv == CS_ETOOBIG) {
            cs_res_error(r, 400, "bad_request",
                         "the versions have too many lines to diff "
                         "(limit %d)", CS_DIFF_MAX_LINES);
            goto out;
        }
        if (rv != CS_OK) {
            cs_res_store_error(r, rv, NULL);
            goto out;
        }
        if (fmt == FMT_LINES) {
            res = diff_lines_json(&from, &to, d);
            if (res == NULL) {
                cs_res_store_error(r, CS_ENOMEM, NULL);
                goto out;
            }
        } else {
            size_t ul = strlen(uri) + 32;
            la = malloc(ul);
            lb = malloc(ul);
            if (la == NULL || lb == NULL) {
                cs_res_store_error(r, CS_ENOMEM, NULL);
                goto out;
            }
            snprintf(la, ul, "a/%s@%lld", uri, (long long)from.version);
            snprintf(lb, ul, "b/%s@%lld", uri, (long long)to.version);
            rv = cs_diff_unified(d, la, lb, 3, &text, &tlen);
            if (rv != CS_OK) {
                cs_res_store_error(r, rv, NULL);
                goto out;
            }
        }
    }

    if (!cs_req_record_read(r, uri, to.version, to.version_id, downstream))
        goto out;
    if (fmt == FMT_UNIFIED) {
        cs_res_text(r, 200, "text/plain; charset=utf-8", text, tlen);
        text = NULL;
    } else {
        cs_res_json(r, 200, res);
        res = NULL;
    }
out:
    cs_diff_free(d);
    free(a);
    free(b);
    free(text);
    free(la);
    free(lb);
    json_decref(ja);
    json_decref(jb);
    json_decref(patch);
    json_decref(res);
}

/* ------------------------------------------------------------------ */
/* GET /artifacts/list */

/* The list cursor: the last URI, base64url (a URI holds no NUL). */
static char *
cursor_decode(const char *in)
{
    size_t n = 0;
    char *out = cs_base64_decode(in, strlen(in), &n);
    if (out != NULL && memchr(out, '\0', n) != NULL) {
        free(out);
        return NULL;
    }
    return out;
}

static const char *
query_opt(cs_req *r, const char *key)
{
    const char *v = cs_req_query(r, key);
    return v != NULL && *v != '\0' ? v : NULL;
}

static void
h_list(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    const char *org = query_opt(r, "org"), *domain = query_opt(r, "domain");
    const char *prefix = query_opt(r, "prefix");
    const char *cur_s = query_opt(r, "cursor");
    char *cursor = NULL, *next = NULL, *last = NULL;
    int64_t limit;
    json_t *res = NULL, *arr = NULL;
    cs_dbst *st = NULL;
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    bool bad = false, more = false;
    int rc = CS_DB_DONE;
    int64_t count = 0;

    if (!cs_req_query_int(r, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit))
        return;
    if (cur_s != NULL && (cursor = cursor_decode(cur_s)) == NULL) {
        cs_res_error(r, 400, "bad_request", "malformed cursor");
        return;
    }
    res = json_object();
    arr = json_array();
    if (res == NULL || arr == NULL) {
        json_decref(arr);
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    if (json_object_set_new(res, "artifacts", arr) != 0) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    st = cs_stmt(db, "SELECT uri, name, org, domain, head_version,"
                     " created_at, updated_at FROM artifacts"
                     " WHERE deleted_at IS NULL AND uri > ?1 AND uri >= ?2"
                     " AND (?3 IS NULL OR org = ?3)"
                     " AND (?4 IS NULL OR domain = ?4)"
                     " ORDER BY uri");
    if (st == NULL) {
        cs_res_store_error(r, CS_EDB, NULL);
        goto out;
    }
    cs_db_bind_text(st, 1, cursor != NULL ? cursor : "", -1,
                      CS_DB_STATIC);
    cs_db_bind_text(st, 2, prefix != NULL ? prefix : "", -1, CS_DB_STATIC);
    if (org != NULL)
        cs_db_bind_text(st, 3, org, -1, CS_DB_STATIC);
    if (domain != NULL)
        cs_db_bind_text(st, 4, domain, -1, CS_DB_STATIC);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        const char *uri = (const char *)cs_db_column_text(st, 0);
        json_t *e;
        if (uri == NULL)
            continue;
        if (prefix != NULL && strncmp(uri, prefix, plen) != 0)
            break; /* sorted: past the prefix range */
        if (!cs_authz_check(n->authz, db, cs_req_actor(r), uri, CS_OP_READ,
                            NULL))
            continue;
        if (count == limit) {
            more = true;
            break;
        }
        e = json_pack("{s:s,s:s?,s:s,s:s,s:I,s:s,s:s}", "uri", uri, "name",
                      (const char *)cs_db_column_text(st, 1), "org",
                      (const char *)cs_db_column_text(st, 2), "domain",
                      (const char *)cs_db_column_text(st, 3),
                      "head_version",
                      (json_int_t)cs_db_column_int64(st, 4), "created_at",
                      (const char *)cs_db_column_text(st, 5), "updated_at",
                      (const char *)cs_db_column_text(st, 6));
        if (e == NULL || json_array_append_new(arr, e) != 0) {
            bad = true;
            break;
        }
        free(last);
        last = strdup(uri);
        if (last == NULL) {
            bad = true;
            break;
        }
        count++;
    }
    cs_db_reset(st);
    if (bad) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    if (rc != CS_DB_ROW && rc != CS_DB_DONE) {
        cs_res_store_error(r, CS_EDB, NULL);
        goto out;
    }
    if (more && last != NULL &&
        (next = cs_base64_encode(last, strlen(last), true)) == NULL) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    if (json_object_set_new(res, "next_cursor",
                            next != NULL ? json_string(next) : json_null()) !=
        0) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    cs_res_json(r, 200, res);
    res = NULL;
out:
    json_decref(res);
    free(cursor);
    free(next);
    free(last);
}

const cs_route cs_routes_artifacts[] = {
    {"POST", "/artifacts", h_create, CS_ROUTE_BODY},
    {"GET", "/artifacts", h_get, 0},
    {"PUT", "/artifacts", h_put, CS_ROUTE_BODY},
    {"DELETE", "/artifacts", h_delete, 0},
    {"GET", "/artifacts/history", h_history, 0},
    {"GET", "/artifacts/diff", h_diff, 0},
    {"GET", "/artifacts/list", h_list, 0},
    {NULL, NULL, NULL, 0},
};
