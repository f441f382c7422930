/* SPDX-License-Identifier: MIT
 * config.h: the ctxsync-bridge configuration file (federation.md §6,
 * docs/bridge.md "Configuration").
 *
 * br_config_parse() turns a JSON document into a validated, immutable
 * br_config; every error names the link (by name or index) and the field.
 * Unknown keys are errors. Tokens come from exactly one of `token`,
 * `token_file` (path, relative to the config file's directory) or
 * `token_env` (environment variable name) and are never copied into an error
 * message. Depends only on core + jansson (unit tests include the .c). */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"
#include "residency.h"

#define BR_NAME_MAX 64
#define BR_DEFAULT_MAX_EVENTS 500
#define BR_DEFAULT_MAX_BYTES 4194304
#define BR_DEFAULT_IN_FLIGHT 4
#define BR_DEFAULT_KEEPALIVE_S 15
#define BR_DEFAULT_BACKOFF_MAX_S 30
/* Limits the target enforces on one ingest (docs/federation-protocol.md). */
#define BR_MAX_EVENTS_LIMIT 10000
#define BR_MAX_BYTES_LIMIT ((int64_t)64 * 1024 * 1024)
#define BR_MAX_IN_FLIGHT 64

typedef enum { BR_MODE_METADATA = 0, BR_MODE_FULL } br_mode;

/* One end of a link. Strings are owned by the br_config. */
typedef struct br_endpoint {
    char *url;    /* http(s)://host[:port][/prefix], no trailing '/' */
    char *token;  /* secret: never log, print or put in an error */
    char *ca;     /* CA bundle file, or NULL for the system store */
    char *cert;   /* client certificate (PEM) for mTLS, or NULL */
    char *key;    /* client key (PEM), or NULL */
    bool insecure;/* true: peer verification off (logged at every start) */
} br_endpoint;

typedef struct br_link_config {
    char *name;
    br_endpoint source;
    br_endpoint target;
    br_mode mode;
    char **patterns;     /* validated with cs_pattern_validate */
    size_t npatterns;
    char *patterns_csv;  /* "p1,p2" as sent in ?pattern= */
    int64_t max_events;  /* batch.max_events */
    int64_t max_bytes;   /* batch.max_bytes (payload bytes per batch/page) */
    int in_flight;
    int keepalive_s;
    int backoff_max_s;
    /* residency: the config's policy (borrowed; NULL: none) */
    const cs_residency *residency;
} br_link_config;

typedef struct br_config br_config;

/* Parses and validates a config document. base_dir (may be NULL = ".")
 * resolves relative token_file and residency paths. A top-level
 * "residency": "policy.json" loads that residency policy (residency.h);
 * its problems are logged one by one and the first is in eb. *out is set
 * only on success. */
cs_err br_config_parse(const char *buf, size_t len, const char *base_dir,
                       br_config **out, cs_errbuf *eb);
/* Reads (at most 1 MiB) and parses a config file. */
cs_err br_config_load(const char *path, br_config **out, cs_errbuf *eb);
void br_config_free(br_config *cfg);

/* "HOST:PORT" of the status listener, or NULL. */
const char *br_config_status(const br_config *cfg);
/* "ipc://..." of the control socket, or NULL (the caller picks a default). */
const char *br_config_control(const br_config *cfg);
/* state directory or NULL. */
const char *br_config_state_dir(const br_config *cfg);
/* residency: the loaded policy, or NULL. */
const cs_residency *br_config_residency(const br_config *cfg);
size_t br_config_nlinks(const br_config *cfg);
const br_link_config *br_config_link(const br_config *cfg, size_t i);
const br_link_config *br_config_find_link(const br_config *cfg, const char *name);

const char *br_mode_name(br_mode m);
/* Validates "HOST:PORT" (port 0..65535; host non-empty, no spaces). */
cs_err br_hostport_validate(const char *s, cs_errbuf *eb);

#endif
