/* SPDX-License-Identifier: MIT
 * http_client.h: the bridge's HTTP client on libcurl.
 *
 * One br_http wraps one curl easy handle bound to one endpoint (a link's
 * source or target), reused across requests so the connection stays alive.
 * It adds the bearer token, TLS options (ca, client cert/key, insecure),
 * timeouts and a bounded response buffer (64 MiB), and turns every failure
 * into a reason string that names the cause ("connect: Connection refused",
 * "tls: certificate verify failed", "http 503: <server message>") plus a
 * class: transient (connect, DNS, timeout, TLS, 5xx, 408, 429: back off and
 * retry) or terminal (other 4xx, protocol violations: an operator must act).
 * A br_http is used by one thread at a time. */
#ifndef BR_HTTP_CLIENT_H
#define BR_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "cs_err.h"

#define BR_HTTP_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

typedef enum {
    BR_FAIL_NONE = 0,
    BR_FAIL_TRANSIENT,
    BR_FAIL_TERMINAL,
    BR_FAIL_ABORTED, /* the abort callback stopped the transfer */
} br_fail_class;

typedef struct br_http_err {
    br_fail_class cls;
    long status;       /* HTTP status, 0 when no response arrived */
    char code[48];     /* the server's "error" code when it sent one */
    char reason[256];  /* names the cause; never contains a token */
} br_http_err;

typedef struct br_http br_http;

/* Returns nonzero to abort the running transfer (polled about every 100 ms
 * and on every chunk of data). */
typedef int (*br_http_abort_fn)(void *ud);
/* Streaming data; a non-CS_OK result ends the stream with that error. */
typedef cs_err (*br_http_data_fn)(void *ud, const char *buf, size_t len);
/* Called at least every tick_ms while a stream runs; non-CS_OK ends it. */
typedef cs_err (*br_http_tick_fn)(void *ud);

/* label ("source"/"target") and link name are used in log lines only; the
 * insecure warning is logged for labels without a '-' (so that the extra
 * handles of one endpoint, "source-lane" etc., do not repeat it). */
cs_err br_http_new(const br_endpoint *ep, const char *link, const char *label,
                   br_http **out, cs_errbuf *eb);
void br_http_free(br_http *h);
void br_http_set_abort(br_http *h, br_http_abort_fn fn, void *ud);
/* Per-request total timeout (default 120 s); 0 = none. */
void br_http_set_timeout_ms(br_http *h, long ms);

/* One request to url + path (path starts with '/', query already encoded).
 * Returns CS_OK when a response arrived, whatever its status (*status);
 * the body stays readable with br_http_body() until the next request.
 * Otherwise fills err and returns CS_EHTTP (or CS_ESHUTDOWN when aborted). */
cs_err br_http_request(br_http *h, const char *method, const char *path,
                       const char *body, size_t blen, long *status,
                       br_http_err *err);
const char *br_http_body(const br_http *h, size_t *len);

/* JSON request: body (may be NULL) is encoded compactly. A 2xx answer with a
 * JSON body gives *out (new reference). A status listed in pass (0-ended
 * array, may be NULL) returns CS_ENOTFOUND with err->status set and *out
 * unset. Any other status, a transport error or a non-JSON 2xx body fills
 * err (reason + class) and returns CS_EHTTP/CS_EPROTO/CS_ESHUTDOWN. */
cs_err br_http_json(br_http *h, const char *method, const char *path,
                    const json_t *body, const long *pass, json_t **out,
                    br_http_err *err);
/* Same with a pre-encoded body. */
cs_err br_http_json_raw(br_http *h, const char *method, const char *path,
                        const char *body, size_t blen, const long *pass,
                        json_t **out, br_http_err *err);

/* Streaming GET of an SSE resource (Accept: text/event-stream, optional
 * Last-Event-ID). Data of a 2xx text/event-stream answer goes to on_data;
 * tick runs at least every tick_ms. Returns when the server ends the stream
 * (CS_OK), on error (err filled) or when a callback fails (its code). */
cs_err br_http_stream(br_http *h, const char *path, const char *last_event_id,
                      br_http_data_fn on_data, br_http_tick_fn tick, void *ud,
                      long tick_ms, br_http_err *err);

/* Classifies an HTTP status (>= 400): transient or terminal. */
br_fail_class br_http_classify_status(long status);
/* Percent-encodes s for a query string (malloc'd; NULL on ENOMEM). */
char *br_http_escape(const char *s);
/* The endpoint's base URL (no token). */
const char *br_http_url(const br_http *h);

/* curl_global_init / cleanup, once per process. */
cs_err br_http_global_init(void);
void br_http_global_cleanup(void);

#endif
