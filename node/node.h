/* SPDX-License-Identifier: MIT
 * node.h: the running node's shared context and the route tables of each
 * route module. Node-internal: not part of core. */
#ifndef CS_NODE_H
#define CS_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "authz.h"
#include "http.h"
#include "residency.h"
#include "store.h"

typedef struct sse_hub sse_hub;

typedef struct cs_node_cfg {
    const char *data_dir;
    const char *listen;
    bool header_auth;          /* --auth header */
    size_t max_body;
    unsigned keepalive_s;      /* SSE keepalive comment interval */
    unsigned sse_max_lag;      /* events queued for one client before overflow */
    bool sync_full;
    size_t blob_inline_max;
    /* Paths given on the command line (NULL when absent); each owning
     * module loads and validates its file at start. */
    const char *residency_file; /* --residency (residency/) */
    const char *peers_file;     /* --peers (on-demand fetch) */
    const char *tls_cert;       /* --tls-cert */
    const char *tls_key;        /* --tls-key */
    const char *tls_client_ca;  /* --tls-client-ca (mutual TLS) */
    const char *fork_policies[16]; /* --fork-policy PATTERN=POLICY, in order */
    unsigned n_fork_policies;
} cs_node_cfg;

struct cs_node {
    cs_node_cfg cfg;
    cs_store *store;
    cs_authz *authz;
    sse_hub *hub;
    cs_http *http;
    long long started_us;
    /* residency: the policy (--residency; NULL: none), the peers for
     * on-demand fetches (--peers; NULL: none) and the test-only switches
     * of CS_RESIDENCY_DISABLE (node/residency_node.c) */
    cs_residency *residency;
    struct cs_peers *peers;
    bool res_no_feed, res_no_ingest;
};

/* Route tables, each terminated by {NULL}. */
extern const cs_route cs_routes_artifacts[];   /* routes_artifacts.c */
extern const cs_route cs_routes_suggestions[]; /* routes_suggestions.c */
extern const cs_route cs_routes_actors[];      /* routes_actors.c: actors, tokens, permissions */
extern const cs_route cs_routes_misc[];        /* routes_misc.c: provenance, search */
extern const cs_route cs_routes_feed[];        /* routes_feed.c: changes, subscriptions, SSE */
extern const cs_route cs_routes_ops[];         /* routes_ops.c: health, metrics */
extern const cs_route cs_routes_federation[];  /* routes_federation.c */
extern const cs_route cs_routes_forks[];       /* forks.c: review queue */
extern const cs_route cs_routes_ui[];          /* routes_ui.c: /ui/forks */
extern const cs_route cs_routes_residency[];   /* residency_node.c */

/* Appends one provenance row inside a write (operation "read", "write",
 * ...). version_touched <= 0 means null. */
cs_err cs_prov_append(cs_tx *tx, const char *actor_id, const char *operation,
                      const char *uri, long long version_touched,
                      const char *version_id, const char *downstream_uri,
                      cs_errbuf *eb);
/* The same with a JSON `detail` text (e.g. where a remote_fetch came from);
 * detail may be NULL. */
cs_err cs_prov_append_detail(cs_tx *tx, const char *actor_id,
                             const char *operation, const char *uri,
                             long long version_touched,
                             const char *version_id,
                             const char *downstream_uri, const char *detail,
                             cs_errbuf *eb);

#endif
