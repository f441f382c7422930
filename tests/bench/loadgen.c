/* SPDX-License-Identifier: MIT
 * loadgen.c: HTTP/1.1 load generator for the benchmarks. One thread, epoll,
 * N keep-alive connections, one request in flight per connection (no
 * pipelining), request bytes precomputed per URI. Parses the status line,
 * Content-Length and chunked bodies. Prints one JSON line on stdout.
 *
 *   loadgen --addr HOST:PORT[,HOST:PORT...] --mode MODE [options]
 *   several addresses (e.g. node processes sharing one PostgreSQL
 *   database): connection i goes to address i % count, so the connections
 *   are spread round-robin; the report then adds "per_addr" (responses
 *   completed in the measured window per address, in --addr order).
 *   modes: create  POST /artifacts for each of --uris URIs (one request each)
 *          put     PUT /artifacts?uri= round-robin over --uris URIs
 *          get     GET /artifacts?uri= round-robin over --uris URIs
 *          path    GET --path (e.g. the libmicrohttpd floor)
 *          feed    page GET --path (default /changes) ?since=S&limit=L on one
 *                  connection until has_more is false; reports the total time
 *   options: --conns N (64) --duration S | --requests N --warmup S (0)
 *            --rate R (requests/s, paced; 0 = as fast as possible)
 *            --token T --uris N (1000) --uri-prefix P (ctx://bench/load/a)
 *            --size BYTES (stored content size, 1024) --limit L (1000)
 *            --ack-log FILE (put/create: "version_id wall_us" per 2xx)
 *
 * Latency = time from writing the request to the end of its response, per
 * request (exact: every sample kept and sorted). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define RBUF_SIZE (64 * 1024)
#define CTR_DIGITS 16
#define MAX_CONNS 4096
#define VID_MAX 96
#define BODY_KEEP_SMALL 8192
#define BODY_KEEP_FEED (64u << 20)
#define MAX_ADDRS 16

typedef enum { M_CREATE, M_PUT, M_GET, M_PATH, M_FEED } lg_mode;

typedef struct req_tpl {
    char *buf;
    size_t len, ctr_off; /* ctr_off: 0 when no counter */
} req_tpl;

typedef struct conn {
    int fd;
    int ai; /* index into lg.addrs */
    bool connecting, busy;
    char *wbuf;
    size_t wlen, woff, wcap;
    char rbuf[RBUF_SIZE];
    size_t rlen;
    bc_hresp resp;
    int64_t t_send;
    char *body;
    size_t blen, bcap, bkeep;
} conn;

typedef struct ack {
    char vid[VID_MAX];
    int64_t wall_us;
} ack;

typedef struct lg {
    /* config */
    lg_mode mode;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addrlens[MAX_ADDRS];
    int naddrs;
    int nconns;
    double duration_s, warmup_s, rate;
    long long requests;
    const char *token, *uri_prefix, *path, *ack_log;
    int uris;
    size_t size;
    int limit;
    /* state */
    int ep;
    conn *conns;
    req_tpl *tpl;
    int ntpl;
    uint64_t ctr_base;
    long long issued, completed, measured, conn_errors, bad;
    long long status[600];
    long long per_addr[MAX_ADDRS]; /* measured responses per address */
    int64_t t0, t_measure, t_end, t_last_done, t_first_send;
    bool stop_issuing;
    bc_lat lat;
    ack *acks;
    size_t nacks, acap;
    /* feed */
    int64_t feed_since;
    long long feed_events, feed_pages;
    bool feed_more;
} lg;

static void
usage(void)
{
    fprintf(stderr,
            "usage: loadgen --addr HOST:PORT[,HOST:PORT...]\n"
            "  --mode create|put|get|path|feed\n"
            "  [--conns N] [--duration S | --requests N] [--warmup S]\n"
            "  [--rate R] [--token T] [--uris N] [--uri-prefix P]\n"
            "  [--size BYTES] [--path P] [--limit L] [--ack-log FILE]\n");
}

/* ---- request building ---- */

static int append(char *dst, size_t cap, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
append(char *dst, size_t cap, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(dst + *off, cap - *off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *off)
        return -1;
    *off += (size_t)n;
    return 0;
}

/* Builds the JSON body {"uri":...,"content":{"n":"<ctr>","pad":"..."}}; the
 * stored (canonical) content is exactly `size` bytes when size >= 40. */
static int
build_body(const lg *g, const char *uri, char *out, size_t cap, size_t *len,
           size_t *ctr_pos)
{
    /* canonical content: {"n":"DDDDDDDDDDDDDDDD","pad":"xxx"} */
    size_t fixed = strlen("{\"n\":\"\",\"pad\":\"\"}") + CTR_DIGITS;
    size_t pad = g->size > fixed ? g->size - fixed : 1;
    size_t off = 0;
    int n;

    if (uri != NULL)
        n = snprintf(out, cap, "{\"uri\":\"%s\",\"content\":{\"n\":\"", uri);
    else
        n = snprintf(out, cap, "{\"content\":{\"n\":\"");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    off = (size_t)n;
    if (off + CTR_DIGITS + pad + 32 >= cap)
        return -1;
    *ctr_pos = off;
    memset(out + off, '0', CTR_DIGITS);
    off += CTR_DIGITS;
    memcpy(out + off, "\",\"pad\":\"", 9);
    off += 9;
    for (size_t i = 0; i < pad; i++)
        out[off++] = (char)('a' + (i % 26));
    memcpy(out + off, "\"}}", 3);
    off += 3;
    out[off] = '\0';
    *len = off;
    return 0;
}

static int
build_templates(lg *g)
{
    size_t cap = g->size + 8192;
    char *body = malloc(cap);
    char auth[4200] = "";
    int rv = -1;

    if (body == NULL)
        return -1;
    if (g->token != NULL && g->token[0] != '\0' &&
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
                 g->token) >= (int)sizeof(auth))
        goto out;

    g->ntpl = (g->mode == M_PATH || g->mode == M_FEED) ? 1 : g->uris;
    g->tpl = calloc((size_t)g->ntpl, sizeof(*g->tpl));
    if (g->tpl == NULL)
        goto out;
    for (int i = 0; i < g->ntpl; i++) {
        char uri[512], enc[1600], head[8192];
        size_t blen = 0, ctr = 0, hl = 0;
        req_tpl *t = &g->tpl[i];

        snprintf(uri, sizeof(uri), "%s%06d", g->uri_prefix, i);
        if (bc_pct_encode(uri, enc, sizeof(enc)) != 0)
            goto out;
        switch (g->mode) {
        case M_CREATE:
        case M_PUT:
            if (build_body(g, g->mode == M_CREATE ? uri : NULL, body, cap,
                           &blen, &ctr) != 0)
                goto out;
            if (g->mode == M_CREATE) {
                if (append(head, sizeof(head), &hl,
                           "POST /artifacts HTTP/1.1\r\n") != 0)
                    goto out;
            } else if (append(head, sizeof(head), &hl,
                              "PUT /artifacts?uri=%s HTTP/1.1\r\n", enc) != 0)
                goto out;
            if (append(head, sizeof(head), &hl,
                       "Host: 127.0.0.1\r\n%sContent-Type: "
                       "application/json\r\nContent-Length: %zu\r\n\r\n",
                       auth, blen) != 0)
                goto out;
            t->len = hl + blen;
            t->buf = malloc(t->len);
            if (t->buf == NULL)
                goto out;
            memcpy(t->buf, head, hl);
            memcpy(t->buf + hl, body, blen);
            t->ctr_off = hl + ctr;
            break;
        case M_GET:
        case M_PATH:
        case M_FEED:
            if (g->mode == M_GET) {
                if (append(head, sizeof(head), &hl,
                           "GET /artifacts?uri=%s HTTP/1.1\r\n", enc) != 0)
                    goto out;
            } else if (g->mode == M_PATH &&
                       append(head, sizeof(head), &hl,
                              "GET %s HTTP/1.1\r\n", g->path) != 0)
                goto out;
            /* feed: the request line is written per page */
            if (append(head, sizeof(head), &hl, "Host: 127.0.0.1\r\n%s\r\n",
                       auth) != 0)
                goto out;
            t->len = hl;
            t->buf = malloc(hl);
            if (t->buf == NULL)
                goto out;
            memcpy(t->buf, head, hl);
            break;
        }
    }
    rv = 0;
out:
    free(body);
    return rv;
}

/* ---- connections ---- */

static int
conn_open(lg *g, conn *c)
{
    struct epoll_event ev;

    c->fd = bc_connect_nb(&g->addrs[c->ai], g->addrlens[c->ai]);
    if (c->fd < 0)
        return -1;
    c->connecting = true;
    c->busy = false;
    c->rlen = c->wlen = c->woff = 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void
conn_close(lg *g, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void
set_out(lg *g, conn *c, bool want)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is pending; -1 on a socket error. */
static int
conn_flush(lg *g, conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out(g, c, true);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->woff += (size_t)n;
    }
    return 0;
}

static int
wbuf_reserve(conn *c, size_t need)
{
    if (need > c->wcap) {
        char *nb = realloc(c->wbuf, need);
        if (nb == NULL)
            return -1;
        c->wbuf = nb;
        c->wcap = need;
    }
    return 0;
}

static void
body_keep(void *ctx, const char *data, size_t len)
{
    conn *c = ctx;
    size_t room;

    if (c->blen >= c->bkeep)
        return;
    room = c->bkeep - c->blen;
    if (len > room)
        len = room;
    if (c->blen + len + 1 > c->bcap) {
        size_t nc = c->bcap ? c->bcap : 4096;
        char *nb;
        while (nc < c->blen + len + 1)
            nc *= 2;
        nb = realloc(c->body, nc);
        if (nb == NULL)
            return;
        c->body = nb;
        c->bcap = nc;
    }
    memcpy(c->body + c->blen, data, len);
    c->blen += len;
    c->body[c->blen] = '\0';
}

/* Prepares and writes the next request on c. */
static int
conn_send(lg *g, conn *c)
{
    long long k = g->issued;
    const req_tpl *t = &g->tpl[k % g->ntpl];

    if (g->mode == M_FEED) {
        char line[512];
        int n = snprintf(line, sizeof(line),
                         "GET %s?since=%lld&limit=%d HTTP/1.1\r\n", g->path,
                         (long long)g->feed_since, g->limit);
        if (n < 0 || (size_t)n >= sizeof(line) ||
            wbuf_reserve(c, (size_t)n + t->len) != 0)
            return -1;
        memcpy(c->wbuf, line, (size_t)n);
        memcpy(c->wbuf + n, t->buf, t->len);
        c->wlen = (size_t)n + t->len;
    } else {
        if (wbuf_reserve(c, t->len) != 0)
            return -1;
        memcpy(c->wbuf, t->buf, t->len);
        c->wlen = t->len;
        if (t->ctr_off != 0) {
            uint64_t v = g->ctr_base + (uint64_t)k;
            for (int i = CTR_DIGITS - 1; i >= 0; i--) {
                c->wbuf[t->ctr_off + (size_t)i] = (char)('0' + v % 10);
                v /= 10;
            }
        }
    }
    c->woff = 0;
    c->busy = true;
    c->blen = 0;
    c->bkeep = g->mode == M_FEED ? BODY_KEEP_FEED
               : g->ack_log != NULL ? BODY_KEEP_SMALL
                                    : 0;
    bc_hresp_reset(&c->resp);
    c->t_send = bc_mono_us();
    if (g->t_first_send == 0)
        g->t_first_send = c->t_send;
    g->issued++;
    return conn_flush(g, c);
}

static int
expected_status(lg_mode m)
{
    return m == M_CREATE ? 201 : 200;
}

static void
record_ack(lg *g, conn *c)
{
    ack *a;
    if (c->blen == 0)
        return;
    if (g->nacks == g->acap) {
        size_t nc = g->acap ? g->acap * 2 : 4096;
        ack *na = realloc(g->acks, nc * sizeof(*na));
        if (na == NULL)
            return;
        g->acks = na;
        g->acap = nc;
    }
    a = &g->acks[g->nacks];
    if (bc_json_str(c->body, c->blen, "version_id", a->vid, sizeof(a->vid)) ==
        0) {
        a->wall_us = bc_wall_us();
        g->nacks++;
    }
}

static void
on_complete(lg *g, conn *c)
{
    int64_t now = bc_mono_us();
    int st = c->resp.status;
    bool ok = st == expected_status(g->mode);

    c->busy = false;
    g->completed++;
    g->t_last_done = now;
    if (st >= 0 && st < 600)
        g->status[st]++;
    if (!ok)
        g->bad++;
    if (c->t_send >= g->t_measure &&
        (g->t_end == 0 || now <= g->t_end + 1000000)) {
        g->measured++;
        g->per_addr[c->ai]++;
        bc_lat_add(&g->lat, now - c->t_send);
    }
    if (ok && g->ack_log != NULL)
        record_ack(g, c);
    if (g->mode == M_FEED) {
        int64_t ns = 0, cnt = 0;
        const char *p = c->body;
        g->feed_pages++;
        if (!ok || bc_json_int(c->body, c->blen, "next_since", &ns) != 0) {
            g->feed_more = false;
            return;
        }
        /* count events: one "event_id" key per event */
        while (p != NULL && (p = strstr(p, "\"event_id\":")) != NULL) {
            cnt++;
            p += 11;
        }
        g->feed_events += cnt;
        g->feed_since = ns;
        g->feed_more = c->blen > 0 && strstr(c->body, "\"has_more\":true") !=
                                           NULL;
    }
}

/* Reads everything available; completes the response when whole. -1 when
 * the connection must be reopened. */
static int
conn_read(lg *g, conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
                         0);
        size_t used;
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->rlen += (size_t)n;
        if (!c->busy)
            return -1; /* unexpected bytes */
        used = bc_hresp_feed(&c->resp, c->rbuf, c->rlen, body_keep, c);
        if (used < c->rlen)
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        if (c->resp.state == BC_HP_ERROR)
            return -1;
        if (c->resp.state == BC_HP_DONE) {
            bool close_it = c->resp.conn_close;
            on_complete(g, c);
            if (close_it)
                return -1;
            if (c->rlen > 0)
                return -1; /* no pipelining: nothing may follow */
        } else if (c->rlen == sizeof(c->rbuf)) {
            return -1; /* header block larger than the buffer */
        }
    }
}

static bool
may_issue(lg *g, int64_t now)
{
    if (g->stop_issuing)
        return false;
    if (g->mode == M_FEED)
        return g->feed_more;
    if (g->requests > 0 && g->issued >= g->requests)
        return false;
    if (g->t_end != 0 && now >= g->t_end)
        return false;
    if (g->rate > 0) {
        int64_t due = g->t0 + (int64_t)((double)g->issued * 1e6 / g->rate);
        if (now < due)
            return false;
    }
    return true;
}

static bool
done_issuing(const lg *g, int64_t now)
{
    return g->stop_issuing || (g->mode == M_FEED && !g->feed_more) ||
           (g->requests > 0 && g->issued >= g->requests) ||
           (g->t_end != 0 && now >= g->t_end);
}

static int
busy_count(const lg *g)
{
    int n = 0;
    for (int i = 0; i < g->nconns; i++)
        if (g->conns[i].busy)
            n++;
    return n;
}

static int
write_acks(const lg *g)
{
    FILE *f = fopen(g->ack_log, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < g->nacks; i++)
        fprintf(f, "%s %lld\n", g->acks[i].vid,
                (long long)g->acks[i].wall_us);
    return fclose(f) == 0 ? 0 : -1;
}

static const char *
mode_name(lg_mode m)
{
    static const char *const names[] = {"create", "put", "get", "path",
                                        "feed"};
    return names[m];
}

static void
report(lg *g)
{
    int64_t t_from = g->t_measure > g->t_first_send ? g->t_measure
                                                    : g->t_first_send;
    int64_t t_to = g->t_end != 0 ? g->t_end : g->t_last_done;
    double secs = (double)(t_to - t_from) / 1e6;
    bool first = true;

    if (g->mode != M_FEED && g->t_end == 0)
        secs = (double)(g->t_last_done - g->t_first_send) / 1e6;
    if (secs <= 0)
        secs = 1e-6;
    printf("{\"mode\":\"%s\",\"conns\":%d,\"rate\":%.0f,\"issued\":%lld,"
           "\"completed\":%lld,\"measured\":%lld,\"bad_status\":%lld,"
           "\"conn_errors\":%lld,\"seconds\":%.3f,\"rps\":%.1f,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"status\":{",
           mode_name(g->mode), g->nconns, g->rate, g->issued, g->completed,
           g->measured, g->bad, g->conn_errors, secs,
           (double)g->measured / secs, bc_lat_q_ms(&g->lat, 0.50),
           bc_lat_q_ms(&g->lat, 0.90), bc_lat_q_ms(&g->lat, 0.99),
           bc_lat_q_ms(&g->lat, 1.0));
    for (int i = 0; i < 600; i++) {
        if (g->status[i] == 0)
            continue;
        printf("%s\"%d\":%lld", first ? "" : ",", i, g->status[i]);
        first = false;
    }
    printf("}");
    if (g->naddrs > 1) {
        printf(",\"per_addr\":[");
        for (int i = 0; i < g->naddrs; i++)
            printf("%s%lld", i ? "," : "", g->per_addr[i]);
        printf("]");
    }
    if (g->mode == M_FEED)
        printf(",\"pages\":%lld,\"events\":%lld,\"events_per_s\":%.1f",
               g->feed_pages, g->feed_events, (double)g->feed_events / secs);
    printf("}\n");
    fflush(stdout);
}

static int
run(lg *g)
{
    struct epoll_event evs[256];
    int64_t hard_end = 0;

    g->t0 = bc_mono_us();
    if (g->duration_s > 0) {
        g->t_measure = g->t0 + (int64_t)(g->warmup_s * 1e6);
        g->t_end = g->t_measure + (int64_t)(g->duration_s * 1e6);
    }
    for (int i = 0; i < g->nconns; i++) {
        g->conns[i].fd = -1;
        g->conns[i].ai = i % g->naddrs;
        if (conn_open(g, &g->conns[i]) != 0) {
            fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
            return -1;
        }
    }
    for (;;) {
        int64_t now = bc_mono_us();
        int timeout = 50, n;

        for (int i = 0; i < g->nconns && may_issue(g, now); i++) {
            conn *c = &g->conns[i];
            if (c->fd < 0 || c->connecting || c->busy)
                continue;
            if (conn_send(g, c) != 0) {
                g->conn_errors++;
                c->busy = false;
                conn_close(g, c);
                conn_open(g, c);
            }
            if (g->mode == M_FEED)
                break;
        }
        if (done_issuing(g, now)) {
            if (busy_count(g) == 0)
                break;
            if (hard_end == 0)
                hard_end = now + 10 * 1000000;
            if (now > hard_end) {
                fprintf(stderr, "loadgen: %d requests unanswered after 10 s\n",
                        busy_count(g));
                g->conn_errors += busy_count(g);
                break;
            }
        }
        if (g->rate > 0)
            timeout = 1;
        n = epoll_wait(g->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            bool fail = false;
            if (c->fd < 0)
                continue;
            if (c->connecting && (evs[i].events & (EPOLLOUT | EPOLLERR))) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    fail = true;
                } else {
                    c->connecting = false;
                    set_out(g, c, false);
                }
            } else if (evs[i].events & EPOLLOUT) {
                if (conn_flush(g, c) != 0)
                    fail = true;
                else if (c->woff == c->wlen)
                    set_out(g, c, false);
            }
            if (!fail && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                fail = conn_read(g, c) != 0;
            if (fail) {
                if (c->busy) {
                    g->conn_errors++;
                    c->busy = false;
                }
                conn_close(g, c);
                if (!g->stop_issuing && conn_open(g, c) != 0)
                    g->conn_errors++;
            }
        }
    }
    return 0;
}

/* "HOST:PORT[,HOST:PORT...]" into g->addrs. 0 on success. */
static int
parse_addrs(lg *g, const char *list)
{
    const char *p = list;

    g->naddrs = 0;
    while (*p != '\0') {
        char one[128];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(one) || g->naddrs == MAX_ADDRS)
            return -1;
        memcpy(one, p, n);
        one[n] = '\0';
        if (bc_parse_addr(one, &g->addrs[g->naddrs],
                          &g->addrlens[g->naddrs]) != 0)
            return -1;
        g->naddrs++;
        p += n;
        if (*p == ',')
            p++;
    }
    return g->naddrs > 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"mode", required_argument, NULL, 'm'},
        {"conns", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"requests", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"token", required_argument, NULL, 't'},
        {"uris", required_argument, NULL, 'u'},
        {"uri-prefix", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},
        {"path", required_argument, NULL, 'P'},
        {"limit", required_argument, NULL, 'l'},
        {"ack-log", required_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    lg *g = calloc(1, sizeof(*g));
    const char *addr = NULL, *mode = NULL;
    int c, rc = 2;

    if (g == NULL)
        return 1;
    g->nconns = 64;
    g->uris = 1000;
    g->size = 1024;
    g->limit = 1000;
    g->uri_prefix = "ctx://bench/load/a";
    g->ep = -1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 'm': mode = optarg; break;
        case 'c': g->nconns = atoi(optarg); break;
        case 'd': g->duration_s = atof(optarg); break;
        case 'w': g->warmup_s = atof(optarg); break;
        case 'n': g->requests = atoll(optarg); break;
        case 'r': g->rate = atof(optarg); break;
        case 't': g->token = optarg; break;
        case 'u': g->uris = atoi(optarg); break;
        case 'p': g->uri_prefix = optarg; break;
        case 's': g->size = (size_t)atol(optarg); break;
        case 'P': g->path = optarg; break;
        case 'l': g->limit = atoi(optarg); break;
        case 'A': g->ack_log = optarg; break;
        default: usage(); goto out;
        }
    }
    if (addr == NULL || mode == NULL || parse_addrs(g, addr) != 0)
        goto usage_out;
    if (strcmp(mode, "create") == 0)
        g->mode = M_CREATE;
    else if (strcmp(mode, "put") == 0)
        g->mode = M_PUT;
    else if (strcmp(mode, "get") == 0)
        g->mode = M_GET;
    else if (strcmp(mode, "path") == 0)
        g->mode = M_PATH;
    else if (strcmp(mode, "feed") == 0)
        g->mode = M_FEED;
    else
        goto usage_out;
    if (g->mode == M_CREATE)
        g->requests = g->uris;
    if (g->mode == M_FEED) {
        g->nconns = 1;
        g->feed_more = true;
        if (g->path == NULL)
            g->path = "/changes";
    }
    if (g->mode == M_PATH && g->path == NULL)
        goto usage_out;
    if (g->nconns < 1 || g->nconns > MAX_CONNS || g->uris < 1 ||
        g->size > (16u << 20) || g->limit < 1 ||
        (g->duration_s <= 0 && g->requests <= 0 && g->mode != M_FEED))
        goto usage_out;

    rc = 1;
    bc_raise_nofile();
    g->ctr_base = (uint64_t)bc_wall_us() % 1000000000000000ull;
    g->conns = calloc((size_t)g->nconns, sizeof(*g->conns));
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    if (g->conns == NULL || g->ep < 0 || build_templates(g) != 0) {
        fprintf(stderr, "loadgen: setup failed\n");
        goto out;
    }
    if (run(g) != 0) {
        fprintf(stderr, "loadgen: %s\n", strerror(errno));
        goto out;
    }
    report(g);
    if (g->ack_log != NULL && write_acks(g) != 0) {
        fprintf(stderr, "loadgen: cannot write %s\n", g->ack_log);
        goto out;
    }
    rc = 0;
    goto out;
usage_out:
    usage();
out:
    if (g->conns != NULL) {
        for (int i = 0; i < g->nconns; i++) {
            conn_close(g, &g->conns[i]);
            free(g->conns[i].wbuf);
            free(g->conns[i].body);
        }
        free(g->conns);
    }
    if (g->tpl != NULL) {
        for (int i = 0; i < g->ntpl; i++)
            free(g->tpl[i].buf);
        free(g->tpl);
    }
    if (g->ep >= 0)
        close(g->ep);
    bc_lat_free(&g->lat);
    free(g->acks);
    free(g);
    return rc;
}
