/* SPDX-License-Identifier: MIT
 * status.c: GET /status and GET /metrics of ctxsync-bridge (status.h). */
#include "status.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cs_log.h"

struct br_status {
    struct MHD_Daemon *d;
    br_link *const *links;
    size_t nlinks;
    int port;
};

json_t *
br_status_json(br_link *const *links, size_t nlinks)
{
    json_t *arr = json_array(), *root;
    size_t i;

    if (arr == NULL)
        return NULL;
    for (i = 0; i < nlinks; i++) {
        br_link_stats st;
        br_link_snapshot(links[i], &st);
        json_array_append_new(arr, br_link_stats_json(&st));
    }
    root = json_pack("{s:o}", "links", arr);
    return root;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t ncap = b->cap ? b->cap * 2 : 4096;
            char *np;
            while (ncap < b->len + (size_t)n + 1)
                ncap *= 2;
            np = realloc(b->p, ncap);
            if (np == NULL) {
                b->oom = 1;
                return;
            }
            b->p = np;
            b->cap = ncap;
        }
    }
}

char *
br_metrics_text(br_link *const *links, size_t nlinks, size_t *len)
{
    static const char *const statuses[] = {"applied", "duplicate", "deferred", "fork",
                                           "rejected"};
    br_link_stats *st = calloc(nlinks ? nlinks : 1, sizeof(*st));
    sbuf b = {NULL, 0, 0, 0};
    size_t i;
    int s;

    if (st == NULL)
        return NULL;
    for (i = 0; i < nlinks; i++)
        br_link_snapshot(links[i], &st[i]);

    sb_printf(&b, "# HELP ctxsync_bridge_link_state 1 for the link's current state, "
                  "0 for the others.\n# TYPE ctxsync_bridge_link_state gauge\n");
    for (i = 0; i < nlinks; i++)
        for (s = 0; s < BR_ST_COUNT; s++)
            sb_printf(&b, "ctxsync_bridge_link_state{link=\"%s\",state=\"%s\"} %d\n",
                      st[i].name, br_state_name((br_state)s), st[i].state == (br_state)s);

#define GAUGE(metric, help, fmt, expr)                                              \
    do {                                                                            \
        sb_printf(&b, "# HELP " metric " " help "\n# TYPE " metric " gauge\n");     \
        for (i = 0; i < nlinks; i++)                                                \
            sb_printf(&b, metric "{link=\"%s\"} " fmt "\n", st[i].name, expr);      \
    } while (0)
    GAUGE("ctxsync_bridge_link_applied_seq",
          "Source seq up to which the target acknowledged everything (checkpoint).",
          "%lld", (long long)st[i].applied_seq);
    GAUGE("ctxsync_bridge_link_source_head_seq", "Last known source feed head.", "%lld",
          (long long)st[i].src_head);
    GAUGE("ctxsync_bridge_link_lag_events", "Source head minus applied_seq.", "%lld",
          (long long)st[i].lag_events);
    GAUGE("ctxsync_bridge_link_lag_seconds",
          "Age of the oldest event received but not yet answered (0 when caught up).",
          "%.3f", st[i].lag_seconds);
    GAUGE("ctxsync_bridge_link_pending_payload_bytes",
          "Payload bytes held in batches not yet answered.", "%lld",
          (long long)st[i].pending_payload_bytes);
#undef GAUGE

    sb_printf(&b, "# HELP ctxsync_bridge_link_events_total Events answered by the "
                  "target, by ingest status.\n# TYPE ctxsync_bridge_link_events_total "
                  "counter\n");
    for (i = 0; i < nlinks; i++) {
        long long v[5] = {st[i].applied, st[i].duplicate, st[i].deferred, st[i].fork,
                          st[i].rejected};
        for (s = 0; s < 5; s++)
            sb_printf(&b, "ctxsync_bridge_link_events_total{link=\"%s\",status=\"%s\"} %lld\n",
                      st[i].name, statuses[s], v[s]);
    }
    sb_printf(&b, "# HELP ctxsync_bridge_link_reconnects_total Sessions ended by a "
                  "transient error (each followed by a backoff).\n"
                  "# TYPE ctxsync_bridge_link_reconnects_total counter\n");
    for (i = 0; i < nlinks; i++)
        sb_printf(&b, "ctxsync_bridge_link_reconnects_total{link=\"%s\"} %lld\n",
                  st[i].name, (long long)st[i].reconnects);
    sb_printf(&b, "# HELP ctxsync_bridge_link_forks_flagged_total Events the target "
                  "classified as fork.\n# TYPE ctxsync_bridge_link_forks_flagged_total "
                  "counter\n");
    for (i = 0; i < nlinks; i++)
        sb_printf(&b, "ctxsync_bridge_link_forks_flagged_total{link=\"%s\"} %lld\n",
                  st[i].name, (long long)st[i].fork);
    sb_printf(&b, "# HELP ctxsync_bridge_link_withheld_payloads_total Payloads the "
                  "bridge held back (residency: home-only outside its region).\n"
                  "# TYPE ctxsync_bridge_link_withheld_payloads_total counter\n");
    for (i = 0; i < nlinks; i++)
        sb_printf(&b, "ctxsync_bridge_link_withheld_payloads_total{link=\"%s\"} %lld\n",
                  st[i].name, (long long)st[i].withheld_payloads);
    free(st);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned code, const char *ctype, char *body,
      size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static char *
err_body(const char *code, const char *msg, size_t *len)
{
    json_t *j = json_pack("{s:s,s:s}", "error", code, "message", msg);
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s != NULL)
        *len = strlen(s);
    return s;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_size,
        void **con_cls)
{
    br_status *st = cls;
    char *body = NULL;
    size_t len = 0;
    (void)version;
    (void)upload_data;

    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size != 0) { /* ignore any body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/status") != 0 && strcmp(url, "/metrics") != 0) {
        body = err_body("not_found", "try GET /status or GET /metrics", &len);
        return body ? reply(c, MHD_HTTP_NOT_FOUND, "application/json", body, len) : MHD_NO;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        struct MHD_Response *r;
        enum MHD_Result ret;
        body = err_body("method_not_allowed", "only GET", &len);
        if (body == NULL)
            return MHD_NO;
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (r == NULL) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Allow", "GET, HEAD");
        MHD_add_response_header(r, "Content-Type", "application/json");
        ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/status") == 0) {
        json_t *j = br_status_json(st->links, st->nlinks);
        body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (body == NULL)
            return MHD_NO;
        len = strlen(body);
        return reply(c, MHD_HTTP_OK, "application/json", body, len);
    }
    body = br_metrics_text(st->links, st->nlinks, &len);
    if (body == NULL)
        return MHD_NO;
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

cs_err
br_status_start(const char *hostport, br_link *const *links, size_t nlinks,
                br_status **out, cs_errbuf *eb)
{
    br_status *st = NULL;
    struct addrinfo hints, *ai = NULL;
    char host[256];
    const char *colon = strrchr(hostport, ':');
    size_t hl;
    int gai;
    cs_err rc = CS_OK;

    if (colon == NULL || colon == hostport) {
        rc = cs_errf(eb, CS_EINVAL, "status address must be HOST:PORT");
        goto out;
    }
    hl = (size_t)(colon - hostport);
    if (hostport[0] == '[' && hl >= 2 && hostport[hl - 1] == ']') {
        hostport++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        rc = cs_errf(eb, CS_EINVAL, "status host too long");
        goto out;
    }
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "status address %.200s: %s", hostport,
                     gai_strerror(gai));
        goto out;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    st->links = links;
    st->nlinks = nlinks;
    st->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
            (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handler, st, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)64, MHD_OPTION_END);
    if (st->d == NULL) {
        rc = cs_errf(eb, CS_EIO, "cannot listen on %.200s (address in use?)", colon == NULL ? "" : hostport);
        goto out;
    }
    {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(st->d, MHD_DAEMON_INFO_BIND_PORT);
        st->port = di != NULL ? di->port : 0;
    }
    *out = st;
    st = NULL;
out:
    if (ai != NULL)
        freeaddrinfo(ai);
    br_status_stop(st);
    return rc;
}

int
br_status_port(const br_status *s)
{
    return s->port;
}

void
br_status_stop(br_status *s)
{
    if (s == NULL)
        return;
    if (s->d != NULL)
        MHD_stop_daemon(s->d);
    free(s);
}
