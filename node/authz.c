/* SPDX-License-Identifier: MIT
 * authz.c: default-deny permission evaluation over an in-memory snapshot of
 * the permissions table.
 *
 * Every request asks at least one permission question, so the grants live
 * in memory: an array of fixed-size records behind a pthread rwlock. The
 * snapshot carries the store's grants generation it was loaded at; when
 * cs_store_grants_gen() moves (a committed write called
 * cs_tx_grants_changed()), the next check reloads it. Reloads are
 * double-checked under a mutex so that only one thread reloads, and the
 * generation is read *before* the SELECT so that a change committed during
 * the reload always triggers another one.
 *
 * Reloads read through a connection owned by this module (opened lazily,
 * used only under the reload mutex), not the caller's: a caller that is in
 * the middle of stepping a SELECT (a read-filtered list) holds an open read
 * transaction, and reloading through it would load an old snapshot of the
 * grants yet stamp it with the new generation, keeping a revoked grant
 * alive. The caller's connection is only a fallback when ours cannot be
 * opened. A reload that fails fails closed
 * (every check is denied) until a later reload succeeds. Evaluation itself
 * is pure CPU: pattern matching is done by core/cs_uri.c. The on-disk form
 * of `operations` (a JSON array of names) is owned by node/auth.c. */
#include "authz.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cs_log.h"
#include "cs_uri.h"

/* One grant as evaluated. Exactly one of actor_id / agent_class is set
 * (the other is ""). Sizes bound what POST /permissions accepts. */
typedef struct authz_grant {
    char id[64];
    char actor_id[129];
    char agent_class[65];
    char pattern[CS_URI_MAX + 1];
    unsigned ops;
} authz_grant;

struct cs_authz {
    cs_store *store;
    pthread_rwlock_t lock;      /* guards grants, ngrants, gen, state */
    pthread_mutex_t reload_mu;  /* one reloader at a time; guards db */
    cs_db *db;                /* private read connection for reloads */
    authz_grant *grants;
    size_t ngrants;
    uint64_t gen;               /* store generation the snapshot reflects */
    bool loaded;                /* a snapshot for `gen` is in place */
    bool failed;                /* the last reload failed: deny everything */
};

static const struct {
    const char *name;
    unsigned op;
} op_names[] = {
    {"read", CS_OP_READ},       {"write", CS_OP_WRITE},
    {"suggest", CS_OP_SUGGEST}, {"approve", CS_OP_APPROVE},
    {"admin", CS_OP_ADMIN},     {"replicate", CS_OP_REPLICATE},
};

#define OP_COUNT (sizeof(op_names) / sizeof(op_names[0]))

unsigned
cs_op_parse(const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < OP_COUNT; i++) {
        if (strcmp(op_names[i].name, name) == 0)
            return op_names[i].op;
    }
    return 0;
}

const char *
cs_op_name(unsigned op)
{
    for (size_t i = 0; i < OP_COUNT; i++) {
        if (op_names[i].op == op)
            return op_names[i].name;
    }
    return NULL;
}

/* ---- snapshot loading ---- */

/* Copies src into dst[size]; false when it does not fit. */
static bool
copy_str(char *dst, size_t size, const unsigned char *src)
{
    size_t n;

    if (src == NULL) {
        dst[0] = '\0';
        return true;
    }
    n = strlen((const char *)src);
    if (n >= size)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* Reads every grant from db into a new array (*out, *n). */
static cs_err
load_grants(cs_db *db, authz_grant **out, size_t *n)
{
    cs_dbst *st = NULL;
    authz_grant *arr = NULL;
    size_t len = 0;
    size_t cap = 0;
    cs_err rv = CS_OK;
    int rc;

    /* Prepared per reload (rare) rather than cached with cs_stmt(): the
     * statement cache is per thread, and any worker may be the reloader of
     * this shared connection. */
    if (cs_db_prepare(db, "SELECT id, actor_id, agent_class,"
                          " artifact_pattern, operations"
                          " FROM permissions ORDER BY created_at, id",
                      &st) != CS_DB_OK) {
        cs_log(CS_LOG_ERROR, "AUTHZ-LOAD", "preparing the grants query "
               "failed: %s", cs_db_errmsg(db));
        rv = CS_EDB;
        goto out;
    }
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        authz_grant *g;
        if (len == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            authz_grant *tmp = realloc(arr, ncap * sizeof(*arr));
            if (tmp == NULL) {
                rv = CS_ENOMEM;
                goto out;
            }
            arr = tmp;
            cap = ncap;
        }
        g = &arr[len];
        if (!copy_str(g->id, sizeof(g->id), cs_db_column_text(st, 0)) ||
            !copy_str(g->actor_id, sizeof(g->actor_id),
                      cs_db_column_text(st, 1)) ||
            !copy_str(g->agent_class, sizeof(g->agent_class),
                      cs_db_column_text(st, 2)) ||
            !copy_str(g->pattern, sizeof(g->pattern),
                      cs_db_column_text(st, 3))) {
            cs_log(CS_LOG_WARN, "AUTHZ-SKIP",
                   "grant with an oversized field ignored");
            continue;
        }
        g->ops = cs_ops_from_text((const char *)cs_db_column_text(st, 4));
        if (g->ops == 0 ||
            (g->actor_id[0] == '\0') == (g->agent_class[0] == '\0'))
            continue; /* grants nothing / names nobody */
        len++;
    }
    if (rc != CS_DB_DONE) {
        cs_log(CS_LOG_ERROR, "AUTHZ-LOAD", "loading grants failed: %s",
               cs_db_errmsg(db));
        rv = CS_EDB;
        goto out;
    }
out:
    cs_db_finalize(st);
    if (rv != CS_OK) {
        free(arr);
        return rv;
    }
    *out = arr;
    *n = len;
    return CS_OK;
}

/* True when the snapshot is current; the caller holds the lock (any mode). */
static bool
snapshot_fresh(const cs_authz *a)
{
    return a->loaded && a->gen == cs_store_grants_gen(a->store);
}

/* Brings the snapshot up to date (double-checked: only one thread loads).
 * On failure the snapshot is marked failed and every check denies. */
static void
reload(cs_authz *a, cs_db *db)
{
    authz_grant *fresh = NULL;
    authz_grant *old = NULL;
    size_t n = 0;
    uint64_t gen;
    bool fresh_now;
    cs_err rv;

    pthread_mutex_lock(&a->reload_mu);
    pthread_rwlock_rdlock(&a->lock);
    fresh_now = snapshot_fresh(a);
    pthread_rwlock_unlock(&a->lock);
    if (fresh_now)
        goto out;

    if (a->db == NULL && cs_store_reader(a->store, &a->db) != CS_OK) {
        cs_log(CS_LOG_WARN, "AUTHZ-CONN", "cannot open the authz read "
               "connection; reloading through the caller's");
        a->db = NULL;
    }
    /* Generation first: a change committed after this read bumps it again,
     * so the next check reloads once more. */
    gen = cs_store_grants_gen(a->store);
    rv = load_grants(a->db != NULL ? a->db : db, &fresh, &n);

    pthread_rwlock_wrlock(&a->lock);
    if (rv == CS_OK) {
        old = a->grants;
        a->grants = fresh;
        a->ngrants = n;
        a->gen = gen;
        a->loaded = true;
        a->failed = false;
        fresh = NULL;
    } else {
        old = a->grants;
        a->grants = NULL;
        a->ngrants = 0;
        a->loaded = false;
        a->failed = true;
    }
    pthread_rwlock_unlock(&a->lock);
out:
    pthread_mutex_unlock(&a->reload_mu);
    free(old);
    free(fresh);
}

cs_err
cs_authz_new(cs_store *s, cs_authz **out)
{
    cs_authz *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return CS_ENOMEM;
    a->store = s;
    if (pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a);
        return CS_ENOMEM;
    }
    if (pthread_mutex_init(&a->reload_mu, NULL) != 0) {
        pthread_rwlock_destroy(&a->lock);
        free(a);
        return CS_ENOMEM;
    }
    *out = a;
    return CS_OK;
}

void
cs_authz_free(cs_authz *a)
{
    if (a == NULL)
        return;
    cs_store_reader_close(a->db);
    pthread_mutex_destroy(&a->reload_mu);
    pthread_rwlock_destroy(&a->lock);
    free(a->grants);
    free(a);
}

/* ---- evaluation ---- */

static bool
grant_names(const authz_grant *g, const cs_actor *actor)
{
    if (g->actor_id[0] != '\0')
        return strcmp(g->actor_id, actor->actor_id) == 0;
    return actor->agent_class[0] != '\0' &&
           strcmp(g->agent_class, actor->agent_class) == 0;
}

static bool
grant_holds(const authz_grant *g, unsigned op)
{
    return (g->ops & CS_OP_ADMIN) != 0 || (g->ops & op) == op;
}

/* Takes the read lock on a fresh snapshot (reloading first when stale).
 * Returns false (lock not held) when no usable snapshot exists. */
static bool
lock_snapshot(cs_authz *a, cs_db *db)
{
    pthread_rwlock_rdlock(&a->lock);
    if (snapshot_fresh(a))
        return true;
    pthread_rwlock_unlock(&a->lock);
    reload(a, db);
    pthread_rwlock_rdlock(&a->lock);
    /* A newer generation may already exist again; the snapshot just loaded
     * is still at least as new as the caller's request, so use it. */
    if (a->loaded && !a->failed)
        return true;
    pthread_rwlock_unlock(&a->lock);
    return false;
}

bool
cs_authz_check(cs_authz *a, cs_db *db, const cs_actor *actor,
               const char *uri, unsigned op, char *matched_grant)
{
    bool allowed = false;

    if (a == NULL || actor == NULL || uri == NULL || op == 0)
        return false;
    if (!lock_snapshot(a, db))
        return false;
    for (size_t i = 0; i < a->ngrants; i++) {
        const authz_grant *g = &a->grants[i];
        if (!grant_names(g, actor) || !grant_holds(g, op) ||
            !cs_pattern_match(g->pattern, uri))
            continue;
        allowed = true;
        if (matched_grant != NULL)
            memcpy(matched_grant, g->id, strlen(g->id) + 1);
        break;
    }
    pthread_rwlock_unlock(&a->lock);
    return allowed;
}

bool
cs_authz_check_pattern(cs_authz *a, cs_db *db, const cs_actor *actor,
                       const char *pattern, unsigned op)
{
    bool allowed = false;

    if (a == NULL || actor == NULL || pattern == NULL || op == 0)
        return false;
    if (!lock_snapshot(a, db))
        return false;
    for (size_t i = 0; i < a->ngrants; i++) {
        const authz_grant *g = &a->grants[i];
        if (grant_names(g, actor) && grant_holds(g, op) &&
            cs_pattern_covers(g->pattern, pattern)) {
            allowed = true;
            break;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    return allowed;
}

/* ---- actors ---- */

cs_err
cs_actor_load(cs_db *db, const char *actor_id, cs_actor *out)
{
    cs_dbst *st;
    cs_actor tmp;
    cs_err rv = CS_OK;
    int rc;

    if (actor_id == NULL || actor_id[0] == '\0' ||
        strlen(actor_id) >= sizeof(tmp.actor_id))
        return CS_ENOTFOUND;
    st = cs_stmt(db, "SELECT actor_id, actor_type, agent_class, region"
                     " FROM actors WHERE actor_id = ?1");
    if (st == NULL)
        return CS_EDB;
    cs_db_bind_text(st, 1, actor_id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_DONE) {
        rv = CS_ENOTFOUND;
        goto out;
    }
    if (rc != CS_DB_ROW) {
        rv = CS_EDB;
        goto out;
    }
    memset(&tmp, 0, sizeof(tmp));
    if (!copy_str(tmp.actor_id, sizeof(tmp.actor_id),
                  cs_db_column_text(st, 0)) ||
        !copy_str(tmp.actor_type, sizeof(tmp.actor_type),
                  cs_db_column_text(st, 1)) ||
        !copy_str(tmp.agent_class, sizeof(tmp.agent_class),
                  cs_db_column_text(st, 2)) ||
        !copy_str(tmp.region, sizeof(tmp.region), cs_db_column_text(st, 3))) {
        rv = CS_EINVAL; /* a row no API could have written */
        goto out;
    }
    *out = tmp;
out:
    cs_db_reset(st);
    cs_db_clear_bindings(st);
    return rv;
}
