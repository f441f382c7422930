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
 * on an I/O thread.
 *
 * TLS (tls.h): the daemon serves HTTPS from in-memory PEM; with a client
 * CA, every new connection is switched to "client certificate required and
 * verified in the handshake" from the connection-start notification, and
 * the first request of a connection re-checks the peer. SIGHUP
 * (cs_http_reload) starts a second daemon with the new certificates on the
 * same listening socket and quiesces the old one, which serves its open
 * connections (SSE streams included) until they end; a reaper thread stops
 * it then. Abuse limits (connections, per address, per-actor streams) are
 * counted here and answered with one clear error; libmicrohttpd enforces
 * hard limits a margin above them, the idle timeout and the per-connection
 * memory (docs/security.md §7). */
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
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "node.h"
#include "sse.h"
#include "tls.h"

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
    cs_db *db;
    int status;
    char *res_body;
    size_t res_len;
    char ctype[96];
    hdr *headers;
    bool responded;
    sse_client *sse;
    bool stream_slot; /* holds one of the actor's --sse-max-per-actor slots */
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
#define IP_BUCKETS 256

typedef struct srv srv;

/* One MHD daemon on the shared listen socket. Normally there is one; a TLS
 * reload starts a new one with the new certificates and retires the old
 * one, which keeps serving its open connections (streams included) until
 * they end. */
struct srv {
    cs_http *h;
    struct MHD_Daemon *d;
    cs_tls *tls;          /* owned; NULL: plain HTTP */
    _Atomic int conns;    /* open connections of this daemon */
    unsigned gen;
    srv *next;            /* in h->retired */
};

/* Per-connection state (MHD's socket context). */
typedef struct conn_info {
    srv *srv;
    uint32_t ip;          /* IPv4, network order; 0 unknown */
    bool ip_counted;
    bool over_total, over_ip;
    bool tls_setup_failed;
    bool peer_ok;         /* client certificate verified (mutual TLS) */
    unsigned requests;
} conn_info;

typedef struct ip_count {
    uint32_t ip;
    unsigned n;
    struct ip_count *next;
} ip_count;

typedef struct actor_streams {
    char actor_id[129];
    unsigned n;
    struct actor_streams *next;
} actor_streams;

/* A stream response's MHD callback context: gives the actor's slot back
 * when MHD releases the response. */
typedef struct stream_ref {
    cs_http *h;
    sse_client *c;
    char actor_id[129];
} stream_ref;

struct cs_http {
    cs_node *node;
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
    /* daemons (srv_mu) */
    pthread_mutex_t srv_mu;
    pthread_cond_t reaper_cv;
    srv *cur, *retired;
    unsigned gen;
    pthread_t reaper;
    bool reaper_on, reaper_stop;
    /* configuration */
    const char *tls_cert, *tls_key, *tls_ca; /* borrowed; NULL: plain HTTP */
    unsigned io_threads, max_conns, max_per_ip, timeout_s, sse_max_per_actor;
    size_t mem_limit;
    /* abuse limits (lim_mu) */
    pthread_mutex_t lim_mu;
    ip_count *ips[IP_BUCKETS];
    actor_streams *streams;
    _Atomic int n_conns;
    _Atomic uint64_t n_refused_conns, n_refused_ip, n_refused_streams,
        n_refused_tls, n_tls_incomplete, n_reloads, n_reload_failures;
    _Atomic int64_t last_limit_log_us;
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
cs_db *
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

/* ---- abuse limits: streams per actor, connections per address ---- */

/* Takes one of the actor's stream slots; false (and the count in *open)
 * when the actor already holds --sse-max-per-actor streams. */
static bool
stream_slot_take(cs_http *h, const char *actor_id, unsigned *open)
{
    actor_streams *a;
    bool ok = false;
    pthread_mutex_lock(&h->lim_mu);
    for (a = h->streams; a != NULL; a = a->next)
        if (strcmp(a->actor_id, actor_id) == 0)
            break;
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL)
            goto out;
        snprintf(a->actor_id, sizeof(a->actor_id), "%s", actor_id);
        a->next = h->streams;
        h->streams = a;
    }
    *open = a->n;
    if (a->n < h->sse_max_per_actor) {
        a->n++;
        ok = true;
    }
out:
    pthread_mutex_unlock(&h->lim_mu);
    return ok;
}

static void
stream_slot_give(cs_http *h, const char *actor_id)
{
    pthread_mutex_lock(&h->lim_mu);
    for (actor_streams **pp = &h->streams; *pp != NULL; pp = &(*pp)->next) {
        actor_streams *a = *pp;
        if (strcmp(a->actor_id, actor_id) != 0)
            continue;
        if (a->n > 0)
            a->n--;
        if (a->n == 0) {
            *pp = a->next;
            free(a);
        }
        break;
    }
    pthread_mutex_unlock(&h->lim_mu);
}

/* Count of open connections from ip after adding delta (+1 / -1). */
static unsigned
ip_add(cs_http *h, uint32_t ip, int delta)
{
    ip_count **pp, *e;
    unsigned n = 0;
    pthread_mutex_lock(&h->lim_mu);
    pp = &h->ips[(ip ^ (ip >> 8) ^ (ip >> 16) ^ (ip >> 24)) % IP_BUCKETS];
    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->ip == ip)
            break;
    e = *pp;
    if (e == NULL && delta > 0) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            e->ip = ip;
            e->next = NULL;
            *pp = e;
        }
    }
    if (e != NULL) {
        if (delta > 0)
            e->n++;
        else if (e->n > 0)
            e->n--;
        n = e->n;
        if (e->n == 0) {
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&h->lim_mu);
    return n;
}

/* At most one limit log line per second (a flood must not flood the log). */
static bool
limit_log_ok(cs_http *h)
{
    int64_t now = cs_now_us(), last = atomic_load(&h->last_limit_log_us);
    return now - last >= 1000000 &&
           atomic_compare_exchange_strong(&h->last_limit_log_us, &last, now);
}

void
cs_res_sse(cs_req *r, sse_client *c)
{
    cs_http *h = r->http;
    unsigned open = 0;
    if (r->responded) {
        sse_client_free(c);
        return;
    }
    if (h->sse_max_per_actor > 0 && r->has_actor) {
        if (!stream_slot_take(h, r->actor.actor_id, &open)) {
            sse_client_free(c);
            atomic_fetch_add(&h->n_refused_streams, 1);
            if (limit_log_ok(h))
                cs_log(CS_LOG_NOTICE, "HTTP-LIMIT",
                       "actor=%s refused a stream: %u open streams "
                       "(--sse-max-per-actor %u)",
                       r->actor.actor_id, open, h->sse_max_per_actor);
            cs_res_header(r, "Retry-After", "5");
            cs_res_error_x(r, 429, "too_many_streams",
                           json_pack("{s:i}", "limit",
                                     (int)h->sse_max_per_actor),
                           "actor '%s' already has %u open streams (limit "
                           "%u per actor, --sse-max-per-actor); close one "
                           "before opening another",
                           r->actor.actor_id, open, h->sse_max_per_actor);
            return;
        }
        r->stream_slot = true;
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
        if (rv == CS_EDB) {
            /* the store could not answer: not the caller's fault */
            cs_res_error(r, 503, "unavailable",
                         "cannot check the token now (storage error); retry");
            return;
        }
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
    cs_db *db = NULL;
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

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ref *s = cls;
    return sse_client_read(s->c, pos, buf, max);
}

static void
stream_release(void *cls)
{
    stream_ref *s = cls;
    sse_client_release(s->c);
    if (s->actor_id[0] != '\0')
        stream_slot_give(s->h, s->actor_id);
    free(s);
}

static enum MHD_Result
queue_response(cs_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (r->sse != NULL) {
        sse_client *c = r->sse;
        stream_ref *s = calloc(1, sizeof(*s));
        if (s == NULL)
            return MHD_NO; /* req_free frees the client and the slot */
        r->sse = NULL;
        s->h = r->http;
        s->c = c;
        if (r->stream_slot) {
            snprintf(s->actor_id, sizeof(s->actor_id), "%s",
                     r->actor.actor_id);
            r->stream_slot = false; /* now owned by s */
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024,
                                                 stream_read, s,
                                                 stream_release);
        if (resp == NULL) {
            sse_client_free(c);
            if (s->actor_id[0] != '\0')
                stream_slot_give(s->h, s->actor_id);
            free(s);
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
    if (r->stream_slot)
        stream_slot_give(r->http, r->actor.actor_id);
    free(r);
}

static conn_info *
conn_ci(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *inf =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return inf != NULL ? inf->socket_context : NULL;
}

static void
ip_text(uint32_t ip, char *buf, size_t n)
{
    struct in_addr a;
    a.s_addr = ip;
    if (inet_ntop(AF_INET, &a, buf, (socklen_t)n) == NULL)
        snprintf(buf, n, "?");
}

/* Mutual TLS, defence in depth: the handshake already required and
 * verified the client certificate (cs_tls_session_setup); check the
 * established session once more before reading anything of the request. */
static bool
peer_allowed(cs_http *h, struct MHD_Connection *c, conn_info *ci)
{
    const union MHD_ConnectionInfo *inf;
    char why[200] = "", subject[256] = "", ip[INET_ADDRSTRLEN];
    if (ci->srv->tls == NULL || cs_tls_ca_pem(ci->srv->tls) == NULL ||
        ci->peer_ok)
        return true;
    inf = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci->tls_setup_failed && inf != NULL &&
        cs_tls_peer_verified(inf->tls_session, why, sizeof(why), subject,
                             sizeof(subject))) {
        ci->peer_ok = true;
        ip_text(ci->ip, ip, sizeof(ip));
        cs_log(CS_LOG_DEBUG, "TLS-PEER", "peer=%s client_cert=\"%s\"", ip,
               subject);
        return true;
    }
    atomic_fetch_add(&h->n_refused_tls, 1);
    if (limit_log_ok(h)) {
        ip_text(ci->ip, ip, sizeof(ip));
        cs_log(CS_LOG_WARN, "TLS-REFUSED",
               "peer=%s refused: client certificate %s", ip,
               why[0] ? why : "missing");
    }
    return false;
}

static void
on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
        enum MHD_ConnectionNotificationCode code)
{
    srv *s = cls;
    cs_http *h = s->h;
    conn_info *ci;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *inf;
        int total;
        atomic_fetch_add(&s->conns, 1);
        total = atomic_fetch_add(&h->n_conns, 1) + 1;
        ci = calloc(1, sizeof(*ci));
        *socket_context = ci;
        if (ci == NULL)
            return; /* on_request refuses connections without one */
        ci->srv = s;
        inf = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (inf != NULL && inf->client_addr != NULL &&
            inf->client_addr->sa_family == AF_INET) {
            struct sockaddr_in sin;
            memcpy(&sin, inf->client_addr, sizeof(sin));
            ci->ip = sin.sin_addr.s_addr;
        }
        ci->over_total = h->max_conns > 0 && (unsigned)total > h->max_conns;
        if (h->max_per_ip > 0 && ci->ip != 0) {
            ci->ip_counted = true;
            ci->over_ip = ip_add(h, ci->ip, +1) > h->max_per_ip;
        }
        if (s->tls != NULL && cs_tls_ca_pem(s->tls) != NULL) {
            inf = MHD_get_connection_info(c,
                                          MHD_CONNECTION_INFO_GNUTLS_SESSION);
            ci->tls_setup_failed =
                inf == NULL || !cs_tls_session_setup(inf->tls_session);
        }
        return;
    }
    ci = *socket_context;
    *socket_context = NULL;
    if (ci != NULL && ci->requests == 0 && !ci->peer_ok && s->tls != NULL &&
        cs_tls_ca_pem(s->tls) != NULL) {
        /* closed before any request: was it refused at the handshake? */
        const union MHD_ConnectionInfo *inf =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        char why[200], ip[INET_ADDRSTRLEN];
        int refused = inf != NULL ? cs_tls_handshake_refused(
                                        inf->tls_session, why, sizeof(why))
                                  : 0;
        if (refused != 0) {
            if (refused > 0)
                atomic_fetch_add(&h->n_refused_tls, 1);
            else
                atomic_fetch_add(&h->n_tls_incomplete, 1);
            if (limit_log_ok(h)) {
                ip_text(ci->ip, ip, sizeof(ip));
                cs_log(refused > 0 ? CS_LOG_WARN : CS_LOG_INFO,
                       "TLS-REFUSED", "peer=%s refused at the TLS "
                       "handshake: %s", ip, why);
            }
        }
    }
    atomic_fetch_sub(&s->conns, 1);
    atomic_fetch_sub(&h->n_conns, 1);
    if (ci != NULL && ci->ip_counted)
        ip_add(h, ci->ip, -1);
    free(ci);
}

/* Connections over --max-connections / --max-connections-per-ip get one
 * clear error, then the connection is closed. */
static bool
over_limits(cs_http *h, conn_info *ci, cs_req *r)
{
    char ip[INET_ADDRSTRLEN];
    if (!ci->over_total && !ci->over_ip)
        return false;
    ip_text(ci->ip, ip, sizeof(ip));
    cs_res_header(r, "Connection", "close");
    cs_res_header(r, "Retry-After", "1");
    if (ci->over_total) {
        atomic_fetch_add(&h->n_refused_conns, 1);
        if (limit_log_ok(h))
            cs_log(CS_LOG_NOTICE, "HTTP-LIMIT",
                   "peer=%s refused: %d open connections "
                   "(--max-connections %u)",
                   ip, atomic_load(&h->n_conns), h->max_conns);
        cs_res_error(r, 503, "too_many_connections",
                     "the node has reached its connection limit (%u, "
                     "--max-connections); retry later",
                     h->max_conns);
    } else {
        atomic_fetch_add(&h->n_refused_ip, 1);
        if (limit_log_ok(h))
            cs_log(CS_LOG_NOTICE, "HTTP-LIMIT",
                   "peer=%s refused: over %u connections from one address "
                   "(--max-connections-per-ip)",
                   ip, h->max_per_ip);
        cs_res_error(r, 429, "too_many_connections",
                     "too many open connections from %s (limit %u, "
                     "--max-connections-per-ip); close some and retry",
                     ip, h->max_per_ip);
    }
    return true;
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
        conn_info *ci = conn_ci(c);
        if (ci == NULL || !peer_allowed(h, c, ci))
            return MHD_NO; /* closes the connection, nothing is read */
        ci->requests++;
        r = req_new(h, c, url, method);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        if (over_limits(h, ci, r)) {
            r->state = ST_DONE;
            return queue_response(r);
        }
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

/* MHD's option items take `void *` for strings it only reads. */
static void *
unconst(const void *p)
{
    union {
        const void *c;
        void *v;
    } u;
    u.c = p;
    return u.v;
}

/* Starts one daemon on h->lfd, with tls (may be NULL; owned by the srv
 * from now on, also on failure). */
static cs_err
srv_start(cs_http *h, cs_tls *tls, srv **out, cs_errbuf *eb)
{
    struct MHD_OptionItem tls_ops[6];
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    unsigned hard_total, hard_ip;
    int k = 0;
    srv *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        cs_tls_free(tls);
        return CS_ENOMEM;
    }
    s->h = h;
    s->tls = tls;
    if (tls != NULL) {
        /* MHD copies these into its GnuTLS credentials at start. */
        flags |= MHD_USE_TLS;
        tls_ops[k++] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_MEM_KEY, 0, unconst(cs_tls_key_pem(tls))};
        tls_ops[k++] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_MEM_CERT, 0,
            unconst(cs_tls_cert_pem(tls))};
        tls_ops[k++] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_PRIORITIES, 0,
            unconst(cs_tls_priorities())};
        if (cs_tls_ca_pem(tls) != NULL)
            tls_ops[k++] = (struct MHD_OptionItem){
                MHD_OPTION_HTTPS_MEM_TRUST, 0,
                unconst(cs_tls_ca_pem(tls))};
    }
    tls_ops[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    /* MHD's own limits sit above ours, so that up to the margin a
     * connection over --max-connections(-per-ip) still gets a clear HTTP
     * error; beyond it MHD closes new connections at once. */
    hard_total = h->max_conns + (h->max_conns / 8 > 16 ? h->max_conns / 8 : 16);
    hard_ip = h->max_per_ip == 0
                  ? 0
                  : h->max_per_ip + (h->max_per_ip / 4 > 4 ? h->max_per_ip / 4
                                                           : 4);
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, h, MHD_OPTION_LISTEN_SOCKET, h->lfd,
        MHD_OPTION_THREAD_POOL_SIZE, h->io_threads,
        MHD_OPTION_CONNECTION_LIMIT, hard_total,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, hard_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, h->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->mem_limit,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_conn, s, MHD_OPTION_ARRAY, tls_ops,
        MHD_OPTION_END);
    if (s->d == NULL) {
        cs_tls_free(s->tls);
        free(s);
        return cs_errf(eb, CS_EIO, "cannot start the HTTP%s server on %s",
                       tls != NULL ? "S" : "", h->bound);
    }
    s->gen = ++h->gen;
    *out = s;
    return CS_OK;
}

static void
srv_free(srv *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->d);
    cs_tls_free(s->tls);
    free(s);
}

/* Stops retired daemons whose last connection has ended. */
static void *
reaper_main(void *arg)
{
    cs_http *h = arg;
    pthread_mutex_lock(&h->srv_mu);
    while (!h->reaper_stop) {
        struct timespec ts;
        srv *done = NULL;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->reaper_cv, &h->srv_mu, &ts);
        for (srv **pp = &h->retired; *pp != NULL;) {
            if (atomic_load(&(*pp)->conns) == 0) {
                srv *s = *pp;
                *pp = s->next;
                s->next = done;
                done = s;
                continue;
            }
            pp = &(*pp)->next;
        }
        pthread_mutex_unlock(&h->srv_mu);
        while (done != NULL) {
            srv *next = done->next;
            cs_log(CS_LOG_INFO, "TLS-RELOAD",
                   "previous server (generation %u) stopped: its last "
                   "connection ended",
                   done->gen);
            srv_free(done);
            done = next;
        }
        pthread_mutex_lock(&h->srv_mu);
    }
    pthread_mutex_unlock(&h->srv_mu);
    return NULL;
}

cs_err
cs_http_start(cs_node *n, const cs_http_opts *o, cs_http **out, cs_errbuf *eb)
{
    const cs_route *all[] = {cs_routes_artifacts, cs_routes_suggestions,
                             cs_routes_actors,    cs_routes_misc,
                             cs_routes_feed,      cs_routes_ops,
                             cs_routes_federation, cs_routes_forks,
                             cs_routes_ui,        cs_routes_residency};
    cs_tls *tls = NULL;
    cs_err rv;
    cs_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return CS_ENOMEM;
    h->node = n;
    h->max_body = o->max_body;
    h->lfd = -1;
    h->tls_cert = o->tls_cert;
    h->tls_key = o->tls_key;
    h->tls_ca = o->tls_client_ca;
    h->io_threads = o->io_threads ? o->io_threads : 2;
    h->max_conns = o->max_conns ? o->max_conns : 4096;
    h->max_per_ip = o->max_conns_per_ip;
    h->timeout_s = o->request_timeout_s ? o->request_timeout_s : 60;
    h->mem_limit = o->conn_memory_limit ? o->conn_memory_limit : 160 * 1024;
    h->sse_max_per_actor = o->sse_max_per_actor;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_mutex_init(&h->srv_mu, NULL);
    pthread_cond_init(&h->reaper_cv, NULL);
    pthread_mutex_init(&h->lim_mu, NULL);
    for (size_t t = 0; t < sizeof(all) / sizeof(all[0]); t++)
        for (const cs_route *rt = all[t]; rt->method != NULL; rt++)
            if (h->n_routes < MAX_ROUTES)
                h->routes[h->n_routes++] = rt;

    if (h->tls_cert != NULL || h->tls_key != NULL || h->tls_ca != NULL) {
        if (h->tls_cert == NULL || h->tls_key == NULL) {
            cs_errf(eb, CS_EINVAL, "--tls-cert and --tls-key go together "
                                   "(--tls-client-ca needs both)");
            goto fail;
        }
        if (cs_tls_load(h->tls_cert, h->tls_key, h->tls_ca, &tls, eb) !=
            CS_OK)
            goto fail;
    }
    h->lfd = listen_socket(o->listen, h->bound, sizeof(h->bound), eb);
    if (h->lfd < 0)
        goto fail;
    h->n_workers = o->workers ? o->workers : 4;
    h->workers = calloc(h->n_workers, sizeof(pthread_t));
    if (h->workers == NULL)
        goto fail;
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_create(&h->workers[i], NULL, worker_main, h);

    rv = srv_start(h, tls, &h->cur, eb);
    tls = NULL; /* owned by srv_start */
    if (rv != CS_OK)
        goto fail;
    if (h->cur->tls != NULL)
        cs_log(CS_LOG_NOTICE, "TLS-LOAD", "https on %s: %s", h->bound,
               cs_tls_describe(h->cur->tls));
    *out = h;
    return CS_OK;
fail:
    cs_tls_free(tls);
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

bool
cs_http_is_tls(const cs_http *h)
{
    return h->tls_cert != NULL;
}

cs_err
cs_http_reload(cs_http *h, cs_errbuf *eb)
{
    cs_tls *tls = NULL;
    srv *fresh = NULL, *old;
    cs_err rv;
    if (h->tls_cert == NULL) {
        cs_log(CS_LOG_NOTICE, "TLS-RELOAD",
               "SIGHUP: nothing to reload (no --tls-cert)");
        return CS_OK;
    }
    /* 1. the new material must load and check, else the old one stays */
    rv = cs_tls_load(h->tls_cert, h->tls_key, h->tls_ca, &tls, eb);
    if (rv != CS_OK)
        goto fail;
    pthread_mutex_lock(&h->srv_mu);
    if (h->reaper_stop) {
        pthread_mutex_unlock(&h->srv_mu);
        cs_tls_free(tls);
        return CS_ESHUTDOWN;
    }
    /* 2. a new daemon on the same listening socket; both accept for a
     * moment, which is harmless */
    rv = srv_start(h, tls, &fresh, eb);
    if (rv != CS_OK) {
        pthread_mutex_unlock(&h->srv_mu);
        goto fail;
    }
    /* 3. the old one stops accepting and keeps its open connections (and
     * streams) until they end; the reaper stops it then */
    old = h->cur;
    h->cur = fresh;
    (void)MHD_quiesce_daemon(old->d); /* the socket stays ours (h->lfd) */
    old->next = h->retired;
    h->retired = old;
    if (!h->reaper_on &&
        pthread_create(&h->reaper, NULL, reaper_main, h) == 0)
        h->reaper_on = true;
    pthread_mutex_unlock(&h->srv_mu);
    atomic_fetch_add(&h->n_reloads, 1);
    cs_log(CS_LOG_NOTICE, "TLS-RELOAD",
           "certificates reloaded (generation %u): %s; %d connections stay "
           "on the previous server until they end",
           fresh->gen, cs_tls_describe(fresh->tls), atomic_load(&old->conns));
    return CS_OK;
fail:
    atomic_fetch_add(&h->n_reload_failures, 1);
    cs_log(CS_LOG_ERROR, "TLS-RELOAD",
           "reload failed, still serving the previous certificates: %s",
           eb != NULL ? eb->msg : cs_strerror(rv));
    return rv;
}

const char *
cs_http_bound(const cs_http *h)
{
    return h->bound;
}

void
cs_http_stop(cs_http *h)
{
    int64_t deadline;
    srv *cur, *ret;
    if (h == NULL)
        return;
    /* 1. stop accepting new connections (every daemon) */
    pthread_mutex_lock(&h->srv_mu);
    h->reaper_stop = true;
    pthread_cond_broadcast(&h->reaper_cv);
    pthread_mutex_unlock(&h->srv_mu);
    if (h->reaper_on)
        pthread_join(h->reaper, NULL);
    pthread_mutex_lock(&h->srv_mu);
    cur = h->cur;
    ret = h->retired;
    h->cur = NULL;
    h->retired = NULL;
    pthread_mutex_unlock(&h->srv_mu);
    (void)MHD_quiesce_daemon(cur->d); /* the socket is closed below */
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
    while (ret != NULL) {
        srv *next = ret->next;
        srv_free(ret);
        ret = next;
    }
    srv_free(cur);
    if (h->lfd >= 0)
        close(h->lfd);
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    free(h->workers);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->srv_mu);
    pthread_cond_destroy(&h->reaper_cv);
    for (int i = 0; i < IP_BUCKETS; i++)
        while (h->ips[i] != NULL) {
            ip_count *next = h->ips[i]->next;
            free(h->ips[i]);
            h->ips[i] = next;
        }
    while (h->streams != NULL) {
        actor_streams *next = h->streams->next;
        free(h->streams);
        h->streams = next;
    }
    pthread_mutex_destroy(&h->lim_mu);
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
    cs_buf_appendf(
        buf, len, cap,
        "# HELP ctxsync_http_connections Open HTTP connections.\n"
        "# TYPE ctxsync_http_connections gauge\nctxsync_http_connections %d\n"
        "# HELP ctxsync_http_refused_total Requests and connections refused "
        "by an abuse limit or mutual TLS.\n"
        "# TYPE ctxsync_http_refused_total counter\n"
        "ctxsync_http_refused_total{reason=\"max_connections\"} %llu\n"
        "ctxsync_http_refused_total{reason=\"max_connections_per_ip\"} "
        "%llu\n"
        "ctxsync_http_refused_total{reason=\"sse_max_per_actor\"} %llu\n"
        "ctxsync_http_refused_total{reason=\"client_certificate\"} %llu\n"
        "# HELP ctxsync_tls_handshakes_incomplete_total TLS connections "
        "closed before the handshake completed (includes missing client "
        "certificates and plain HTTP).\n"
        "# TYPE ctxsync_tls_handshakes_incomplete_total counter\n"
        "ctxsync_tls_handshakes_incomplete_total %llu\n"
        "# TYPE ctxsync_tls_reloads_total counter\n"
        "ctxsync_tls_reloads_total{result=\"ok\"} %llu\n"
        "ctxsync_tls_reloads_total{result=\"failed\"} %llu\n",
        atomic_load(&h->n_conns),
        (unsigned long long)atomic_load(&h->n_refused_conns),
        (unsigned long long)atomic_load(&h->n_refused_ip),
        (unsigned long long)atomic_load(&h->n_refused_streams),
        (unsigned long long)atomic_load(&h->n_refused_tls),
        (unsigned long long)atomic_load(&h->n_tls_incomplete),
        (unsigned long long)atomic_load(&h->n_reloads),
        (unsigned long long)atomic_load(&h->n_reload_failures));
}
