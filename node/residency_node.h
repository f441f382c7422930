/* SPDX-License-Identifier: MIT
 * residency_node.h: data residency on the node (federation.md §5,
 * docs/residency.md): the policy and peers files loaded at serve, the
 * feed's withholding view, the ingest check, the home node's side of
 * /federation/payload, the on-demand fetch of GET /artifacts and
 * GET /residency/check.
 *
 * The policy itself (parsing, matching, explanations) is pure logic in
 * residency/residency.h; this module adds what needs the node: files,
 * permissions, provenance and libcurl. */
#ifndef CS_RESIDENCY_NODE_H
#define CS_RESIDENCY_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"
#include "federation.h"
#include "http.h"

/* One entry of the peers file: how this node reaches another node for
 * on-demand fetches. Strings owned by the cs_peers. */
typedef struct cs_peer {
    char *node_id, *region, *url, *token, *ca, *cert, *key;
} cs_peer;

typedef struct cs_peers cs_peers;

/* Parses a peers document {"peers": [{node_id, region, url, token |
 * token_file, ca?, cert?, key?}]}; base_dir resolves relative token_file,
 * ca, cert and key paths. Tokens never appear in messages. */
cs_err cs_peers_parse(const char *buf, size_t len, const char *base_dir,
                      cs_peers **out, cs_errbuf *eb);
cs_err cs_peers_load(const char *path, cs_peers **out, cs_errbuf *eb);
void cs_peers_free(cs_peers *p);
size_t cs_peers_count(const cs_peers *p);
const cs_peer *cs_peers_get(const cs_peers *p, size_t i);

/* GET {peer url}{path} (path escaped by the caller) with the peer's token
 * and TLS settings, 10 s at most; *out gets the JSON object answered with
 * 200. Otherwise an error (CS_EFORBIDDEN for 401/403) with msg saying why
 * (never the token). libcurl must be initialised. */
cs_err cs_peer_get_json(const cs_peer *p, const char *path, json_t **out,
                        char *msg, size_t msz);

/* At serve, before the store opens: loads and validates --residency and
 * --peers (every problem printed on stderr), reads the test-only
 * CS_RESIDENCY_DISABLE=feed,ingest (logged as WARN) and initialises
 * libcurl. CS_EINVAL when a file is bad (the caller exits 2). */
cs_err cs_res_node_start(cs_node *n);
/* Frees what cs_res_node_start loaded (after the HTTP layer stopped). */
void cs_res_node_stop(cs_node *n);

/* The feed's residency view for a caller: the policy, the caller's region
 * (its federation actor's) and whether withholding is on. */
void cs_res_fed_view(const cs_node *n, const cs_actor *caller,
                     cs_fed_view *out);

/* Ingest: true (reason filled) when an inline payload of uri may not be
 * held in this node's region. */
bool cs_res_ingest_refuses(const cs_node *n, const char *uri, char *reason,
                           size_t rlen);

/* GET /federation/payload on the home node, after the replicate check:
 * with ?on_behalf_of= the actor must exist here and hold read on uri
 * (403) and the policy must allow on-demand reads by the caller's region
 * (451); without it, a home-only payload is withheld from callers of
 * other regions (451). Answers and returns false when refused. */
bool cs_res_payload_gate(cs_req *r, const char *uri);
/* After the bytes are loaded: the remote_fetch provenance row of an
 * on_behalf_of read. Answers (error) and returns false when it fails. */
bool cs_res_payload_served(cs_req *r, const char *uri, int64_t version,
                           const char *version_id);

/* True when the artifact JSON `a` (from cs_artifact_read with content) is
 * a version whose payload is not stored here. */
bool cs_res_is_remote(const json_t *a);
/* GET /artifacts of a remote payload: fetches it on demand from its home
 * node and answers (content, 403, 451 or 503). Takes ownership of a. */
void cs_res_read_remote(cs_req *r, const char *uri, json_t *a,
                        const char *downstream);

#endif
