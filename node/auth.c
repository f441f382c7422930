/* SPDX-License-Identifier: MIT
 * auth.c: caller authentication (bearer tokens, X-Actor-Id header mode) and
 * the transactional writes that create actors, tokens and grants.
 *
 * Authentication runs on the worker's read connection before every
 * authenticated route: the presented token is hashed (SHA-256), looked up
 * through the unique index on tokens.token_hash, and the stored hash is then
 * compared with the computed one in constant time before the actor row is
 * loaded. Every failure that a client can cause maps to CS_ENOTFOUND (401);
 * only database failures differ. Tokens never reach a log line.
 *
 * The *_tx functions run inside a cs_write_fn (writer thread) and are shared
 * by the HTTP routes and `ctxsync-node init`. They validate again what they
 * write, so that no caller can store an actor or grant that the API would
 * refuse. */
#include "auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authz.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_uri.h"

/* Longest credential we look at; ours are 43 characters. */
#define TOKEN_MAX 512
#define NAME_MAX_BYTES 256

/* ---- validation ---- */

static bool
id_char(unsigned char c, bool allow_at)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           (allow_at && c == '@');
}

static bool
charset_valid(const char *s, size_t max, bool allow_at)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0')
        return false;
    for (; s[n] != '\0'; n++) {
        if (n >= max || !id_char((unsigned char)s[n], allow_at))
            return false;
    }
    return true;
}

bool
cs_actor_id_valid(const char *id)
{
    return charset_valid(id, 128, true);
}

bool
cs_class_valid(const char *s)
{
    return charset_valid(s, 64, false);
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

cs_err
cs_actor_validate(const char *actor_id, const char *type, const char *name,
                  const char *agent_class, const char *region, cs_errbuf *eb)
{
    bool agent;
    size_t n;

    if (type == NULL)
        return cs_errf(eb, CS_EINVAL, "actor_type is required");
    if (strcmp(type, "human") != 0 && strcmp(type, "agent") != 0)
        return cs_errf(eb, CS_EINVAL,
                       "actor_type must be \"human\" or \"agent\"");
    agent = strcmp(type, "agent") == 0;
    if (name == NULL || name[0] == '\0')
        return cs_errf(eb, CS_EINVAL, "name must be a non-empty string");
    n = strnlen(name, NAME_MAX_BYTES + 1);
    if (n > NAME_MAX_BYTES)
        return cs_errf(eb, CS_EINVAL, "name longer than %d bytes",
                       NAME_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return cs_errf(eb, CS_EINVAL,
                           "name contains a control character at byte %zu", i);
    }
    if (actor_id != NULL && !cs_actor_id_valid(actor_id))
        return cs_errf(eb, CS_EINVAL,
                       "actor_id must be 1-128 characters of [A-Za-z0-9._@-]");
    if (is_set(agent_class)) {
        if (!agent)
            return cs_errf(eb, CS_EINVAL,
                           "agent_class is only allowed for agents");
        if (!cs_class_valid(agent_class))
            return cs_errf(eb, CS_EINVAL,
                           "agent_class must be 1-64 characters of "
                           "[A-Za-z0-9._-]");
    }
    if (is_set(region)) {
        if (!agent || !is_set(agent_class) ||
            strcmp(agent_class, "federation") != 0)
            return cs_errf(eb, CS_EINVAL, "region is only allowed for agents "
                                          "of agent_class \"federation\"");
        if (!cs_class_valid(region))
            return cs_errf(eb, CS_EINVAL,
                           "region must be 1-64 characters of [A-Za-z0-9._-]");
    }
    return CS_OK;
}

/* ---- operations <-> JSON ---- */

json_t *
cs_ops_json(unsigned ops)
{
    json_t *arr = json_array();

    if (arr == NULL)
        return NULL;
    for (unsigned bit = 1; bit <= CS_OPS_ALL; bit <<= 1) {
        const char *name;
        if ((ops & bit) == 0)
            continue;
        name = cs_op_name(bit);
        if (name != NULL &&
            json_array_append_new(arr, json_string(name)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

unsigned
cs_ops_from_text(const char *text)
{
    json_t *arr = NULL;
    unsigned ops = 0;
    size_t i;
    json_t *v;

    if (text == NULL)
        goto out;
    arr = json_loads(text, 0, NULL);
    if (!json_is_array(arr))
        goto out;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v))
            ops |= cs_op_parse(json_string_value(v));
    }
out:
    json_decref(arr);
    return ops;
}

/* ---- authentication ---- */

static bool
token_char(unsigned char c)
{
    /* RFC 7235 token68 */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '+' || c == '/' || c == '=';
}

cs_err
cs_auth_token(cs_db *db, const char *authorization_header, cs_actor *out)
{
    char hash[CS_SHA256_HEX_LEN + 1];
    char actor_id[129];
    const char *p = authorization_header;
    const unsigned char *stored;
    cs_dbst *st = NULL;
    size_t n = 0;
    cs_err rv = CS_ENOTFOUND;
    int rc;

    if (p == NULL)
        goto out;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        goto out;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    while (p[n] != '\0' && token_char((unsigned char)p[n])) {
        if (++n > TOKEN_MAX)
            goto out;
    }
    if (n == 0)
        goto out;
    for (size_t i = n; p[i] != '\0'; i++) { /* only trailing blanks */
        if (p[i] != ' ' && p[i] != '\t')
            goto out;
    }
    cs_sha256_hex(p, n, hash);

    st = cs_stmt(db, "SELECT token_hash, actor_id FROM tokens"
                     " WHERE token_hash = ?1");
    if (st == NULL) {
        rv = CS_EDB;
        goto out;
    }
    cs_db_bind_text(st, 1, hash, CS_SHA256_HEX_LEN, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_DONE)
        goto out;
    if (rc != CS_DB_ROW) {
        rv = CS_EDB;
        goto out;
    }
    stored = cs_db_column_text(st, 0);
    if (stored == NULL || cs_db_column_bytes(st, 0) != CS_SHA256_HEX_LEN ||
        !cs_ct_equal(stored, hash, CS_SHA256_HEX_LEN))
        goto out;
    if (cs_db_column_bytes(st, 1) <= 0 ||
        (size_t)cs_db_column_bytes(st, 1) >= sizeof(actor_id))
        goto out;
    memcpy(actor_id, cs_db_column_text(st, 1),
           (size_t)cs_db_column_bytes(st, 1) + 1);
    cs_db_reset(st);
    cs_db_clear_bindings(st);
    st = NULL;
    rv = cs_actor_load(db, actor_id, out);
    if (rv != CS_OK && rv != CS_EDB)
        rv = CS_ENOTFOUND;
out:
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
    return rv;
}

cs_err
cs_auth_header(cs_db *db, const char *x_actor_id, cs_actor *out)
{
    cs_err rv;

    if (!cs_actor_id_valid(x_actor_id))
        return CS_ENOTFOUND;
    rv = cs_actor_load(db, x_actor_id, out);
    if (rv != CS_OK && rv != CS_EDB)
        rv = CS_ENOTFOUND;
    return rv;
}

/* ---- writes ---- */

/* CS_OK when the actor exists, CS_ENOTFOUND when not. */
static cs_err
actor_exists(cs_db *db, const char *actor_id, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db, "SELECT 1 FROM actors WHERE actor_id = ?1");
    cs_err rv;
    int rc;

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, actor_id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW)
        rv = CS_OK;
    else if (rc == CS_DB_DONE)
        rv = cs_errf(eb, CS_ENOTFOUND, "actor '%s' not found", actor_id);
    else
        rv = cs_db_err(db, rc, eb);
    cs_db_reset(st);
    cs_db_clear_bindings(st);
    return rv;
}

cs_err
cs_actor_create_tx(cs_tx *tx, const char *actor_id, const char *type,
                   const char *name, const char *agent_class,
                   const char *region, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    char now[CS_TIME_LEN];
    cs_dbst *st = NULL;
    cs_err rv;
    int rc;

    if (actor_id == NULL) {
        rv = cs_errf(eb, CS_EINVAL, "actor_id is required");
        goto out;
    }
    rv = cs_actor_validate(actor_id, type, name, agent_class, region, eb);
    if (rv != CS_OK)
        goto out;
    rv = actor_exists(db, actor_id, eb);
    if (rv == CS_OK) {
        rv = cs_errf(eb, CS_ECONFLICT, "actor '%s' already exists", actor_id);
        goto out;
    }
    if (rv != CS_ENOTFOUND)
        goto out;

    cs_time_format(cs_now_us(), now);
    st = cs_stmt(db, "INSERT INTO actors(actor_id, actor_type, name,"
                     " agent_class, region, created_at)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, actor_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, type, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, name, -1, CS_DB_STATIC);
    if (is_set(agent_class))
        cs_db_bind_text(st, 4, agent_class, -1, CS_DB_STATIC);
    if (is_set(region))
        cs_db_bind_text(st, 5, region, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 6, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    rv = rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
out:
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
    return rv;
}

cs_err
cs_token_issue(cs_tx *tx, const char *actor_id, char token_id[40],
               char token[44], cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    char hash[CS_SHA256_HEX_LEN + 1];
    char rnd[17];
    char id[40];
    char secret[44];
    char now[CS_TIME_LEN];
    cs_dbst *st = NULL;
    cs_err rv;
    int rc;

    rv = actor_exists(db, actor_id, eb);
    if (rv != CS_OK)
        goto out;
    if (cs_random_hex(rnd, 8) != CS_OK ||
        cs_token_new(secret, sizeof(secret)) != CS_OK) {
        rv = cs_errf(eb, CS_EIO, "the OS random generator failed");
        goto out;
    }
    snprintf(id, sizeof(id), "tk_%s", rnd);
    cs_sha256_hex(secret, strlen(secret), hash);
    cs_time_format(cs_now_us(), now);

    st = cs_stmt(db, "INSERT INTO tokens(token_id, actor_id, token_hash,"
                     " created_at) VALUES(?1, ?2, ?3, ?4)");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, actor_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, hash, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_DONE) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    memcpy(token_id, id, sizeof(id));
    memcpy(token, secret, sizeof(secret));
out:
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
    /* the secret leaves this frame only through `token` */
    memset(secret, 0, sizeof(secret));
    return rv;
}

cs_err
cs_grant_create_tx(cs_tx *tx, const char *actor_id, const char *agent_class,
                   const char *pattern, unsigned ops, const char *granted_by,
                   char id_out[40], cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    char rnd[17];
    char id[40];
    char now[CS_TIME_LEN];
    char *ops_text = NULL;
    json_t *ops_arr = NULL;
    cs_dbst *st = NULL;
    cs_err rv = CS_OK;
    int rc;

    if (is_set(actor_id) == is_set(agent_class)) {
        rv = cs_errf(eb, CS_EINVAL,
                     "exactly one of actor_id and agent_class is required");
        goto out;
    }
    if (is_set(agent_class) && !cs_class_valid(agent_class)) {
        rv = cs_errf(eb, CS_EINVAL,
                     "agent_class must be 1-64 characters of [A-Za-z0-9._-]");
        goto out;
    }
    if (is_set(actor_id) && !cs_actor_id_valid(actor_id)) {
        rv = cs_errf(eb, CS_EINVAL,
                     "actor_id must be 1-128 characters of [A-Za-z0-9._@-]");
        goto out;
    }
    rv = cs_pattern_validate(pattern, eb);
    if (rv != CS_OK)
        goto out;
    if (ops == 0 || (ops & ~CS_OPS_ALL) != 0) {
        rv = cs_errf(eb, CS_EINVAL, "operations must name at least one of "
                                    "read, write, suggest, approve, admin, "
                                    "replicate");
        goto out;
    }
    if (granted_by == NULL || granted_by[0] == '\0') {
        rv = cs_errf(eb, CS_EINVAL, "granted_by is required");
        goto out;
    }
    if (is_set(actor_id)) {
        rv = actor_exists(db, actor_id, eb);
        if (rv != CS_OK)
            goto out;
    }
    ops_arr = cs_ops_json(ops);
    ops_text = ops_arr != NULL ? json_dumps(ops_arr, JSON_COMPACT) : NULL;
    if (ops_text == NULL) {
        rv = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_random_hex(rnd, 8) != CS_OK) {
        rv = cs_errf(eb, CS_EIO, "the OS random generator failed");
        goto out;
    }
    snprintf(id, sizeof(id), "gr_%s", rnd);
    cs_time_format(cs_now_us(), now);

    st = cs_stmt(db, "INSERT INTO permissions(id, actor_id, agent_class,"
                     " artifact_pattern, operations, granted_by, created_at)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, id, -1, CS_DB_STATIC);
    if (is_set(actor_id))
        cs_db_bind_text(st, 2, actor_id, -1, CS_DB_STATIC);
    else
        cs_db_bind_text(st, 3, agent_class, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, pattern, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 5, ops_text, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 6, granted_by, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 7, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_DONE) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    cs_tx_grants_changed(tx);
    memcpy(id_out, id, sizeof(id));
out:
    if (st != NULL) {
        cs_db_reset(st);
        cs_db_clear_bindings(st);
    }
    free(ops_text);
    json_decref(ops_arr);
    return rv;
}
