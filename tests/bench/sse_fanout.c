/* SPDX-License-Identifier: MIT
 * sse_fanout.c: SSE fan-out benchmark. Opens N SSE clients (raw sockets,
 * one thread, epoll) on GET /subscriptions/stream?pattern=P, waits until
 * every one has its stream open (the "retry:" line), then a writer on its
 * own keep-alive connection PUTs M new versions of one artifact at --rate.
 * Each client de-chunks the stream and parses the frames; per event,
 * delivery latency = receive wall time - the event's created_at. Reports
 * completeness (every client got every event), p50/p90/p99/max delivery
 * latency and the node's VmRSS (--pid) with the clients connected.
 *
 *   sse_fanout --addr HOST:PORT --token T [--clients 1000] [--events 1000]
 *              [--rate 500] [--pattern '**'] [--pid NODE_PID] [--timeout 60]
 *              [--no-writer] [--ready-file F] [--recv-log F] [--size 1024]
 *
 * --no-writer: only listen (someone else writes M events); --ready-file is
 * written once every client is connected; --recv-log gets one line per
 * event seen by client 0: "version_id recv_wall_us created_us". */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define RBUF_SIZE (16 * 1024)
#define SSE_MAX (256 * 1024)
#define MAX_PENDING_CONNECTS 128
#define CTR_DIGITS 16
#define VID_MAX 96

typedef struct client {
    int fd;
    int idx; /* -1: the writer */
    bool connecting, sent, ready, failed;
    char rbuf[RBUF_SIZE];
    size_t rlen;
    bc_hresp resp;
    char *sb; /* de-chunked SSE text not yet processed */
    size_t sblen, sbcap;
    long long received;
} client;

typedef struct recv_rec {
    char vid[VID_MAX];
    int64_t recv_us, created_us;
} recv_rec;

typedef struct fan {
    struct sockaddr_storage sa;
    socklen_t salen;
    const char *token, *pattern, *ready_file, *recv_log;
    int nclients;
    long long nevents;
    double rate, timeout_s;
    long pid;
    bool writer_on;
    size_t size;
    int ep;
    client *cl;
    int n_ready, n_pending, n_opened, n_failed;
    char sse_req[4608];
    size_t sse_req_len;
    /* writer */
    client w;
    char *wreq;
    size_t wreq_len, wctr_off;
    long long w_issued, w_done, w_bad;
    bool w_busy;
    int64_t w_t0, w_t_end;
    /* results */
    bc_lat lat;
    long long delivered, parse_errors;
    long rss_connected, rss_peak;
    recv_rec *recs;
    size_t nrecs, rcap;
} fan;

static void
usage(void)
{
    fprintf(stderr,
            "usage: sse_fanout --addr HOST:PORT --token T [--clients N]\n"
            "  [--events M] [--rate R] [--pattern P] [--pid PID]\n"
            "  [--timeout S] [--no-writer] [--ready-file F] [--recv-log F]\n"
            "  [--size BYTES]\n");
}

static void
watch(fan *f, client *c, uint32_t events, int op)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(f->ep, op, c->fd, &ev);
}

static int
client_open(fan *f, client *c)
{
    c->fd = bc_connect_nb(&f->sa, f->salen);
    if (c->fd < 0)
        return -1;
    c->connecting = true;
    c->sent = false;
    c->rlen = 0;
    bc_hresp_reset(&c->resp);
    watch(f, c, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

static void
client_close(fan *f, client *c)
{
    if (c->fd >= 0) {
        epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

/* Blocking-ish full send on a non-blocking socket (small requests). */
static int
send_all(int fd, const char *p, size_t len)
{
    int64_t deadline = bc_mono_us() + 5000000;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if ((errno == EAGAIN || errno == EINTR) &&
                bc_mono_us() < deadline) {
                usleep(100);
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- SSE frames ---- */

static void
record_event(fan *f, client *c, const char *data, size_t len)
{
    int64_t now = bc_wall_us(), created = 0;
    char ts[64], vid[VID_MAX];

    if (bc_json_str(data, len, "created_at", ts, sizeof(ts)) != 0 ||
        bc_parse_time_us(ts, &created) != 0) {
        f->parse_errors++;
        return;
    }
    c->received++;
    f->delivered++;
    bc_lat_add(&f->lat, now - created);
    if (f->recv_log != NULL && c->idx == 0 &&
        bc_json_str(data, len, "version_id", vid, sizeof(vid)) == 0) {
        if (f->nrecs == f->rcap) {
            size_t nc = f->rcap ? f->rcap * 2 : 4096;
            recv_rec *nr = realloc(f->recs, nc * sizeof(*nr));
            if (nr == NULL)
                return;
            f->recs = nr;
            f->rcap = nc;
        }
        memcpy(f->recs[f->nrecs].vid, vid, sizeof(vid));
        f->recs[f->nrecs].recv_us = now;
        f->recs[f->nrecs].created_us = created;
        f->nrecs++;
    }
}

/* Handles one frame (text between blank lines). */
static void
on_frame(fan *f, client *c, const char *p, size_t len)
{
    const char *end = p + len, *line = p;
    bool is_change = false;
    const char *data = NULL;
    size_t dlen = 0;

    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t ll = eol ? (size_t)(eol - line) : (size_t)(end - line);
        if (ll >= 6 && strncmp(line, "retry:", 6) == 0 && !c->ready) {
            c->ready = true;
            f->n_ready++;
            f->n_pending--;
        } else if (ll >= 13 && strncmp(line, "event: change", 13) == 0) {
            is_change = true;
        } else if (ll >= 6 && strncmp(line, "data: ", 6) == 0) {
            data = line + 6;
            dlen = ll - 6;
        }
        line = eol ? eol + 1 : end;
    }
    if (is_change && data != NULL)
        record_event(f, c, data, dlen);
}

static void
sse_bytes(void *ctx, const char *data, size_t len)
{
    client *c = ctx;
    if (c->sblen + len > c->sbcap) {
        size_t nc = c->sbcap ? c->sbcap : 4096;
        char *nb;
        while (nc < c->sblen + len)
            nc *= 2;
        if (nc > SSE_MAX) {
            c->failed = true;
            return;
        }
        nb = realloc(c->sb, nc);
        if (nb == NULL) {
            c->failed = true;
            return;
        }
        c->sb = nb;
        c->sbcap = nc;
    }
    memcpy(c->sb + c->sblen, data, len);
    c->sblen += len;
}

static void
sse_process(fan *f, client *c)
{
    size_t start = 0;
    for (size_t i = 0; i + 1 < c->sblen; i++) {
        if (c->sb[i] == '\n' && c->sb[i + 1] == '\n') {
            on_frame(f, c, c->sb + start, i - start);
            start = i + 2;
            i++;
        }
    }
    if (start > 0) {
        memmove(c->sb, c->sb + start, c->sblen - start);
        c->sblen -= start;
    }
}

/* Reads an SSE client; -1 when it failed. */
static int
client_read(fan *f, client *c)
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
        used = bc_hresp_feed(&c->resp, c->rbuf, c->rlen, sse_bytes, c);
        if (used < c->rlen)
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        if (c->resp.state == BC_HP_ERROR || c->failed ||
            (c->resp.state != BC_HP_HEAD && c->resp.status != 200))
            return -1;
        if (c->resp.state == BC_HP_DONE)
            return -1; /* the stream ended */
        sse_process(f, c);
    }
}

/* ---- the writer ---- */

static int
build_writer(fan *f, const char *uri)
{
    char enc[1024], auth[4200], head[8192];
    size_t fixed = strlen("{\"n\":\"\",\"pad\":\"\"}") + CTR_DIGITS;
    size_t pad = f->size > fixed ? f->size - fixed : 1;
    size_t body_len = strlen("{\"content\":{\"n\":\"\",\"pad\":\"\"}}") +
                      CTR_DIGITS + pad;
    int hl;
    char *p;

    if (bc_pct_encode(uri, enc, sizeof(enc)) != 0)
        return -1;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", f->token);
    hl = snprintf(head, sizeof(head),
                  "PUT /artifacts?uri=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                  "Content-Type: application/json\r\nContent-Length: %zu"
                  "\r\n\r\n",
                  enc, auth, body_len);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return -1;
    f->wreq_len = (size_t)hl + body_len;
    f->wreq = malloc(f->wreq_len + 1);
    if (f->wreq == NULL)
        return -1;
    p = f->wreq;
    memcpy(p, head, (size_t)hl);
    p += hl;
    memcpy(p, "{\"content\":{\"n\":\"", 17);
    p += 17;
    f->wctr_off = (size_t)(p - f->wreq);
    memset(p, '0', CTR_DIGITS);
    p += CTR_DIGITS;
    memcpy(p, "\",\"pad\":\"", 9);
    p += 9;
    for (size_t i = 0; i < pad; i++)
        *p++ = (char)('a' + i % 26);
    memcpy(p, "\"}}", 3);
    return 0;
}

/* One blocking request/response on a fresh connection; returns the status
 * or -1. */
static int
http_once(fan *f, const char *req, size_t len)
{
    client tmp;
    int64_t deadline = bc_mono_us() + 10000000;
    int status = -1;

    memset(&tmp, 0, sizeof(tmp));
    tmp.fd = bc_connect_nb(&f->sa, f->salen);
    if (tmp.fd < 0)
        return -1;
    bc_hresp_reset(&tmp.resp);
    while (bc_mono_us() < deadline) {
        ssize_t n;
        if (!tmp.sent) {
            if (send_all(tmp.fd, req, len) == 0)
                tmp.sent = true;
            else if (errno != ENOTCONN && errno != EAGAIN)
                break;
            else {
                usleep(1000);
                continue;
            }
        }
        n = recv(tmp.fd, tmp.rbuf + tmp.rlen, sizeof(tmp.rbuf) - tmp.rlen, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                usleep(200);
                continue;
            }
            break;
        }
        tmp.rlen += (size_t)n;
        {
            size_t used = bc_hresp_feed(&tmp.resp, tmp.rbuf, tmp.rlen, NULL,
                                        NULL);
            memmove(tmp.rbuf, tmp.rbuf + used, tmp.rlen - used);
            tmp.rlen -= used;
        }
        if (tmp.resp.state == BC_HP_DONE) {
            status = tmp.resp.status;
            break;
        }
        if (tmp.resp.state == BC_HP_ERROR || tmp.rlen == sizeof(tmp.rbuf))
            break;
    }
    close(tmp.fd);
    return status;
}

static int
create_writer_artifact(fan *f, const char *uri)
{
    char body[2048], req[8192];
    int bl, rl, st;

    bl = snprintf(body, sizeof(body),
                  "{\"uri\":\"%s\",\"content\":\"sse writer\"}", uri);
    rl = snprintf(req, sizeof(req),
                  "POST /artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Authorization: Bearer %s\r\nContent-Type: application/json"
                  "\r\nContent-Length: %d\r\n\r\n%s",
                  f->token, bl, body);
    if (bl < 0 || rl < 0 || (size_t)rl >= sizeof(req))
        return -1;
    st = http_once(f, req, (size_t)rl);
    if (st != 201) {
        fprintf(stderr, "sse_fanout: creating %s answered %d\n", uri, st);
        return -1;
    }
    return 0;
}

static void
writer_send(fan *f)
{
    uint64_t v = (uint64_t)bc_wall_us() % 1000000000000000ull +
                 (uint64_t)f->w_issued;
    for (int i = CTR_DIGITS - 1; i >= 0; i--) {
        f->wreq[f->wctr_off + (size_t)i] = (char)('0' + v % 10);
        v /= 10;
    }
    bc_hresp_reset(&f->w.resp);
    if (send_all(f->w.fd, f->wreq, f->wreq_len) != 0) {
        f->w_bad++;
        return;
    }
    f->w_issued++;
    f->w_busy = true;
}

static int
writer_read(fan *f)
{
    client *c = &f->w;
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
                         0);
        size_t used;
        if (n == 0)
            return -1;
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        c->rlen += (size_t)n;
        used = bc_hresp_feed(&c->resp, c->rbuf, c->rlen, NULL, NULL);
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        if (c->resp.state == BC_HP_ERROR)
            return -1;
        if (c->resp.state == BC_HP_DONE) {
            if (c->resp.status != 200)
                f->w_bad++;
            f->w_done++;
            f->w_busy = false;
            if (f->w_done == f->nevents)
                f->w_t_end = bc_mono_us();
            return 0;
        }
    }
}

/* ---- main loop ---- */

static void
open_more(fan *f)
{
    while (f->n_opened < f->nclients &&
           f->n_pending < MAX_PENDING_CONNECTS) {
        client *c = &f->cl[f->n_opened];
        c->idx = f->n_opened;
        f->n_opened++;
        if (client_open(f, c) != 0) {
            c->fd = -1;
            f->n_failed++;
            continue;
        }
        f->n_pending++;
    }
}

static void
on_client_event(fan *f, client *c, uint32_t evs)
{
    bool fail = false;

    if (c->connecting && (evs & (EPOLLOUT | EPOLLERR))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            fail = true;
        } else {
            c->connecting = false;
            watch(f, c, EPOLLIN, EPOLL_CTL_MOD);
            if (c->idx >= 0) {
                if (send_all(c->fd, f->sse_req, f->sse_req_len) != 0)
                    fail = true;
                c->sent = true;
            }
        }
    }
    if (!fail && (evs & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        fail = c->idx >= 0 ? client_read(f, c) != 0 : writer_read(f) != 0;
    if (fail) {
        if (c->idx < 0) {
            fprintf(stderr, "sse_fanout: writer connection failed\n");
            f->w_bad++;
            f->w_busy = false;
            client_close(f, c);
            client_open(f, c);
            return;
        }
        if (!c->ready)
            f->n_pending--;
        else
            f->n_ready--;
        c->ready = false;
        f->n_failed++;
        client_close(f, c);
    }
}

static bool
all_delivered(const fan *f)
{
    for (int i = 0; i < f->nclients; i++)
        if (f->cl[i].fd >= 0 && f->cl[i].received < f->nevents)
            return false;
    return true;
}

static int
write_ready_file(const char *path)
{
    char tmp[4200];
    FILE *fp;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "ready\n");
    if (fclose(fp) != 0)
        return -1;
    return rename(tmp, path);
}

static int
run(fan *f)
{
    struct epoll_event evs[512];
    int64_t t_start = bc_mono_us(), t_connected = 0, deadline, last_rss = 0;
    bool writer_started = false;

    deadline = t_start + (int64_t)(f->timeout_s * 1e6);
    open_more(f);
    for (;;) {
        int64_t now = bc_mono_us();
        int n;

        if (now - last_rss > 100000 && f->pid > 0) {
            long r = bc_rss_kib(f->pid);
            if (r > f->rss_peak)
                f->rss_peak = r;
            last_rss = now;
        }
        if (t_connected == 0 && f->n_opened == f->nclients &&
            f->n_pending == 0) {
            t_connected = now;
            if (f->n_ready < f->nclients)
                fprintf(stderr, "sse_fanout: %d of %d clients failed\n",
                        f->nclients - f->n_ready, f->nclients);
            usleep(200000); /* let the hub attach the last ones */
            if (f->pid > 0)
                f->rss_connected = bc_rss_kib(f->pid);
            if (f->ready_file != NULL && write_ready_file(f->ready_file) != 0)
                fprintf(stderr, "sse_fanout: cannot write ready file\n");
            fprintf(stderr, "sse_fanout: %d clients connected in %.2f s\n",
                    f->n_ready, (double)(now - t_start) / 1e6);
            deadline = bc_mono_us() + (int64_t)(f->timeout_s * 1e6);
            now = bc_mono_us();
        }
        if (t_connected != 0 && f->writer_on && !writer_started) {
            writer_started = true;
            f->w_t0 = now;
        }
        if (writer_started && !f->w_busy && f->w_issued < f->nevents &&
            !f->w.connecting && f->w.fd >= 0) {
            int64_t due = f->w_t0 + (f->rate > 0
                                         ? (int64_t)((double)f->w_issued *
                                                     1e6 / f->rate)
                                         : 0);
            if (now >= due)
                writer_send(f);
        }
        if (t_connected != 0 && all_delivered(f))
            break;
        if (now > deadline) {
            fprintf(stderr, "sse_fanout: timeout\n");
            break;
        }
        n = epoll_wait(f->ep, evs, 512, 1);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++)
            on_client_event(f, evs[i].data.ptr, evs[i].events);
        open_more(f);
    }
    return 0;
}

static void
report(fan *f, double secs)
{
    int complete = 0;
    long long expected = (long long)f->nclients * f->nevents;
    int64_t w_end = f->w_t_end != 0 ? f->w_t_end : bc_mono_us();
    double wsecs = f->w_t0 != 0 ? (double)(w_end - f->w_t0) / 1e6 : 0.0;

    for (int i = 0; i < f->nclients; i++)
        if (f->cl[i].received >= f->nevents)
            complete++;
    printf("{\"clients\":%d,\"connected\":%d,\"events\":%lld,"
           "\"expected\":%lld,\"delivered\":%lld,\"complete_clients\":%d,"
           "\"all_delivered\":%s,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"rss_kib_connected\":%ld,"
           "\"rss_kib_peak\":%ld,\"writer_rate\":%.0f,\"writer_seconds\":%.3f,"
           "\"writer_errors\":%lld,\"parse_errors\":%lld,\"seconds\":%.3f}\n",
           f->nclients, f->n_ready, f->nevents, expected, f->delivered,
           complete, complete == f->nclients ? "true" : "false",
           bc_lat_q_ms(&f->lat, 0.5), bc_lat_q_ms(&f->lat, 0.9),
           bc_lat_q_ms(&f->lat, 0.99), bc_lat_q_ms(&f->lat, 1.0),
           f->rss_connected, f->rss_peak, f->rate, wsecs, f->w_bad,
           f->parse_errors, secs);
    fflush(stdout);
}

static int
write_recv_log(const fan *f)
{
    FILE *fp = fopen(f->recv_log, "w");
    if (fp == NULL)
        return -1;
    for (size_t i = 0; i < f->nrecs; i++)
        fprintf(fp, "%s %lld %lld\n", f->recs[i].vid,
                (long long)f->recs[i].recv_us,
                (long long)f->recs[i].created_us);
    return fclose(fp) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},
        {"clients", required_argument, NULL, 'c'},
        {"events", required_argument, NULL, 'e'},
        {"rate", required_argument, NULL, 'r'},
        {"pattern", required_argument, NULL, 'p'},
        {"pid", required_argument, NULL, 'P'},
        {"timeout", required_argument, NULL, 'T'},
        {"no-writer", no_argument, NULL, 'N'},
        {"ready-file", required_argument, NULL, 'R'},
        {"recv-log", required_argument, NULL, 'L'},
        {"size", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    fan *f = calloc(1, sizeof(*f));
    const char *addr = NULL;
    char uri[256], enc_pat[512];
    int c, rc = 2, n;
    int64_t t0;

    if (f == NULL)
        return 1;
    f->nclients = 1000;
    f->nevents = 1000;
    f->rate = 500;
    f->pattern = "**";
    f->timeout_s = 60;
    f->writer_on = true;
    f->size = 1024;
    f->ep = -1;
    f->w.fd = -1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 't': f->token = optarg; break;
        case 'c': f->nclients = atoi(optarg); break;
        case 'e': f->nevents = atoll(optarg); break;
        case 'r': f->rate = atof(optarg); break;
        case 'p': f->pattern = optarg; break;
        case 'P': f->pid = atol(optarg); break;
        case 'T': f->timeout_s = atof(optarg); break;
        case 'N': f->writer_on = false; break;
        case 'R': f->ready_file = optarg; break;
        case 'L': f->recv_log = optarg; break;
        case 's': f->size = (size_t)atol(optarg); break;
        default: usage(); goto out;
        }
    }
    if (addr == NULL || f->token == NULL || f->nclients < 1 ||
        f->nclients > 100000 || f->nevents < 1 ||
        bc_parse_addr(addr, &f->sa, &f->salen) != 0 ||
        bc_pct_encode(f->pattern, enc_pat, sizeof(enc_pat)) != 0) {
        usage();
        goto out;
    }
    rc = 1;
    bc_raise_nofile();
    n = snprintf(f->sse_req, sizeof(f->sse_req),
                 "GET /subscriptions/stream?pattern=%s HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 "Accept: text/event-stream\r\n\r\n",
                 enc_pat, f->token);
    if (n < 0 || (size_t)n >= sizeof(f->sse_req))
        goto out;
    f->sse_req_len = (size_t)n;
    f->cl = calloc((size_t)f->nclients, sizeof(*f->cl));
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    if (f->cl == NULL || f->ep < 0)
        goto out;
    for (int i = 0; i < f->nclients; i++)
        f->cl[i].fd = -1;
    if (f->writer_on) {
        snprintf(uri, sizeof(uri), "ctx://bench/sse/w%ld%lld", (long)getpid(),
                 (long long)(bc_wall_us() % 1000000));
        if (create_writer_artifact(f, uri) != 0 || build_writer(f, uri) != 0)
            goto out;
        f->w.idx = -1;
        if (client_open(f, &f->w) != 0)
            goto out;
    }
    t0 = bc_mono_us();
    if (run(f) != 0)
        goto out;
    report(f, (double)(bc_mono_us() - t0) / 1e6);
    if (f->recv_log != NULL && write_recv_log(f) != 0)
        goto out;
    rc = 0;
out:
    if (f->cl != NULL) {
        for (int i = 0; i < f->nclients; i++) {
            client_close(f, &f->cl[i]);
            free(f->cl[i].sb);
        }
        free(f->cl);
    }
    client_close(f, &f->w);
    free(f->wreq);
    free(f->recs);
    bc_lat_free(&f->lat);
    if (f->ep >= 0)
        close(f->ep);
    free(f);
    return rc;
}
