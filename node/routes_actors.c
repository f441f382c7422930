/* SPDX-License-Identifier: MIT
 * routes_actors.c: the actors, tokens and permissions endpoints
 * (node-api.md §2 and §3 "Actors and permissions").
 *
 * Rights: creating actors and issuing, listing or revoking tokens needs
 * admin on `**`; creating or revoking a grant needs admin on a pattern that
 * covers the grant's pattern. Actors are a directory: every authenticated
 * actor may list and read them (tokens are never part of an actor record).
 * A grant is visible to the actor or agent class it names and to anyone who
 * could revoke it. All writes go through cs_store_write(); the grant writes
 * mark the grants as changed so that the authz snapshot reloads before the
 * response is sent. Decisions where the spec is silent are written down in
 * docs/internals/authz.md. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "authz.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_uri.h"
#include "node.h"

/* ---- shared helpers ---- */

/* JSON string of a text column, or null. */
static json_t *
col_json(cs_dbst *st, int col)
{
    const unsigned char *s = cs_db_column_text(st, col);

    return s != NULL ? json_string((const char *)s) : json_null();
}

#define ACTOR_COLS "actor_id, actor_type, name, agent_class, region, created_at"

/* An actor record from a row selected with ACTOR_COLS. `region` appears
 * only when set (federation agents). */
static json_t *
actor_json(cs_dbst *st)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "actor_id", col_json(st, 0)) != 0 ||
        json_object_set_new(o, "actor_type", col_json(st, 1)) != 0 ||
        json_object_set_new(o, "name", col_json(st, 2)) != 0 ||
        json_object_set_new(o, "agent_class", col_json(st, 3)) != 0 ||
        (cs_db_column_type(st, 4) != CS_DB_NULL &&
         json_object_set_new(o, "region", col_json(st, 4)) != 0) ||
        json_object_set_new(o, "created_at", col_json(st, 5)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

#define GRANT_COLS                                                          \
    "id, actor_id, agent_class, artifact_pattern, operations, granted_by," \
    " created_at"

/* A grant record from a row selected with GRANT_COLS. */
static json_t *
grant_json(cs_dbst *st)
{
    json_t *o = json_object();
    const char *ops = (const char *)cs_db_column_text(st, 4);

    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "id", col_json(st, 0)) != 0 ||
        json_object_set_new(o, "actor_id", col_json(st, 1)) != 0 ||
        json_object_set_new(o, "agent_class", col_json(st, 2)) != 0 ||
        json_object_set_new(o, "artifact_pattern", col_json(st, 3)) != 0 ||
        json_object_set_new(o, "operations",
                            cs_ops_json(cs_ops_from_text(ops))) != 0 ||
        json_object_set_new(o, "granted_by", col_json(st, 5)) != 0 ||
        json_object_set_new(o, "created_at", col_json(st, 6)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void
stmt_done(cs_dbst *st)
{
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
}

/* Loads one grant by id on db into *out (new reference). */
static cs_err
grant_load(cs_db *db, const char *id, json_t **out, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db, "SELECT " GRANT_COLS
                                   " FROM permissions WHERE id = ?1");
    json_t *g = NULL;
    cs_err rv = CS_OK;
    int rc;

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_DONE) {
        rv = cs_errf(eb, CS_ENOTFOUND, "grant '%s' not found", id);
        goto out;
    }
    if (rc != CS_DB_ROW) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    g = grant_json(st);
    if (g == NULL) {
        rv = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    *out = g;
out:
    stmt_done(st);
    return rv;
}

/* Loads one actor record by id on db into *out (new reference). */
static cs_err
actor_record(cs_db *db, const char *id, json_t **out, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db, "SELECT " ACTOR_COLS
                                   " FROM actors WHERE actor_id = ?1");
    json_t *a = NULL;
    cs_err rv = CS_OK;
    int rc;

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_DONE) {
        rv = cs_errf(eb, CS_ENOTFOUND, "actor '%s' not found", id);
        goto out;
    }
    if (rc != CS_DB_ROW) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    a = actor_json(st);
    if (a == NULL) {
        rv = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    *out = a;
out:
    stmt_done(st);
    return rv;
}

/* True when the caller holds admin on `**`; otherwise answers 403. */
static bool
require_admin_all(cs_req *r, const char *what)
{
    cs_node *n = cs_req_node(r);

    if (cs_authz_check_pattern(n->authz, cs_req_db(r), cs_req_actor(r), "**",
                               CS_OP_ADMIN))
        return true;
    cs_res_error(r, 403, "forbidden", "%s needs admin on **", what);
    return false;
}

/* Reads an optional string member; answers 400 itself on a wrong type.
 * *out is NULL when absent or null. */
static bool
body_str(cs_req *r, const json_t *body, const char *key, const char **out)
{
    cs_errbuf eb = {{0}};
    cs_err rv = cs_json_get_str(body, key, out, &eb);

    if (rv == CS_ENOTFOUND) {
        *out = NULL;
        return true;
    }
    if (rv != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return false;
    }
    return true;
}

static void
res_no_content(cs_req *r)
{
    cs_res_text(r, 204, "application/json", NULL, 0);
}

/* ---- POST /actors ---- */

typedef struct actor_job {
    const char *actor_id;
    const char *type;
    const char *name;
    const char *agent_class;
    const char *region;
    json_t *out; /* the created actor record */
} actor_job;

static cs_err
actor_create_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    actor_job *j = arg;
    cs_err rv;

    rv = cs_actor_create_tx(tx, j->actor_id, j->type, j->name, j->agent_class,
                            j->region, eb);
    if (rv != CS_OK)
        return rv;
    return actor_record(cs_tx_db(tx), j->actor_id, &j->out, eb);
}

static void
h_actor_create(cs_req *r)
{
    json_t *body = cs_req_body(r);
    actor_job job = {0};
    char gen_id[4 + 12 + 1];
    char rnd[13];
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!require_admin_all(r, "creating actors"))
        goto out;
    if (!json_is_object(body)) {
        cs_res_error(r, 400, "bad_request", "body must be a JSON object");
        goto out;
    }
    if (!body_str(r, body, "actor_id", &job.actor_id) ||
        !body_str(r, body, "actor_type", &job.type) ||
        !body_str(r, body, "name", &job.name) ||
        !body_str(r, body, "agent_class", &job.agent_class) ||
        !body_str(r, body, "region", &job.region))
        goto out;
    if (job.type == NULL) {
        cs_res_error(r, 400, "bad_request",
                     "actor_type is required (\"human\" or \"agent\")");
        goto out;
    }
    if (job.name == NULL) {
        cs_res_error(r, 400, "bad_request", "name is required");
        goto out;
    }
    if (job.agent_class != NULL && job.agent_class[0] == '\0') {
        cs_res_error(r, 400, "bad_request",
                     "agent_class must be a non-empty string or absent");
        goto out;
    }
    if (job.region != NULL && job.region[0] == '\0') {
        cs_res_error(r, 400, "bad_request",
                     "region must be a non-empty string or absent");
        goto out;
    }
    rv = cs_actor_validate(job.actor_id, job.type, job.name, job.agent_class,
                           job.region, &eb);
    if (rv != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        goto out;
    }
    if (job.actor_id == NULL) {
        if (cs_random_hex(rnd, 6) != CS_OK) {
            cs_res_error(r, 500, "internal", "the OS random generator failed");
            goto out;
        }
        snprintf(gen_id, sizeof(gen_id), "act_%s", rnd);
        job.actor_id = gen_id;
    }
    rv = cs_store_write(cs_req_node(r)->store, actor_create_fn, &job, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    cs_res_json(r, 201, job.out);
    job.out = NULL;
out:
    json_decref(job.out);
}

/* ---- GET /actors, GET /actors/{id} ---- */

static void
h_actor_list(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_dbst *st = NULL;
    json_t *arr = json_array();
    json_t *res = NULL;
    cs_errbuf eb = {{0}};
    int rc;

    if (arr == NULL)
        goto oom;
    st = cs_stmt(db, "SELECT " ACTOR_COLS " FROM actors ORDER BY actor_id");
    if (st == NULL) {
        cs_res_store_error(r, cs_db_err(db, CS_DB_ERROR, &eb), &eb);
        goto out;
    }
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        if (json_array_append_new(arr, actor_json(st)) != 0)
            goto oom;
    }
    if (rc != CS_DB_DONE) {
        cs_res_store_error(r, cs_db_err(db, rc, &eb), &eb);
        goto out;
    }
    res = json_pack("{s:O}", "actors", arr);
    if (res == NULL)
        goto oom;
    cs_res_json(r, 200, res);
    goto out;
oom:
    cs_res_error(r, 500, "internal", "out of memory");
out:
    stmt_done(st);
    json_decref(arr);
}

static void
h_actor_get(cs_req *r)
{
    json_t *a = NULL;
    cs_errbuf eb = {{0}};
    cs_err rv;

    rv = actor_record(cs_req_db(r), cs_req_param(r, 0), &a, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    cs_res_json(r, 200, a);
}

/* ---- tokens ---- */

typedef struct token_job {
    const char *actor_id;
    const char *token_id; /* revoke */
    char new_id[40];      /* issue */
    char token[44];       /* issue: the secret, shown once */
} token_job;

static cs_err
token_issue_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    token_job *j = arg;

    return cs_token_issue(tx, j->actor_id, j->new_id, j->token, eb);
}

static void
h_token_issue(cs_req *r)
{
    token_job job;
    cs_errbuf eb = {{0}};
    json_t *res;
    cs_err rv;

    memset(&job, 0, sizeof(job));
    job.actor_id = cs_req_param(r, 0);
    if (!require_admin_all(r, "issuing tokens"))
        goto out;
    rv = cs_store_write(cs_req_node(r)->store, token_issue_fn, &job, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    res = json_pack("{s:s,s:s,s:s}", "token_id", job.new_id, "actor_id",
                    job.actor_id, "token", job.token);
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }
    cs_res_json(r, 201, res);
out:
    memset(job.token, 0, sizeof(job.token));
}

static cs_err
token_revoke_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    token_job *j = arg;
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st;
    cs_err rv = CS_OK;
    int rc;

    st = cs_stmt(db, "DELETE FROM tokens"
                     " WHERE token_id = ?1 AND actor_id = ?2");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, j->token_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, j->actor_id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_DONE)
        rv = cs_db_err(db, rc, eb);
    else if (cs_db_changes(db) == 0)
        rv = cs_errf(eb, CS_ENOTFOUND, "actor '%s' has no token '%s'",
                     j->actor_id, j->token_id);
    stmt_done(st);
    return rv;
}

static void
h_token_revoke(cs_req *r)
{
    token_job job;
    cs_errbuf eb = {{0}};
    cs_err rv;

    memset(&job, 0, sizeof(job));
    job.actor_id = cs_req_param(r, 0);
    job.token_id = cs_req_param(r, 1);
    if (!require_admin_all(r, "revoking tokens"))
        return;
    rv = cs_store_write(cs_req_node(r)->store, token_revoke_fn, &job, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return;
    }
    res_no_content(r);
}

/* Extension: token ids and creation times (never the secrets or hashes),
 * so that an administrator can find the token to revoke. */
static void
h_token_list(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    const char *actor_id = cs_req_param(r, 0);
    cs_dbst *st = NULL;
    json_t *arr = NULL;
    json_t *res = NULL;
    cs_errbuf eb = {{0}};
    cs_err rv;
    int rc;

    if (!require_admin_all(r, "listing tokens"))
        goto out;
    rv = actor_record(db, actor_id, &res, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    json_decref(res);
    res = NULL;
    arr = json_array();
    st = cs_stmt(db, "SELECT token_id, created_at FROM tokens"
                     " WHERE actor_id = ?1 ORDER BY created_at, token_id");
    if (arr == NULL || st == NULL) {
        cs_res_error(r, 500, "internal", "cannot list tokens");
        goto out;
    }
    cs_db_bind_text(st, 1, actor_id, -1, CS_DB_STATIC);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        json_t *t = json_object();
        if (t == NULL || json_array_append_new(arr, t) != 0 ||
            json_object_set_new(t, "token_id", col_json(st, 0)) != 0 ||
            json_object_set_new(t, "actor_id", json_string(actor_id)) != 0 ||
            json_object_set_new(t, "created_at", col_json(st, 1)) != 0) {
            cs_res_error(r, 500, "internal", "out of memory");
            goto out;
        }
    }
    if (rc != CS_DB_DONE) {
        cs_res_store_error(r, cs_db_err(db, rc, &eb), &eb);
        goto out;
    }
    res = json_pack("{s:O}", "tokens", arr);
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }
    cs_res_json(r, 200, res);
out:
    stmt_done(st);
    json_decref(arr);
}

/* ---- POST /permissions ---- */

typedef struct grant_job {
    const char *actor_id;
    const char *agent_class;
    const char *pattern;
    unsigned ops;
    const char *granted_by;
    const char *id;   /* revoke */
    json_t *out;      /* create: the new grant */
} grant_job;

static cs_err
grant_create_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    grant_job *j = arg;
    char id[40];
    cs_err rv;

    rv = cs_grant_create_tx(tx, j->actor_id, j->agent_class, j->pattern,
                            j->ops, j->granted_by, id, eb);
    if (rv != CS_OK)
        return rv;
    return grant_load(cs_tx_db(tx), id, &j->out, eb);
}

/* Parses body.operations (a non-empty array of operation names) into *ops;
 * answers 400 itself. */
static bool
body_ops(cs_req *r, const json_t *body, unsigned *ops)
{
    json_t *arr = json_object_get(body, "operations");
    unsigned acc = 0;
    size_t i;
    json_t *v;

    if (arr == NULL || json_is_null(arr)) {
        cs_res_error(r, 400, "bad_request", "operations is required");
        return false;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        cs_res_error(r, 400, "bad_request",
                     "operations must be a non-empty array of operation names");
        return false;
    }
    json_array_foreach(arr, i, v) {
        unsigned op;
        if (!json_is_string(v)) {
            cs_res_error(r, 400, "bad_request",
                         "operations[%zu] must be a string", i);
            return false;
        }
        op = cs_op_parse(json_string_value(v));
        if (op == 0) {
            cs_res_error(r, 400, "bad_request",
                         "unknown operation '%.64s' in operations (expected "
                         "read, write, suggest, approve, admin or replicate)",
                         json_string_value(v));
            return false;
        }
        acc |= op;
    }
    *ops = acc;
    return true;
}

static void
h_grant_create(cs_req *r)
{
    json_t *body = cs_req_body(r);
    const cs_actor *me = cs_req_actor(r);
    cs_node *n = cs_req_node(r);
    grant_job job = {0};
    cs_errbuf eb = {{0}};
    cs_err rv;

    if (!json_is_object(body)) {
        cs_res_error(r, 400, "bad_request", "body must be a JSON object");
        goto out;
    }
    if (!body_str(r, body, "actor_id", &job.actor_id) ||
        !body_str(r, body, "agent_class", &job.agent_class) ||
        !body_str(r, body, "artifact_pattern", &job.pattern))
        goto out;
    if ((job.actor_id != NULL) == (job.agent_class != NULL)) {
        cs_res_error(r, 400, "bad_request",
                     "exactly one of actor_id and agent_class is required");
        goto out;
    }
    if (job.actor_id != NULL && !cs_actor_id_valid(job.actor_id)) {
        cs_res_error(r, 400, "bad_request", "actor_id must be 1-128 "
                     "characters of [A-Za-z0-9._@-]");
        goto out;
    }
    if (job.agent_class != NULL && !cs_class_valid(job.agent_class)) {
        cs_res_error(r, 400, "bad_request", "agent_class must be 1-64 "
                     "characters of [A-Za-z0-9._-]");
        goto out;
    }
    if (job.pattern == NULL) {
        cs_res_error(r, 400, "bad_request", "artifact_pattern is required");
        goto out;
    }
    if (cs_pattern_validate(job.pattern, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "invalid artifact_pattern: %s",
                     eb.msg);
        goto out;
    }
    if (!body_ops(r, body, &job.ops))
        goto out;
    if (!cs_authz_check_pattern(n->authz, cs_req_db(r), me, job.pattern,
                                CS_OP_ADMIN)) {
        cs_res_error(r, 403, "forbidden",
                     "granting on '%s' needs admin on a pattern that covers "
                     "it", job.pattern);
        goto out;
    }
    job.granted_by = me->actor_id;
    rv = cs_store_write(n->store, grant_create_fn, &job, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    cs_res_json(r, 201, job.out);
    job.out = NULL;
out:
    json_decref(job.out);
}

/* ---- GET /permissions ---- */

/* True when the grant names the actor (directly or by class). */
static bool
grant_names(const json_t *g, const cs_actor *a)
{
    const char *gid = json_string_value(json_object_get(g, "actor_id"));
    const char *gcls = json_string_value(json_object_get(g, "agent_class"));

    if (gid != NULL)
        return strcmp(gid, a->actor_id) == 0;
    return gcls != NULL && a->agent_class[0] != '\0' &&
           strcmp(gcls, a->agent_class) == 0;
}

static void
h_grant_list(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);
    const char *f_actor = cs_req_query(r, "actor_id");
    const char *f_class = cs_req_query(r, "agent_class");
    cs_dbst *st = NULL;
    json_t *arr = json_array();
    json_t *res = NULL;
    cs_errbuf eb = {{0}};
    int rc;

    if (f_actor != NULL && f_actor[0] == '\0')
        f_actor = NULL;
    if (f_class != NULL && f_class[0] == '\0')
        f_class = NULL;
    if (f_actor != NULL && f_class != NULL)
        st = cs_stmt(db, "SELECT " GRANT_COLS " FROM permissions"
                         " WHERE actor_id = ?1 OR agent_class = ?2"
                         " ORDER BY created_at, id");
    else if (f_actor != NULL)
        st = cs_stmt(db, "SELECT " GRANT_COLS " FROM permissions"
                         " WHERE actor_id = ?1 ORDER BY created_at, id");
    else if (f_class != NULL)
        st = cs_stmt(db, "SELECT " GRANT_COLS " FROM permissions"
                         " WHERE agent_class = ?2 ORDER BY created_at, id");
    else
        st = cs_stmt(db, "SELECT " GRANT_COLS " FROM permissions"
                         " ORDER BY created_at, id");
    if (arr == NULL || st == NULL) {
        cs_res_error(r, 500, "internal", "cannot list permissions");
        goto out;
    }
    if (f_actor != NULL)
        cs_db_bind_text(st, 1, f_actor, -1, CS_DB_STATIC);
    if (f_class != NULL)
        cs_db_bind_text(st, 2, f_class, -1, CS_DB_STATIC);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        json_t *g = grant_json(st);
        const char *pat;
        if (g == NULL) {
            cs_res_error(r, 500, "internal", "out of memory");
            goto out;
        }
        pat = json_string_value(json_object_get(g, "artifact_pattern"));
        if (grant_names(g, me) ||
            (pat != NULL && cs_authz_check_pattern(n->authz, db, me, pat,
                                                   CS_OP_ADMIN))) {
            if (json_array_append_new(arr, g) != 0) {
                cs_res_error(r, 500, "internal", "out of memory");
                goto out;
            }
        } else {
            json_decref(g);
        }
    }
    if (rc != CS_DB_DONE) {
        cs_res_store_error(r, cs_db_err(db, rc, &eb), &eb);
        goto out;
    }
    res = json_pack("{s:O}", "permissions", arr);
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        goto out;
    }
    cs_res_json(r, 200, res);
out:
    stmt_done(st);
    json_decref(arr);
}

/* ---- GET /permissions/check ---- */

static void
h_grant_check(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);
    const char *who = cs_req_query(r, "actor_id");
    const char *uri;
    const char *opname;
    char matched[64] = "";
    cs_actor target;
    json_t *grant = NULL;
    json_t *res;
    cs_errbuf eb = {{0}};
    unsigned op;
    bool allowed;
    cs_err rv;

    if (!cs_req_query_uri(r, "uri", &uri) ||
        !cs_req_query_str(r, "op", &opname))
        return;
    op = cs_op_parse(opname);
    if (op == 0) {
        cs_res_error(r, 400, "bad_request",
                     "unknown op '%.64s' (expected read, write, suggest, "
                     "approve, admin or replicate)", opname);
        return;
    }
    if (who == NULL || who[0] == '\0' || strcmp(who, me->actor_id) == 0) {
        target = *me;
    } else {
        if (!cs_authz_check(n->authz, db, me, uri, CS_OP_ADMIN, NULL)) {
            cs_res_error(r, 403, "forbidden",
                         "checking another actor's permissions needs admin "
                         "on the URI");
            return;
        }
        rv = cs_actor_load(db, who, &target);
        if (rv == CS_ENOTFOUND) {
            cs_res_error(r, 404, "not_found", "actor '%.128s' not found", who);
            return;
        }
        if (rv != CS_OK) {
            cs_res_store_error(r, rv, NULL);
            return;
        }
    }
    allowed = cs_authz_check(n->authz, db, &target, uri, op, matched);
    if (allowed) {
        rv = grant_load(db, matched, &grant, &eb);
        if (rv == CS_ENOTFOUND) /* revoked a moment ago: still name it */
            grant = json_pack("{s:s}", "id", matched);
        else if (rv != CS_OK) {
            cs_res_store_error(r, rv, &eb);
            return;
        }
    }
    res = json_pack("{s:b,s:s,s:o?}", "allowed", allowed, "reason",
                    allowed ? "matched grant"
                            : "no matching grant (default-deny)",
                    "matched_grant", grant);
    if (res == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        return;
    }
    cs_res_json(r, 200, res);
}

/* ---- DELETE /permissions/{id} ---- */

/* True when the grant is an actor-bound admin grant on everything. */
static bool
is_root_admin(const json_t *g)
{
    const char *pat = json_string_value(json_object_get(g, "artifact_pattern"));
    const json_t *ops = json_object_get(g, "operations");
    size_t i;
    json_t *v;

    if (pat == NULL || json_is_null(json_object_get(g, "actor_id")) ||
        (strcmp(pat, "**") != 0 && strcmp(pat, "ctx://**") != 0))
        return false;
    json_array_foreach(ops, i, v) {
        if (cs_op_parse(json_string_value(v)) == CS_OP_ADMIN)
            return true;
    }
    return false;
}

static cs_err
grant_revoke_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    grant_job *j = arg;
    cs_db *db = cs_tx_db(tx);
    json_t *g = NULL;
    cs_dbst *st = NULL;
    cs_err rv;
    int rc;

    rv = grant_load(db, j->id, &g, eb);
    if (rv != CS_OK)
        goto out;
    if (is_root_admin(g)) {
        /* Keep the node administrable: some actor must keep admin on **. */
        st = cs_stmt(db, "SELECT count(*) FROM permissions WHERE id <> ?1"
                         " AND actor_id IS NOT NULL"
                         " AND artifact_pattern IN ('**', 'ctx://**')"
                         " AND operations LIKE '%\"admin\"%'");
        if (st == NULL) {
            rv = cs_db_err(db, CS_DB_ERROR, eb);
            goto out;
        }
        cs_db_bind_text(st, 1, j->id, -1, CS_DB_STATIC);
        rc = cs_db_step(st);
        if (rc != CS_DB_ROW) {
            rv = cs_db_err(db, rc, eb);
            goto out;
        }
        if (cs_db_column_int64(st, 0) == 0) {
            rv = cs_errf(eb, CS_ECONFLICT, "grant '%s' is the last admin grant "
                         "on ** held by an actor; revoking it would leave the "
                         "node without an administrator", j->id);
            goto out;
        }
        stmt_done(st);
    }
    st = cs_stmt(db, "DELETE FROM permissions WHERE id = ?1");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, j->id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_DONE) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    if (cs_db_changes(db) == 0) {
        rv = cs_errf(eb, CS_ENOTFOUND, "grant '%s' not found", j->id);
        goto out;
    }
    cs_tx_grants_changed(tx);
out:
    stmt_done(st);
    json_decref(g);
    return rv;
}

static void
h_grant_revoke(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    cs_node *n = cs_req_node(r);
    grant_job job = {0};
    json_t *g = NULL;
    const char *pat;
    cs_errbuf eb = {{0}};
    cs_err rv;

    job.id = cs_req_param(r, 0);
    rv = grant_load(db, job.id, &g, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    pat = json_string_value(json_object_get(g, "artifact_pattern"));
    if (pat == NULL || !cs_authz_check_pattern(n->authz, db, cs_req_actor(r),
                                               pat, CS_OP_ADMIN)) {
        cs_res_error(r, 403, "forbidden",
                     "revoking a grant on '%s' needs admin on a pattern that "
                     "covers it", pat != NULL ? pat : "?");
        goto out;
    }
    rv = cs_store_write(n->store, grant_revoke_fn, &job, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    res_no_content(r);
out:
    json_decref(g);
}

const cs_route cs_routes_actors[] = {
    {"POST", "/actors", h_actor_create, CS_ROUTE_BODY},
    {"GET", "/actors", h_actor_list, 0},
    {"GET", "/actors/{}", h_actor_get, 0},
    {"POST", "/actors/{}/tokens", h_token_issue, 0},
    {"GET", "/actors/{}/tokens", h_token_list, 0},
    {"DELETE", "/actors/{}/tokens/{}", h_token_revoke, 0},
    {"POST", "/permissions", h_grant_create, CS_ROUTE_BODY},
    {"GET", "/permissions", h_grant_list, 0},
    {"GET", "/permissions/check", h_grant_check, 0},
    {"DELETE", "/permissions/{}", h_grant_revoke, 0},
    {NULL, NULL, NULL, 0},
};
