/* SPDX-License-Identifier: MIT
 * routes_misc.c: the provenance log reader and full-text search
 * (node-api.md §3 "Provenance" and "Search").
 *
 * GET /provenance pages backwards through the append-only provenance table,
 * newest first, with `since` as an exclusive prov_id upper bound. An admin
 * on the URI (or, without a URI, on `**`) sees every record; anyone else
 * sees only their own, and only for URIs they can still read.
 *
 * GET /search runs an FTS5 query over search_fts (the latest version of each
 * live artifact, maintained by the version write path). The user's text is
 * never handed to FTS5 as syntax: every whitespace-separated term becomes a
 * double-quoted string (a trailing '*' keeps its prefix meaning), so any
 * input is a valid query. Results are ranked by bm25 and read-filtered. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authz.h"
#include "cs_uri.h"
#include "node.h"

#define PROV_LIMIT_DEFAULT 100
#define PROV_LIMIT_MAX 1000
/* Rows examined per page when records must be filtered one by one. */
#define PROV_SCAN_MAX 10000

#define SEARCH_LIMIT_DEFAULT 20
#define SEARCH_LIMIT_MAX 100
#define SEARCH_Q_MAX 1024

static void
stmt_done(cs_dbst *st)
{
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
}

static json_t *
col_json(cs_dbst *st, int col)
{
    const unsigned char *s = cs_db_column_text(st, col);

    return s != NULL ? json_string((const char *)s) : json_null();
}

/* ---- GET /provenance ---- */

#define PROV_COLS                                                      \
    "prov_id, actor_id, operation, artifact_uri, version_touched,"     \
    " version_id, downstream_uri, detail, created_at"

static json_t *
prov_json(cs_dbst *st)
{
    json_t *o = json_object();
    json_t *vt;
    json_t *detail = NULL;

    if (o == NULL)
        return NULL;
    vt = cs_db_column_type(st, 4) == CS_DB_NULL
             ? json_null()
             : json_integer(cs_db_column_int64(st, 4));
    if (json_object_set_new(o, "prov_id",
                            json_integer(cs_db_column_int64(st, 0))) != 0 ||
        json_object_set_new(o, "actor_id", col_json(st, 1)) != 0 ||
        json_object_set_new(o, "operation", col_json(st, 2)) != 0 ||
        json_object_set_new(o, "artifact_uri", col_json(st, 3)) != 0 ||
        json_object_set_new(o, "version_touched", vt) != 0 ||
        json_object_set_new(o, "version_id", col_json(st, 5)) != 0 ||
        json_object_set_new(o, "downstream_uri", col_json(st, 6)) != 0 ||
        json_object_set_new(o, "created_at", col_json(st, 8)) != 0)
        goto fail;
    if (cs_db_column_type(st, 7) != CS_DB_NULL) {
        /* federation detail: embedded as JSON when it is JSON */
        const char *d = (const char *)cs_db_column_text(st, 7);
        detail = d != NULL ? json_loads(d, JSON_DECODE_ANY, NULL) : NULL;
        if (detail == NULL)
            detail = col_json(st, 7);
        if (json_object_set_new(o, "detail", detail) != 0)
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* Chooses the statement for the given filters; uri (?1) and actor (?2) may
 * be NULL. ?3 is the exclusive upper prov_id bound, ?4 the row limit. */
static cs_dbst *
prov_stmt(cs_db *db, const char *uri, const char *actor)
{
    if (uri != NULL && actor != NULL)
        return cs_stmt(db, "SELECT " PROV_COLS " FROM provenance"
                           " WHERE artifact_uri = ?1 AND actor_id = ?2"
                           " AND prov_id < ?3 ORDER BY prov_id DESC LIMIT ?4");
    if (uri != NULL)
        return cs_stmt(db, "SELECT " PROV_COLS " FROM provenance"
                           " WHERE artifact_uri = ?1 AND prov_id < ?3"
                           " ORDER BY prov_id DESC LIMIT ?4");
    if (actor != NULL)
        return cs_stmt(db, "SELECT " PROV_COLS " FROM provenance"
                           " WHERE actor_id = ?2 AND prov_id < ?3"
                           " ORDER BY prov_id DESC LIMIT ?4");
    return cs_stmt(db, "SELECT " PROV_COLS " FROM provenance"
                       " WHERE prov_id < ?3 ORDER BY prov_id DESC LIMIT ?4");
}

static void
h_provenance(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);
    const char *uri = cs_req_query(r, "uri");
    const char *actor = cs_req_query(r, "actor_id");
    cs_dbst *st = NULL;
    json_t *arr = NULL;
    json_t *res;
    int64_t since;
    int64_t limit;
    int64_t next = 0;       /* 0: no older records */
    int64_t last_kept = 0;
    int64_t count = 0;
    int64_t scanned = 0;
    bool filter_read = false; /* check read on each record's URI */
    cs_errbuf eb = {{0}};
    int rc = CS_DB_DONE;

    /* uri is optional, but a uri= that is present must be valid */
    if (actor != NULL && actor[0] == '\0')
        actor = NULL;
    if (uri != NULL && !cs_req_query_uri(r, "uri", &uri))
        goto out;
    if (!cs_req_query_int(r, "since", INT64_MAX, 0, 0, &since) ||
        !cs_req_query_int(r, "limit", PROV_LIMIT_DEFAULT, 1, PROV_LIMIT_MAX,
                          &limit))
        goto out;

    if (uri != NULL) {
        if (!cs_authz_check(n->authz, db, me, uri, CS_OP_ADMIN, NULL)) {
            if (!cs_authz_check(n->authz, db, me, uri, CS_OP_READ, NULL)) {
                cs_res_error(r, 403, "forbidden",
                             "provenance of a URI needs read on it (for your "
                             "own records) or admin (for all records)");
                goto out;
            }
            if (actor != NULL && strcmp(actor, me->actor_id) != 0) {
                cs_res_error(r, 403, "forbidden",
                             "other actors' provenance records of a URI need "
                             "admin on it");
                goto out;
            }
            actor = me->actor_id;
        }
    } else if (!cs_authz_check_pattern(n->authz, db, me, "**", CS_OP_ADMIN)) {
        if (actor != NULL && strcmp(actor, me->actor_id) != 0) {
            cs_res_error(r, 403, "forbidden",
                         "other actors' provenance records need admin on the "
                         "URI (pass uri=) or on **");
            goto out;
        }
        actor = me->actor_id;
        filter_read = true;
    }

    arr = json_array();
    st = prov_stmt(db, uri, actor);
    if (arr == NULL || st == NULL) {
        cs_res_error(r, 500, "internal", "cannot read provenance");
        goto out;
    }
    if (uri != NULL)
        cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    if (actor != NULL)
        cs_db_bind_text(st, 2, actor, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 3, since);
    /* One extra row tells whether an older page exists. */
    cs_db_bind_int64(st, 4, filter_read ? -1 : limit + 1);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        int64_t id = cs_db_column_int64(st, 0);
        const char *u = (const char *)cs_db_column_text(st, 3);
        scanned++;
        if (!filter_read ||
            (u != NULL &&
             cs_authz_check(n->authz, db, me, u, CS_OP_READ, NULL))) {
            if (count == limit) {
                next = last_kept; /* a visible older record exists */
                break;
            }
            if (json_array_append_new(arr, prov_json(st)) != 0) {
                cs_res_error(r, 500, "internal", "out of memory");
                goto out;
            }
            count++;
            last_kept = id;
        }
        if (filter_read && scanned >= PROV_SCAN_MAX) {
            next = id; /* budget spent: resume below the last row examined */
            break;
        }
    }
    if (rc != CS_DB_ROW && rc != CS_DB_DONE) {
        cs_res_store_error(r, cs_db_err(db, rc, &eb), &eb);
        goto out;
    }
    res = json_pack("{s:O,s:o}", "records", arr, "next_since",
                    next > 0 ? json_integer(next) : json_null());
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }
    cs_res_json(r, 200, res);
out:
    stmt_done(st);
    json_decref(arr);
}

/* ---- GET /search ---- */

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* Turns free text into an FTS5 expression made only of double-quoted
 * strings: `foo "b"ar* -x` -> `"foo" """b""ar"* "-x"`. A term ending in '*'
 * becomes a prefix query. Terms are ANDed (FTS5 implicit AND). *out is
 * malloc'd; CS_EINVAL when q holds no term. */
static cs_err
fts_quote(const char *q, char **out)
{
    size_t qlen = strlen(q);
    /* worst case: every char doubled, plus 3 per term ("" and space/'*') */
    size_t cap = qlen * 2 + (qlen + 1) * 4 + 1;
    char *buf = malloc(cap);
    size_t o = 0;
    size_t i = 0;
    size_t terms = 0;

    if (buf == NULL)
        return CS_ENOMEM;
    while (i < qlen) {
        size_t start;
        size_t end;
        bool prefix = false;
        while (i < qlen && is_space(q[i]))
            i++;
        if (i == qlen)
            break;
        start = i;
        while (i < qlen && !is_space(q[i]))
            i++;
        end = i;
        if (end - start > 1 && q[end - 1] == '*') {
            prefix = true;
            while (end > start && q[end - 1] == '*')
                end--;
            if (end == start)
                prefix = false;
        }
        if (end == start)
            continue;
        if (terms > 0)
            buf[o++] = ' ';
        buf[o++] = '"';
        for (size_t k = start; k < end; k++) {
            if (q[k] == '"')
                buf[o++] = '"';
            buf[o++] = q[k];
        }
        buf[o++] = '"';
        if (prefix)
            buf[o++] = '*';
        terms++;
    }
    buf[o] = '\0';
    if (terms == 0) {
        free(buf);
        return CS_EINVAL;
    }
    *out = buf;
    return CS_OK;
}

#define HL_OPEN "**"
#define HL_CLOSE "**"

static void
h_search(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);
    const char *q;
    const char *org = cs_req_query(r, "org");
    const char *domain = cs_req_query(r, "domain");
    char *expr = NULL;
    cs_dbst *st = NULL;
    json_t *arr = NULL;
    json_t *res;
    int64_t limit;
    int64_t count = 0;
    cs_errbuf eb = {{0}};
    cs_err rv;
    int rc = CS_DB_DONE;

    if (!cs_req_query_str(r, "q", &q) ||
        !cs_req_query_int(r, "limit", SEARCH_LIMIT_DEFAULT, 1,
                          SEARCH_LIMIT_MAX, &limit))
        goto out;
    if (strlen(q) > SEARCH_Q_MAX) {
        cs_res_error(r, 400, "bad_request", "q longer than %d bytes",
                     SEARCH_Q_MAX);
        goto out;
    }
    if (org != NULL && org[0] == '\0')
        org = NULL;
    if (domain != NULL && domain[0] == '\0')
        domain = NULL;
    rv = fts_quote(q, &expr);
    if (rv == CS_EINVAL) {
        cs_res_error(r, 400, "bad_request",
                     "q must contain at least one search term");
        goto out;
    }
    if (rv != CS_OK) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }

    arr = json_array();
    /* Columns of search_fts: uri 0, org 1, domain 2, name 3, summary 4,
     * body 5. bm25() is lower for better matches. */
    st = cs_stmt_pg(db, "SELECT search_fts.uri, a.head_version, a.name,"
                     " snippet(search_fts, 5, '" HL_OPEN "', '" HL_CLOSE
                     "', '…', 16),"
                     " snippet(search_fts, 4, '" HL_OPEN "', '" HL_CLOSE
                     "', '…', 16),"
                     " bm25(search_fts)"
                     " FROM search_fts JOIN artifacts AS a"
                     " ON a.uri = search_fts.uri"
                     " WHERE search_fts MATCH ?1 AND a.deleted_at IS NULL"
                     " AND (?2 IS NULL OR search_fts.org = ?2)"
                     " AND (?3 IS NULL OR search_fts.domain = ?3)"
                     " ORDER BY bm25(search_fts), search_fts.uri",
                     /* PostgreSQL: tsvector; the terms of the FTS5 text
                      * (quoted words) all must match, as in FTS5 */
                     "SELECT s.uri, a.head_version, a.name,"
                     " ts_headline('simple', s.body, q, 'StartSel=" HL_OPEN
                     ", StopSel=" HL_CLOSE ", MaxWords=16, MinWords=4'),"
                     " ts_headline('simple', COALESCE(s.summary, ''), q,"
                     " 'StartSel=" HL_OPEN ", StopSel=" HL_CLOSE
                     ", MaxWords=16, MinWords=4'),"
                     " -ts_rank_cd(s.tsv, q)"
                     " FROM search_fts s JOIN artifacts AS a ON a.uri = s.uri,"
                     " plainto_tsquery('simple', $1) q"
                     " WHERE s.tsv @@ q AND a.deleted_at IS NULL"
                     " AND ($2::text IS NULL OR s.org = $2)"
                     " AND ($3::text IS NULL OR s.domain = $3)"
                     " ORDER BY 6, s.uri");
    if (arr == NULL || st == NULL) {
        cs_res_error(r, 500, "internal", "cannot run the search");
        goto out;
    }
    cs_db_bind_text(st, 1, expr, -1, CS_DB_STATIC);
    if (org != NULL)
        cs_db_bind_text(st, 2, org, -1, CS_DB_STATIC);
    if (domain != NULL)
        cs_db_bind_text(st, 3, domain, -1, CS_DB_STATIC);
    while (count < limit && (rc = cs_db_step(st)) == CS_DB_ROW) {
        const char *uri = (const char *)cs_db_column_text(st, 0);
        const char *body_snip = (const char *)cs_db_column_text(st, 3);
        const char *sum_snip = (const char *)cs_db_column_text(st, 4);
        const char *snip;
        json_t *o;

        if (uri == NULL ||
            !cs_authz_check(n->authz, db, me, uri, CS_OP_READ, NULL))
            continue;
        /* the body excerpt when the body matched, else the summary's */
        if (body_snip != NULL && strstr(body_snip, HL_OPEN) != NULL)
            snip = body_snip;
        else if (sum_snip != NULL && strstr(sum_snip, HL_OPEN) != NULL)
            snip = sum_snip;
        else if (body_snip != NULL && body_snip[0] != '\0')
            snip = body_snip;
        else
            snip = sum_snip != NULL ? sum_snip : "";
        o = json_pack("{s:s,s:I,s:o,s:s?,s:f}", "uri", uri, "version",
                      (json_int_t)cs_db_column_int64(st, 1), "name",
                      col_json(st, 2), "snippet", snip, "score",
                      -cs_db_column_double(st, 5));
        if (o == NULL) {
            /* a snippet cut inside a multi-byte character, or no memory */
            o = json_pack("{s:s,s:I,s:o,s:s,s:f}", "uri", uri, "version",
                          (json_int_t)cs_db_column_int64(st, 1), "name",
                          col_json(st, 2), "snippet", "", "score",
                          -cs_db_column_double(st, 5));
        }
        if (json_array_append_new(arr, o) != 0) {
            cs_res_error(r, 500, "internal", "out of memory");
            goto out;
        }
        count++;
    }
    if (count < limit && rc != CS_DB_DONE) {
        /* Quoting makes every query valid, so this is a real failure. */
        cs_res_store_error(r, cs_db_err(db, rc, &eb), &eb);
        goto out;
    }
    res = json_pack("{s:O}", "results", arr);
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }
    cs_res_json(r, 200, res);
out:
    stmt_done(st);
    json_decref(arr);
    free(expr);
}

const cs_route cs_routes_misc[] = {
    {"GET", "/provenance", h_provenance, 0},
    {"GET", "/search", h_search, 0},
    {NULL, NULL, NULL, 0},
};
