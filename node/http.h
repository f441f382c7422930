/* SPDX-License-Identifier: MIT
 * http.h: the node's HTTP layer on libmicrohttpd.
 *
 * MHD's I/O threads only parse requests and write responses. When a request
 * is complete, its connection is suspended and the request is handed to a
 * worker thread, which authenticates the caller, runs the route handler
 * (all SQLite work happens there) and fills the response; the connection is
 * then resumed and MHD sends it. SSE streams are served by the hub (sse.h).
 *
 * Route handlers: `void h(cs_req *r)`. They read the request with the
 * cs_req_* getters and must produce exactly one response with cs_res_json(),
 * cs_res_error(), cs_res_text() or cs_res_sse(). */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <jansson.h>
#include "db.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"

typedef struct cs_req cs_req;
typedef struct cs_node cs_node;
typedef struct cs_http cs_http;
typedef struct sse_client sse_client;

/* The authenticated caller. */
typedef struct cs_actor {
    char actor_id[129];
    char actor_type[8];      /* "human" | "agent" */
    char agent_class[65];    /* "" when none */
    char region[65];         /* "" when none */
} cs_actor;

typedef void (*cs_handler)(cs_req *r);

/* Route flags. */
#define CS_ROUTE_NOAUTH 0x1  /* no authentication (health, metrics) */
#define CS_ROUTE_BODY 0x2    /* expects a JSON body */

typedef struct cs_route {
    const char *method;      /* "GET", "POST", ... */
    const char *path;        /* "/actors/{}/tokens/{}": {} = one segment */
    cs_handler handler;
    unsigned flags;
} cs_route;

/* ---- request getters (all borrowed, valid during the handler) ---- */
cs_node *cs_req_node(cs_req *r);
cs_db *cs_req_db(cs_req *r);            /* the worker's read connection */
const char *cs_req_method(cs_req *r);
const char *cs_req_path(cs_req *r);
const char *cs_req_id(cs_req *r);          /* X-Request-Id */
/* Path parameter i (the i-th {} of the route), URL-decoded. */
const char *cs_req_param(cs_req *r, int i);
/* Query parameter (URL-decoded by MHD) or NULL when absent. */
const char *cs_req_query(cs_req *r, const char *key);
const char *cs_req_header(cs_req *r, const char *key);
/* The caller (NULL only on CS_ROUTE_NOAUTH routes). */
const cs_actor *cs_req_actor(cs_req *r);
/* The parsed JSON body (routes with CS_ROUTE_BODY; already checked to be
 * application/json, valid UTF-8 and well-formed; may be any JSON value). */
json_t *cs_req_body(cs_req *r);

/* Query helpers that answer the error themselves when they return false:
 * required string (400 bad_request when missing), int with default and
 * range/clamp (400 bad_request when malformed), and URI (400 bad_request
 * when missing, 400 invalid_uri when malformed). */
bool cs_req_query_str(cs_req *r, const char *key, const char **out);
bool cs_req_query_int(cs_req *r, const char *key, int64_t dflt, int64_t min,
                      int64_t max_clamp, int64_t *out);
bool cs_req_query_uri(cs_req *r, const char *key, const char **out);

/* ---- responses ---- */
/* JSON response; steals `body`. */
void cs_res_json(cs_req *r, int status, json_t *body);
/* Error body {"error","message","request_id"} plus the members of `extra`
 * (stolen, may be NULL). */
void cs_res_error_x(cs_req *r, int status, const char *code, json_t *extra,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define cs_res_error(r, status, code, ...) \
    cs_res_error_x((r), (status), (code), NULL, __VA_ARGS__)
/* Maps a cs_err from the store to 404/409/503/507/500 with eb's message. */
void cs_res_store_error(cs_req *r, cs_err rv, const cs_errbuf *eb);
/* Raw body; takes ownership of body (malloc'd). */
void cs_res_text(cs_req *r, int status, const char *content_type, char *body,
                 size_t len);
/* Adds a response header (copied). */
void cs_res_header(cs_req *r, const char *name, const char *value);
/* Turns the response into an SSE stream served by the hub; takes ownership
 * of the client (see sse.h). */
void cs_res_sse(cs_req *r, sse_client *c);

/* ---- server ---- */
typedef struct cs_http_opts {
    const char *listen;      /* "HOST:PORT"; port 0 picks a free one */
    size_t max_body;         /* bytes */
    unsigned workers;        /* worker threads */
    unsigned io_threads;     /* MHD thread pool size */
    unsigned max_conns;      /* --max-connections (0: 4096) */
    unsigned max_conns_per_ip;  /* --max-connections-per-ip (0: no limit) */
    unsigned request_timeout_s; /* --request-timeout: idle seconds (0: 60) */
    size_t conn_memory_limit;   /* --conn-memory-limit (0: 160 KiB) */
    unsigned sse_max_per_actor; /* --sse-max-per-actor (0: no limit) */
    /* TLS (all NULL: plain HTTP); files are read at start and on reload */
    const char *tls_cert, *tls_key, *tls_client_ca;
} cs_http_opts;

cs_err cs_http_start(cs_node *n, const cs_http_opts *o, cs_http **out,
                     cs_errbuf *eb);
/* Re-reads the TLS files and switches to them without dropping a
 * connection: a new MHD daemon starts on the same listening socket, the old
 * one stops accepting and serves its open connections (SSE streams too)
 * until they end. On any error the old certificates stay in use. */
cs_err cs_http_reload(cs_http *h, cs_errbuf *eb);
/* True when the node serves HTTPS. */
bool cs_http_is_tls(const cs_http *h);
/* The bound "HOST:PORT". */
const char *cs_http_bound(const cs_http *h);
/* Stops accepting, finishes in-flight requests, closes streams, joins. */
void cs_http_stop(cs_http *h);
/* Prometheus text for the HTTP layer (appended to buf via json-free API). */
void cs_http_metrics(cs_http *h, char **buf, size_t *len, size_t *cap);
/* Appends printf-formatted text to a growable buffer (for /metrics). */
void cs_buf_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Wakes a suspended SSE connection (used by the hub). */
void cs_http_resume(void *mhd_connection);

#endif
