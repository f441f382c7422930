/* SPDX-License-Identifier: MIT
 * authz.h: default-deny permission evaluation.
 *
 * The grants table is small and read on every request, so it is cached in
 * memory as a snapshot and reloaded when the store's grants generation
 * changes. Evaluation is pure CPU: a grant applies when it names the
 * caller's actor_id or agent_class, its pattern matches the URI, and its
 * operations contain the operation or "admin". Thread-safe. */
#ifndef CS_AUTHZ_H
#define CS_AUTHZ_H

#include "db.h"
#include <stdbool.h>

#include "cs_err.h"
#include "http.h"
#include "store.h"

typedef struct cs_authz cs_authz;

typedef enum {
    CS_OP_READ = 1 << 0,
    CS_OP_WRITE = 1 << 1,
    CS_OP_SUGGEST = 1 << 2,
    CS_OP_APPROVE = 1 << 3,
    CS_OP_ADMIN = 1 << 4,
    CS_OP_REPLICATE = 1 << 5,
} cs_op;

/* "read" -> CS_OP_READ ...; 0 when unknown. */
unsigned cs_op_parse(const char *name);
const char *cs_op_name(unsigned op);

cs_err cs_authz_new(cs_store *s, cs_authz **out);
void cs_authz_free(cs_authz *a);

/* True when the actor may do op on uri. db is the caller thread's read
 * connection; the snapshot itself is reloaded through authz's own
 * connection (a caller mid-way through a read transaction would otherwise
 * load stale grants under a new generation). When allowed and
 * matched_grant is not NULL, the matching grant's id is copied there
 * (size >= 64). */
bool cs_authz_check(cs_authz *a, cs_db *db, const cs_actor *actor,
                    const char *uri, unsigned op, char *matched_grant);

/* True when the actor holds op (or admin) through a grant whose pattern
 * covers `pattern` (same or wider; see cs_pattern_covers). */
bool cs_authz_check_pattern(cs_authz *a, cs_db *db, const cs_actor *actor,
                            const char *pattern, unsigned op);

/* Looks up an actor by id on db. CS_ENOTFOUND when unknown. */
cs_err cs_actor_load(cs_db *db, const char *actor_id, cs_actor *out);

#endif
