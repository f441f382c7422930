/* SPDX-License-Identifier: MIT
 * auth.h: authentication (who is calling) and the writes that create
 * identities and rights: actors, bearer tokens and grants.
 *
 * Tokens are 32 random bytes from the OS, base64url-encoded (43 chars),
 * shown once when issued and stored only as their lowercase SHA-256 hex in
 * tokens.token_hash; a lookup goes through the unique index on that column
 * and the stored hash is then compared with the computed one in constant
 * time. Nothing here ever logs a token. Grants store their operations as a
 * JSON array of names in canonical order ("read", "write", "suggest",
 * "approve", "admin", "replicate"); node/authz.c reads that form. */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include <jansson.h>
#include "db.h"

#include "cs_err.h"
#include "http.h"
#include "store.h"

/* Every operation bit cs_op_parse() knows. */
#define CS_OPS_ALL 0x3fu

/* ---- authentication (worker threads, read connection) ---- */

/* Authenticates "Authorization: Bearer <token>" (scheme case-insensitive).
 * Fills *out with the token's actor. CS_ENOTFOUND when the header is
 * missing, malformed or names no token; CS_EDB on a database failure. */
cs_err cs_auth_token(cs_db *db, const char *authorization_header,
                     cs_actor *out);

/* Header mode: X-Actor-Id names an existing actor. CS_ENOTFOUND when the
 * header is missing or the actor unknown; CS_EDB on a database failure. */
cs_err cs_auth_header(cs_db *db, const char *x_actor_id, cs_actor *out);

/* ---- validation (pure) ---- */

/* True when id matches [A-Za-z0-9._@-]{1,128}. */
bool cs_actor_id_valid(const char *id);

/* Checks an actor about to be created: actor_type "human"|"agent", name a
 * non-empty string of at most 256 bytes, actor_id valid (may be NULL: to
 * be generated), agent_class ([A-Za-z0-9._-]{1,64}) only for agents,
 * region ([A-Za-z0-9._-]{1,64}) only for agents of class "federation".
 * NULL or "" agent_class/region mean none. CS_EINVAL with a message. */
cs_err cs_actor_validate(const char *actor_id, const char *type,
                         const char *name, const char *agent_class,
                         const char *region, cs_errbuf *eb);

/* True when s matches [A-Za-z0-9._-]{1,64} (agent classes, regions). */
bool cs_class_valid(const char *s);

/* ---- operations <-> JSON ---- */

/* New JSON array of the names of ops, in canonical order (new reference;
 * NULL on allocation failure). */
json_t *cs_ops_json(unsigned ops);
/* Parses the stored form (a JSON array of names); unknown names are
 * ignored, malformed text gives 0. */
unsigned cs_ops_from_text(const char *text);

/* ---- writes (inside a cs_write_fn, on the writer thread) ---- */

/* Creates an actor (validated with cs_actor_validate(); actor_id must be
 * given here). CS_ECONFLICT when the id exists, CS_EINVAL when invalid. */
cs_err cs_actor_create_tx(cs_tx *tx, const char *actor_id, const char *type,
                          const char *name, const char *agent_class,
                          const char *region, cs_errbuf *eb);

/* Issues a bearer token for an existing actor: token_id is "tk_" + 16 hex
 * (OUT, 40 bytes), token the secret (OUT, 44 bytes), to be shown once; only
 * its SHA-256 hex is stored. CS_ENOTFOUND when the actor is unknown. */
cs_err cs_token_issue(cs_tx *tx, const char *actor_id, char token_id[40],
                      char token[44], cs_errbuf *eb);

/* Creates a grant for exactly one of actor_id / agent_class (the other
 * NULL) on a valid pattern with ops (non-zero, within CS_OPS_ALL). id_out is
 * "gr_" + 16 hex (OUT, 40 bytes). Marks the grants as changed. CS_EINVAL on
 * invalid input, CS_ENOTFOUND when actor_id names no actor. */
cs_err cs_grant_create_tx(cs_tx *tx, const char *actor_id,
                          const char *agent_class, const char *pattern,
                          unsigned ops, const char *granted_by,
                          char id_out[40], cs_errbuf *eb);

#endif
