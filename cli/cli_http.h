/* SPDX-License-Identifier: MIT
 * cli_http.h: a small libcurl wrapper for the ctxsync client.
 *
 * One call performs one request: method + path + query + optional JSON body,
 * with the caller's credentials (Authorization: Bearer <token>, or
 * X-Actor-Id: <id> for nodes in header-auth mode). The response body is
 * bounded (CLI_HTTP_MAX_BODY) and always NUL-terminated. */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stddef.h>

#include "cs_err.h"

/* Responses larger than this are refused (CS_ETOOBIG). */
#define CLI_HTTP_MAX_BODY ((size_t)64 * 1024 * 1024)

typedef struct cli_http {
    const char *base_url; /* e.g. "http://127.0.0.1:4111", no trailing '/' */
    const char *token;    /* bearer token, or NULL */
    const char *actor;    /* X-Actor-Id value, or NULL */
    const char *ca;       /* CA bundle (PEM) to verify the node, or NULL:
                             the system store */
    const char *cert;     /* client certificate (PEM) for mutual TLS */
    const char *key;      /* its key (NULL: in the cert file) */
    int insecure;         /* 1: no peer/host verification (explicit only) */
    long connect_timeout_ms;
    long timeout_ms;      /* whole request; 0 = no limit */
} cli_http;

typedef struct cli_resp {
    long status;          /* HTTP status code */
    char *body;           /* owned, NUL-terminated (may hold inner NULs) */
    size_t len;           /* body length without the final NUL */
    char *content_type;   /* owned, or NULL when the server sent none */
} cli_resp;

/* Initialises / releases libcurl's global state; call once each. */
cs_err cli_http_global_init(cs_errbuf *eb);
void cli_http_global_cleanup(void);

/* Performs one request.
 * - path: starts with '/'; path segments must already be escaped
 *   (see cli_http_escape).
 * - query: NULL, or a flat array of key/value pairs ending with a NULL key;
 *   a pair whose value is NULL is skipped; keys and values are escaped here.
 * - body: NULL for none; otherwise sent with Content-Type: application/json.
 * On success (any HTTP status) fills *out, which the caller releases with
 * cli_resp_free(). Transport failures return an error with a message such as
 * "cannot reach node at URL: ..." in eb. */
cs_err cli_http_request(const cli_http *h, const char *method, const char *path,
                        const char *const *query, const char *body,
                        size_t body_len, cli_resp *out, cs_errbuf *eb);

void cli_resp_free(cli_resp *r);

/* Percent-encodes s for use in a URL path segment or query value.
 * *out is malloc'ed and owned by the caller (free()). */
cs_err cli_http_escape(const char *s, char **out, cs_errbuf *eb);

#endif
