/* SPDX-License-Identifier: MIT
 * http.c: libmicrohttpd glue, worker pool, routing, authentication,
 * responses and per-route metrics.
 *
 * Life of a request: MHD's I/O thread collects headers and body (bounded
 * by --max-body: a declared Content-Length above it is answered 413 before
 * any body byte is read). When complete, the connection is suspended and
 * the request goes to the worker queue. A worker (own read-only SQLite
 * connection) matches the route, authenticates, parses the JSON body, runs
 * the handler and resumes the connection; MHD then calls us again on the
 * I/O thread and we queue the prepared response. No SQLite call ever runs
 * on an I/O thread. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "node.h"
#include "sse.h"

#define MAX_PARAMS 4
#define MAX_URL 65536
#define JOBQ_MAX 8192
#define N_BUCKETS 12
static const double bucket_le[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025, 0.05,   0.1,
                                            0.25,   0.5,   1.0,    2.5};

typedef struct hdr {
    char *name, *value;
    struct hdr *next;
} hdr;

typedef enum { ST_READING = 0, ST_QUEUED, ST_DONE } req_state;

struct cs_req {
    cs_http *http;
    struct MHD_Connection *conn;
    char method[16];
    char *path;
    char id[24];
    char *body;
    size_t body_len;
    bool too_big;
    json_t *json;
    const cs_route *route;
    int route_idx;
    char *params[MAX_PARAMS];
    cs_actor actor;
    bool has_actor;
    sqlite3 *db;
    int status;
    char *res_body;
    size_t res_len;
    char ctype[96];
    hdr *headers;
    bool responded;
    sse_client *sse;
    req_state state;
    int64_t t_start;
    struct cs_req *next;
};

typedef struct route_stats {
    _Atomic uint64_t count[6]; /* by status class 1xx..5xx (index 1..5) */
    _Atomic uint64_t buckets[N_BUCKETS + 1];
    _Atomic uint64_t sum_us;
} route_stats;

#define MAX_ROUTES 96

struct cs_http {
    cs_node *node;
    struct MHD_Daemon *d;
    int lfd;
    char bound[300];
    size_t max_body;
    unsigned n_workers;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cs_req *q_head, *q_tail;
    size_t q_len;
    _Atomic bool stopping; /* set under mu; read without it on I/O threads */
    _Atomic int inflight;
    _Atomic uint64_t n_requests, n_rejected_busy;
    const cs_route *routes[MAX_ROUTES];
    route_stats stats[MAX_ROUTES + 1]; /* last: unmatched */
    int n_routes;
};

/* ---- small buffer helper ---- */

void
cs_buf_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;
    for (;;) {
        size_t room = *cap - *len;
        va_start(ap, fmt);
        n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf != NULL && (size_t)n < room) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap * 2 : 4096);
        while (ncap < *len + (size_t)n + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL)
            return;
        *buf = nb;
        *cap = ncap;
    }
}

/* ---- request getters ---- */

cs_node *
cs_req_node(cs_req *r)
{
    return r->http->node;
}
sqlite3 *
cs_req_db(cs_req *r)
{
    return r->db;
}
const char *
cs_req_method(cs_req *r)
{
    return r->method;
}
const char *
cs_req_path(cs_req *r)
{
    return r->path;
}
const char *
cs_req_id(cs_req *r)
{
    return r->id;
}
const char *
cs_req_param(cs_req *r, int i)
{
    return (i >= 0 && i < MAX_PARAMS) ? r->params[i] : NULL;
}
const char *
cs_req_query(cs_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}
const char *
cs_req_header(cs_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}
const cs_actor *
cs_req_actor(cs_req *r)
{
    return r->has_actor ? &r->actor : NULL;
}
json_t *
cs_req_body(cs_req *r)
{
    return r->json;
}

bool
cs_req_query_str(cs_req *r, const char *key, const char **out)
{
    const char *v = cs_req_query(r, key);
    if (v == NULL || *v == '\0') {
        cs_res_error(r, 400, "bad_request",
                     "missing required query parameter '%s'", key);
        return false;
    }
    *out = v;
    return true;
}

bool
cs_req_query_int(cs_req *r, const char *key, int64_t dflt, int64_t min,
                 int64_t max_clamp, int64_t *out)
{
    const char *v = cs_req_query(r, key);
    char *end = NULL;
    long long x;
    if (v == NULL || *v == '\0') {
        *out = dflt;
        return true;
    }
    x = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || x < min) {
        cs_res_error(r, 400, "bad_request",
                     "query parameter '%s' must be an integer >= %lld", key,
                     (long long)min);
        return false;
    }
    if (max_clamp > 0 && x > max_clamp)
        x = max_clamp;
    *out = x;
    return true;
}

bool
cs_req_query_uri(cs_req *r, const char *key, const char **out)
{
    cs_errbuf eb = {{0}};
    const char *v = cs_req_query(r, key);
    if (v == NULL) {
        cs_res_error(r, 400, "bad_request",
                     "missing required query parameter '%s'", key);
        return false;
    }
    /* present but empty is malformed, not missing */
    if (cs_uri_parse(v, NULL, &eb) != CS_OK) {
        cs_res_error(r, 400, "invalid_uri", "invalid %s: %s", key, eb.msg);
        return false;
    }
    *out = v;
    return true;
}

/* ---- responses ---- */

static void
set_body(cs_req *r, int status, const char *ctype, char *body, size_t len)
{
    if (r->responded) {
        free(body);
        return;
    }
    r->responded = true;
    r->status = status;
    r->res_body = body;
    r->res_len = len;
    snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
}

void
cs_res_json(cs_req *r, int status, json_t *body)
{
    size_t len = 0;
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (s == NULL) {
        s = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
        status = 500;
    }
    len = s ? strlen(s) : 0;
    set_body(r, status, "application/json", s, len);
}

void
cs_res_error_x(cs_req *r, int status, const char *code, json_t *extra,
               const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *o;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_pack("{s:s,s:s,s:s}", "error", code, "message", msg,
                  "request_id", r->id);
    if (o != NULL && extra != NULL)
        json_object_update_missing(o, extra);
    json_decref(extra);
    if (status == 503) {
        bool have = false;
        for (hdr *x = r->headers; x != NULL; x = x->next)
            have = have || strcasecmp(x->name, "Retry-After") == 0;
        if (!have)
            cs_res_header(r, "Retry-After", "1");
    }
    if (status >= 500)
        cs_log(CS_LOG_WARN, "HTTP-ERROR", "req=%s %s %s -> %d %s: %s", r->id,
               r->method, r->path, status, code, msg);
    cs_res_json(r, status, o);
}

void
cs_res_store_error(cs_req *r, cs_err rv, const cs_errbuf *eb)
{
    const char *m = (eb && eb->msg[0]) ? eb->msg : cs_strerror(rv);
    switch (rv) {
    case CS_ENOTFOUND:
        cs_res_error(r, 404, "not_found", "%s", m);
        break;
    case CS_ECONFLICT:
        cs_res_error(r, 409, "conflict", "%s", m);
        break;
    case CS_EINVAL:
        cs_res_error(r, 400, "bad_request", "%s", m);
        break;
    case CS_EFORBIDDEN:
        cs_res_error(r, 403, "forbidden", "%s", m);
        break;
    case CS_EFULL:
        cs_res_error(r, 507, "insufficient_storage",
                     "%s; free space on the node's data volume and retry", m);
        break;
    case CS_ESHUTDOWN:
        cs_res_error(r, 503, "unavailable", "%s", m);
        break;
    default:
        cs_res_error(r, 500, "internal", "%s", m);
        break;
    }
}

void
cs_res_text(cs_req *r, int status, const char *content_type, char *body,
            size_t len)
{
    set_body(r, status, content_type, body, len);
}

void
cs_res_header(cs_req *r, const char *name, const char *value)
{
    hdr *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return;
    h->name = strdup(name);
    h->value = strdup(value);
    h->next = r->headers;
    r->headers = h;
}

void
cs_res_sse(cs_req *r, sse_client *c)
{
    if (r->responded) {
        sse_client_free(c);
        return;
    }
    r->responded = true;
    r->status = 200;
    r->sse = c;
}

/* ---- routing ---- */

/* Matches path against a route pattern; fills params (malloc'd). */
static bool
path_match(const char *pat, const char *path, char **params)
{
    int np = 0;
    while (*pat && *path) {
        if (pat[0] == '{' && pat[1] == '}') {
            const char *e = strchr(path, '/');
            size_t n = e ? (size_t)(e - path) : strlen(path);
            if (n == 0 || np >= MAX_PARAMS)
                return false;
            if (params != NULL)
                params[np] = strndup(path, n);
            np++;
            path += n;
            pat += 2;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    return *pat == '\0' && *path == '\0';
}

static void
free_params(char **params)
{
    for (int i = 0; i < MAX_PARAMS; i++) {
        free(params[i]);
        params[i] = NULL;
    }
}

static void
route_request(cs_req *r)
{
    cs_http *h = r->http;
    char allow[128] = "";
    size_t alen = 0;
    bool path_known = false;

    for (int i = 0; i < h->n_routes; i++) {
        const cs_route *rt = h->routes[i];
        if (!path_match(rt->path, r->path, NULL))
            continue;
        path_known = true;
        if (strcmp(rt->method, r->method) == 0) {
            path_match(rt->path, r->path, r->params);
            r->route = rt;
            r->route_idx = i;
            return;
        }
        if (strstr(allow, rt->method) == NULL) {
            int n = snprintf(allow + alen, sizeof(allow) - alen, "%s%s",
                             alen ? ", " : "", rt->method);
            if (n > 0 && (size_t)n < sizeof(allow) - alen)
                alen += (size_t)n;
        }
    }
    if (path_known) {
        cs_res_header(r, "Allow", allow);
        cs_res_error(r, 405, "method_not_allowed",
                     "%s is not allowed on %s (allowed: %s)", r->method,
                     r->path, allow);
    } else {
        cs_res_error(r, 404, "not_found", "no such endpoint: %s %s",
                     r->method, r->path);
    }
}

static bool
content_type_json(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return false;
    ct += 16;
    return *ct == '\0' || *ct == ';' || *ct == ' ';
}

static void
authenticate(cs_req *r)
{
    cs_node *n = r->http->node;
    cs_err rv;
    if (n->cfg.header_auth) {
        const char *who = cs_req_header(r, "X-Actor-Id");
        if (who == NULL || *who == '\0') {
            cs_res_error(r, 401, "unauthenticated",
                         "missing X-Actor-Id header (this node uses header "
                         "authentication)");
            return;
        }
        rv = cs_auth_header(r->db, who, &r->actor);
        if (rv != CS_OK) {
            cs_res_error(r, 401, "unauthenticated",
                         "unknown actor in X-Actor-Id");
            return;
        }
    } else {
        const char *authz = cs_req_header(r, "Authorization");
        if (authz == NULL || *authz == '\0') {
            cs_res_error(r, 401, "unauthenticated",
                         "missing 'Authorization: Bearer <token>' header");
            return;
        }
        rv = cs_auth_token(r->db, authz, &r->actor);
        if (rv != CS_OK) {
            cs_res_error(r, 401, "unauthenticated",
                         "invalid or revoked bearer token");
            return;
        }
    }
    r->has_actor = true;
}

static void
process(cs_req *r)
{
    route_request(r);
    if (r->responded)
        return;
    if (strlen(r->path) + 1 > MAX_URL) {
        cs_res_error(r, 414, "bad_request", "request path too long");
        return;
    }
    if (!(r->route->flags & CS_ROUTE_NOAUTH)) {
        authenticate(r);
        if (r->responded)
            return;
    }
    if (r->route->flags & CS_ROUTE_BODY) {
        cs_errbuf eb = {{0}};
        if (!content_type_json(cs_req_header(r, "Content-Type"))) {
            cs_res_error(r, 415, "unsupported_media_type",
                         "request body must be Content-Type: "
                         "application/json");
            return;
        }
        if (r->body_len == 0) {
            cs_res_error(r, 400, "invalid_json", "request body is empty");
            return;
        }
        if (cs_json_parse(r->body, r->body_len, &r->json, &eb) != CS_OK) {
            cs_res_error(r, 400, "invalid_json", "%s", eb.msg);
            return;
        }
    }
    r->route->handler(r);
    if (!r->responded)
        cs_res_error(r, 500, "internal", "handler produced no response");
}

/* ---- worker pool ---- */

static void *
worker_main(void *arg)
{
    cs_http *h = arg;
    sqlite3 *db = NULL;
    if (cs_store_reader(h->node->store, &db) != CS_OK)
        cs_log(CS_LOG_ERROR, "HTTP-WORKER", "cannot open a read connection");
    for (;;) {
        cs_req *r;
        pthread_mutex_lock(&h->mu);
        while (h->q_head == NULL && !h->stopping)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->q_head == NULL) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        r = h->q_head;
        h->q_head = r->next;
        if (h->q_head == NULL)
            h->q_tail = NULL;
        h->q_len--;
        pthread_mutex_unlock(&h->mu);

        r->db = db;
        if (db == NULL)
            cs_res_error(r, 503, "unavailable", "database not available");
        else
            process(r);
        if (db != NULL)
            cs_store_reader_idle(db);
        r->db = NULL;
        r->state = ST_DONE;
        MHD_resume_connection(r->conn);
    }
    cs_store_reader_close(db);
    return NULL;
}

static bool
enqueue(cs_http *h, cs_req *r)
{
    pthread_mutex_lock(&h->mu);
    if (h->q_len >= JOBQ_MAX) {
        pthread_mutex_unlock(&h->mu);
        return false;
    }
    r->next = NULL;
    if (h->q_tail)
        h->q_tail->next = r;
    else
        h->q_head = r;
    h->q_tail = r;
    h->q_len++;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return true;
}

/* ---- MHD callbacks ---- */

static void
record_stats(cs_req *r)
{
    cs_http *h = r->http;
    int idx = r->route ? r->route_idx : h->n_routes;
    route_stats *st = &h->stats[idx];
    int64_t us = cs_now_us() - r->t_start;
    double secs = (double)us / 1e6;
    int cls = r->status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    atomic_fetch_add(&st->count[cls], 1);
    atomic_fetch_add(&st->sum_us, (uint64_t)(us > 0 ? us : 0));
    for (int i = 0; i < N_BUCKETS; i++) {
        if (secs <= bucket_le[i]) {
            atomic_fetch_add(&st->buckets[i], 1);
            return;
        }
    }
    atomic_fetch_add(&st->buckets[N_BUCKETS], 1);
}

static enum MHD_Result
queue_response(cs_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (r->sse != NULL) {
        sse_client *c = r->sse;
        r->sse = NULL;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024,
                                                 sse_client_read, c,
                                                 sse_client_release);
        if (resp == NULL) {
            sse_client_free(c);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        sse_client_attach(c, r->conn);
    } else {
        resp = MHD_create_response_from_buffer(r->res_len, r->res_body,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            return MHD_NO;
        r->res_body = NULL;
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    }
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    for (hdr *x = r->headers; x != NULL; x = x->next)
        MHD_add_response_header(resp, x->name, x->value);
    ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    record_stats(r);
    return ret;
}

static cs_req *
req_new(cs_http *h, struct MHD_Connection *c, const char *url,
        const char *method)
{
    cs_req *r = calloc(1, sizeof(*r));
    unsigned char rnd[6];
    if (r == NULL)
        return NULL;
    r->http = h;
    r->conn = c;
    r->t_start = cs_now_us();
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->path = strdup(url ? url : "/");
    cs_random_bytes(rnd, sizeof(rnd));
    snprintf(r->id, sizeof(r->id), "req_%02x%02x%02x%02x%02x%02x", rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    atomic_fetch_add(&h->inflight, 1);
    atomic_fetch_add(&h->n_requests, 1);
    return r;
}

static void
req_free(cs_req *r)
{
    if (r == NULL)
        return;
    atomic_fetch_sub(&r->http->inflight, 1);
    free(r->path);
    free(r->body);
    json_decref(r->json);
    free_params(r->params);
    free(r->res_body);
    while (r->headers) {
        hdr *n = r->headers->next;
        free(r->headers->name);
        free(r->headers->value);
        free(r->headers);
        r->headers = n;
    }
    if (r->sse)
        sse_client_free(r->sse);
    free(r);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    cs_http *h = cls;
    cs_req *r = *con_cls;

    if (r == NULL) {
        const char *cl;
        r = req_new(h, c, url, method);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > h->max_body) {
            cs_res_error(r, 413, "payload_too_large",
                         "request body of %s bytes exceeds the limit of %zu "
                         "bytes (--max-body)",
                         cl, h->max_body);
            r->state = ST_DONE;
            return queue_response(r);
        }
        if (h->stopping) {
            cs_res_header(r, "Retry-After", "1");
            cs_res_error(r, 503, "unavailable", "node is shutting down");
            r->state = ST_DONE;
            return queue_response(r);
        }
        return MHD_YES;
    }
    if (r->state == ST_DONE)
        return queue_response(r);
    if (r->state == ST_QUEUED)
        return MHD_YES; /* spurious; still being processed */
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!r->too_big && r->body_len + n <= h->max_body) {
            char *nb = realloc(r->body, r->body_len + n + 1);
            if (nb == NULL)
                return MHD_NO;
            r->body = nb;
            memcpy(r->body + r->body_len, upload_data, n);
            r->body_len += n;
            r->body[r->body_len] = '\0';
        } else {
            /* Chunked upload over the limit. MHD 0.9.75 cannot queue a
             * response mid-upload, so the bytes are discarded (never
             * stored) and 413 is answered at the end; a client that keeps
             * sending past 4x the limit is disconnected. */
            if (!r->too_big) {
                r->too_big = true;
                free(r->body);
                r->body = NULL;
            }
            r->body_len += n;
            if (r->body_len > 4 * h->max_body)
                return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->too_big) {
        cs_res_error(r, 413, "payload_too_large",
                     "request body exceeds the limit of %zu bytes "
                     "(--max-body)",
                     h->max_body);
        r->state = ST_DONE;
        return queue_response(r);
    }
    /* Request complete: hand it to a worker. */
    r->state = ST_QUEUED;
    MHD_suspend_connection(c);
    if (!enqueue(h, r)) {
        atomic_fetch_add(&h->n_rejected_busy, 1);
        cs_res_header(r, "Retry-After", "1");
        cs_res_error(r, 503, "unavailable",
                     "node overloaded: request queue full");
        r->state = ST_DONE;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    req_free(*con_cls);
    *con_cls = NULL;
}

void
cs_http_resume(void *mhd_connection)
{
    MHD_resume_connection(mhd_connection);
}

/* ---- start / stop ---- */

static int
listen_socket(const char *listen_addr, char *bound, size_t boundlen,
              cs_errbuf *eb)
{
    char host[256];
    const char *colon = strrchr(listen_addr, ':');
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    long port;
    char *end;
    int fd, one = 1;

    if (colon == NULL || (size_t)(colon - listen_addr) >= sizeof(host)) {
        cs_errf(eb, CS_EINVAL, "--listen must be HOST:PORT, got '%s'",
                listen_addr);
        return -1;
    }
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        cs_errf(eb, CS_EINVAL, "invalid port in --listen '%s'", listen_addr);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        cs_errf(eb, CS_EINVAL, "--listen host must be an IPv4 address, got "
                "'%s'", host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cs_errf(eb, CS_EIO, "socket: %m");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1024) != 0) {
        cs_errf(eb, CS_EIO, "cannot listen on %s: %m", listen_addr);
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(bound, boundlen, "%s:%u", host, ntohs(sa.sin_port));
    return fd;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    cs_log(CS_LOG_DEBUG, "HTTP-MHD", "%s", msg);
}

cs_err
cs_http_start(cs_node *n, const cs_http_opts *o, cs_http **out, cs_errbuf *eb)
{
    const cs_route *all[] = {cs_routes_artifacts, cs_routes_suggestions,
                             cs_routes_actors,    cs_routes_misc,
                             cs_routes_feed,      cs_routes_ops,
                             cs_routes_federation, cs_routes_forks,
                             cs_routes_ui};
    cs_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return CS_ENOMEM;
    h->node = n;
    h->max_body = o->max_body;
    h->lfd = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    for (size_t t = 0; t < sizeof(all) / sizeof(all[0]); t++)
        for (const cs_route *rt = all[t]; rt->method != NULL; rt++)
            if (h->n_routes < MAX_ROUTES)
                h->routes[h->n_routes++] = rt;

    h->lfd = listen_socket(o->listen, h->bound, sizeof(h->bound), eb);
    if (h->lfd < 0)
        goto fail;
    h->n_workers = o->workers ? o->workers : 4;
    h->workers = calloc(h->n_workers, sizeof(pthread_t));
    if (h->workers == NULL)
        goto fail;
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_create(&h->workers[i], NULL, worker_main, h);

    h->d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | MHD_USE_TURBO,
        0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->lfd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->io_threads ? o->io_threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_conns ? o->max_conns : 4096),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(160 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    if (h->d == NULL) {
        cs_errf(eb, CS_EIO, "cannot start the HTTP server on %s", o->listen);
        goto fail;
    }
    *out = h;
    return CS_OK;
fail:
    if (h->workers != NULL) {
        pthread_mutex_lock(&h->mu);
        h->stopping = true;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        for (unsigned i = 0; i < h->n_workers; i++)
            if (h->workers[i])
                pthread_join(h->workers[i], NULL);
        free(h->workers);
    }
    if (h->lfd >= 0)
        close(h->lfd);
    free(h);
    return eb && eb->msg[0] ? CS_EIO : CS_ENOMEM;
}

const char *
cs_http_bound(const cs_http *h)
{
    return h->bound;
}

void
cs_http_stop(cs_http *h)
{
    int fd;
    int64_t deadline;
    if (h == NULL)
        return;
    /* 1. stop accepting new connections */
    fd = (int)MHD_quiesce_daemon(h->d); /* ours to close after the stop */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    /* 2. end the streams so their connections finish */
    sse_hub_close_all(h->node->hub);
    /* 3. let in-flight requests finish (bounded) */
    deadline = cs_now_us() + 3 * 1000000;
    while (atomic_load(&h->inflight) > 0 && cs_now_us() < deadline)
        usleep(10000);
    if (atomic_load(&h->inflight) > 0)
        cs_log(CS_LOG_WARN, "HTTP-STOP", "%d requests still open after 3 s; closing them",
               atomic_load(&h->inflight));
    MHD_stop_daemon(h->d);
    if (fd >= 0)
        close(fd);
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    free(h->workers);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

void
cs_http_metrics(cs_http *h, char **buf, size_t *len, size_t *cap)
{
    cs_buf_appendf(buf, len, cap,
                   "# HELP ctxsync_http_requests_total HTTP requests by route "
                   "and status class.\n"
                   "# TYPE ctxsync_http_requests_total counter\n");
    for (int i = 0; i <= h->n_routes; i++) {
        const char *m = i < h->n_routes ? h->routes[i]->method : "ANY";
        const char *p = i < h->n_routes ? h->routes[i]->path : "unmatched";
        for (int c = 1; c <= 5; c++) {
            uint64_t v = atomic_load(&h->stats[i].count[c]);
            if (v)
                cs_buf_appendf(buf, len, cap,
                               "ctxsync_http_requests_total{method=\"%s\","
                               "route=\"%s\",code=\"%dxx\"} %llu\n",
                               m, p, c, (unsigned long long)v);
        }
    }
    cs_buf_appendf(buf, len, cap,
                   "# HELP ctxsync_http_request_duration_seconds Request "
                   "latency by route.\n"
                   "# TYPE ctxsync_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= h->n_routes; i++) {
        const char *m = i < h->n_routes ? h->routes[i]->method : "ANY";
        const char *p = i < h->n_routes ? h->routes[i]->path : "unmatched";
        uint64_t cum = 0, total = 0;
        for (int b = 0; b <= N_BUCKETS; b++)
            total += atomic_load(&h->stats[i].buckets[b]);
        if (total == 0)
            continue;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += atomic_load(&h->stats[i].buckets[b]);
            cs_buf_appendf(buf, len, cap,
                           "ctxsync_http_request_duration_seconds_bucket{"
                           "method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
                           m, p, bucket_le[b], (unsigned long long)cum);
        }
        cs_buf_appendf(buf, len, cap,
                       "ctxsync_http_request_duration_seconds_bucket{method="
                       "\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n"
                       "ctxsync_http_request_duration_seconds_sum{method=\"%s\","
                       "route=\"%s\"} %.6f\n"
                       "ctxsync_http_request_duration_seconds_count{method="
                       "\"%s\",route=\"%s\"} %llu\n",
                       m, p, (unsigned long long)total, m, p,
                       (double)atomic_load(&h->stats[i].sum_us) / 1e6, m, p,
                       (unsigned long long)total);
    }
    cs_buf_appendf(buf, len, cap,
                   "# TYPE ctxsync_http_inflight gauge\nctxsync_http_inflight "
                   "%d\n# TYPE ctxsync_http_rejected_busy_total counter\n"
                   "ctxsync_http_rejected_busy_total %llu\n",
                   atomic_load(&h->inflight),
                   (unsigned long long)atomic_load(&h->n_rejected_busy));
}
