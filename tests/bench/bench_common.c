/* SPDX-License-Identifier: MIT
 * bench_common.c: see bench_common.h. */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int64_t
bc_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
bc_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
bc_parse_addr(const char *hostport, struct sockaddr_storage *sa,
              socklen_t *salen)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    long port;
    char *end;
    size_t hl;

    if (colon == NULL)
        return -1;
    hl = (size_t)(colon - hostport);
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof(*sa));
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return -1;
    *salen = sizeof(*in);
    return 0;
}

int
bc_read_addr_file(const char *path, char *out, size_t outsz)
{
    FILE *f = fopen(path, "r");
    int rc = -1;
    size_t n;

    if (f == NULL)
        return -1;
    if (fgets(out, (int)outsz, f) != NULL) {
        n = strlen(out);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                         out[n - 1] == ' '))
            out[--n] = '\0';
        rc = n > 0 ? 0 : -1;
    }
    fclose(f);
    return rc;
}

int
bc_connect_nb(const struct sockaddr_storage *sa, socklen_t salen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, salen) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

void
bc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

long
bc_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

int
bc_pct_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.' || c == '~';
        if (o + 4 > outsz)
            return -1;
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

/* ---- HTTP response parser ---- */

void
bc_hresp_reset(bc_hresp *r)
{
    memset(r, 0, sizeof(*r));
    r->state = BC_HP_HEAD;
}

static const char *
find_crlf(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return p + i;
    return NULL;
}

static const char *
find_head_end(const char *p, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' &&
            p[i + 3] == '\n')
            return p + i;
    return NULL;
}

/* Parses the status line and the headers we care about. */
static int
parse_head(bc_hresp *r, const char *p, size_t len)
{
    const char *end = p + len, *line = p, *eol;
    bool have_cl = false;

    if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (r->status < 100 || r->status > 599)
        return -1;
    if (p[8] == '0')
        r->conn_close = true; /* HTTP/1.0 */
    while (line < end) {
        size_t ll;
        eol = find_crlf(line, (size_t)(end - line));
        if (eol == NULL)
            break;
        ll = (size_t)(eol - line);
        if (line == p) {
            /* status line */
        } else if (ll > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            r->remaining = strtoull(line + 15, NULL, 10);
            have_cl = true;
        } else if (ll > 18 &&
                   strncasecmp(line, "transfer-encoding:", 18) == 0) {
            const char *v = line + 18;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "chunked", 7) == 0)
                r->chunked = true;
        } else if (ll > 11 && strncasecmp(line, "connection:", 11) == 0) {
            const char *v = line + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                r->conn_close = true;
        }
        line = eol + 2;
    }
    if (r->chunked)
        r->state = BC_HP_CHUNK_SIZE;
    else if (have_cl && r->remaining > 0)
        r->state = BC_HP_BODY;
    else
        r->state = BC_HP_DONE; /* MHD always sends a length or chunks */
    return 0;
}

size_t
bc_hresp_feed(bc_hresp *r, const char *buf, size_t len, bc_body_fn fn,
              void *ctx)
{
    size_t off = 0;

    while (off < len && r->state != BC_HP_DONE && r->state != BC_HP_ERROR) {
        const char *p = buf + off, *e;
        size_t avail = len - off, n;

        switch (r->state) {
        case BC_HP_HEAD:
            e = find_head_end(p, avail);
            if (e == NULL)
                return off;
            if (parse_head(r, p, (size_t)(e - p) + 2) != 0) {
                r->state = BC_HP_ERROR;
                return off;
            }
            off += (size_t)(e - p) + 4;
            break;
        case BC_HP_BODY:
        case BC_HP_CHUNK_DATA:
            n = avail < r->remaining ? avail : (size_t)r->remaining;
            if (fn != NULL)
                fn(ctx, p, n);
            off += n;
            r->remaining -= n;
            if (r->remaining == 0)
                r->state = r->state == BC_HP_BODY ? BC_HP_DONE
                                                  : BC_HP_CHUNK_CRLF;
            break;
        case BC_HP_CHUNK_SIZE: {
            char *endp;
            e = find_crlf(p, avail);
            if (e == NULL) {
                if (avail > 256)
                    r->state = BC_HP_ERROR;
                return off;
            }
            r->remaining = strtoull(p, &endp, 16);
            if (endp == p) {
                r->state = BC_HP_ERROR;
                return off;
            }
            off += (size_t)(e - p) + 2;
            r->state = r->remaining == 0 ? BC_HP_TRAILER : BC_HP_CHUNK_DATA;
            break;
        }
        case BC_HP_CHUNK_CRLF:
            if (avail < 2)
                return off;
            if (p[0] != '\r' || p[1] != '\n') {
                r->state = BC_HP_ERROR;
                return off;
            }
            off += 2;
            r->state = BC_HP_CHUNK_SIZE;
            break;
        case BC_HP_TRAILER:
            e = find_crlf(p, avail);
            if (e == NULL)
                return off;
            off += (size_t)(e - p) + 2;
            if (e == p)
                r->state = BC_HP_DONE; /* empty line ends the trailers */
            break;
        default:
            return off;
        }
    }
    return off;
}

/* ---- latency samples ---- */

int
bc_lat_add(bc_lat *l, int64_t us)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 65536;
        uint32_t *nv = realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL)
            return -1;
        l->v = nv;
        l->cap = nc;
    }
    if (us < 0)
        us = 0;
    l->sorted = false;
    l->v[l->n++] = us > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

double
bc_lat_q_ms(bc_lat *l, double q)
{
    size_t i;

    if (l->n == 0)
        return 0.0;
    if (!l->sorted) {
        qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
        l->sorted = true;
    }
    i = (size_t)(q * (double)(l->n - 1) + 0.5);
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->v[i] / 1000.0;
}

void
bc_lat_free(bc_lat *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- JSON scanning ---- */

static const char *
find_key(const char *json, size_t len, const char *key)
{
    char pat[80];
    int n = snprintf(pat, sizeof(pat), "\"%s\":", key);
    size_t pl;

    if (n < 0 || (size_t)n >= sizeof(pat))
        return NULL;
    pl = (size_t)n;
    for (size_t i = 0; i + pl <= len; i++) {
        if (json[i] == '"' && memcmp(json + i, pat, pl) == 0) {
            const char *v = json + i + pl;
            while (v < json + len && *v == ' ')
                v++;
            return v;
        }
    }
    return NULL;
}

int
bc_json_str(const char *json, size_t len, const char *key, char *out,
            size_t outsz)
{
    const char *v = find_key(json, len, key), *end = json + len;
    size_t o = 0;

    if (v == NULL || v >= end || *v != '"')
        return -1;
    for (v++; v < end && *v != '"'; v++) {
        if (o + 1 >= outsz)
            return -1;
        out[o++] = *v;
    }
    if (v >= end)
        return -1;
    out[o] = '\0';
    return 0;
}

int
bc_json_int(const char *json, size_t len, const char *key, int64_t *out)
{
    const char *v = find_key(json, len, key), *end = json + len;
    int64_t x = 0;
    bool neg = false, any = false;

    if (v == NULL)
        return -1;
    if (v < end && *v == '-') {
        neg = true;
        v++;
    }
    for (; v < end && *v >= '0' && *v <= '9'; v++) {
        x = x * 10 + (*v - '0');
        any = true;
    }
    if (!any)
        return -1;
    *out = neg ? -x : x;
    return 0;
}

int
bc_parse_time_us(const char *s, int64_t *out)
{
    struct tm tm;
    int64_t frac = 0, scale = 1000000;
    const char *p;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    p = s + 19;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
        }
    }
    *out = (int64_t)timegm(&tm) * 1000000 + frac;
    return 0;
}
