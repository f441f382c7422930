/* SPDX-License-Identifier: MIT
 * bench_common.h: helpers shared by the benchmark programs (not part of the
 * product): clocks, address parsing, non-blocking loopback sockets, an
 * incremental HTTP/1.1 response parser (Content-Length and chunked),
 * latency statistics and small JSON field scanners. */
#ifndef CS_BENCH_COMMON_H
#define CS_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Monotonic and wall clocks in microseconds. */
int64_t bc_mono_us(void);
int64_t bc_wall_us(void);

/* Parses "HOST:PORT" (IPv4 literal) into *sa. 0 on success. */
int bc_parse_addr(const char *hostport, struct sockaddr_storage *sa,
                  socklen_t *salen);
/* Reads HOST:PORT from a ready file into out (trimmed). 0 on success. */
int bc_read_addr_file(const char *path, char *out, size_t outsz);

/* Non-blocking TCP socket connecting to sa (TCP_NODELAY). -1 on error. */
int bc_connect_nb(const struct sockaddr_storage *sa, socklen_t salen);

/* Raises RLIMIT_NOFILE to its hard limit. */
void bc_raise_nofile(void);

/* VmRSS of pid in KiB from /proc/PID/status, -1 when unknown. */
long bc_rss_kib(long pid);

/* Percent-encodes s (RFC 3986 unreserved kept) into out. 0 on success. */
int bc_pct_encode(const char *s, char *out, size_t outsz);

/* ---- incremental HTTP/1.1 response parser ---- */

typedef enum {
    BC_HP_HEAD = 0,
    BC_HP_BODY,        /* Content-Length body */
    BC_HP_CHUNK_SIZE,
    BC_HP_CHUNK_DATA,
    BC_HP_CHUNK_CRLF,
    BC_HP_TRAILER,
    BC_HP_DONE,
    BC_HP_ERROR
} bc_hp_state;

typedef void (*bc_body_fn)(void *ctx, const char *data, size_t len);

typedef struct bc_hresp {
    bc_hp_state state;
    int status;
    bool chunked, conn_close;
    uint64_t remaining;
} bc_hresp;

void bc_hresp_reset(bc_hresp *r);
/* Consumes bytes of buf[0..len) and returns how many; body bytes go to fn.
 * Stops at the end of the response (state BC_HP_DONE) or when it needs more
 * bytes for a complete header block or chunk-size line (the caller keeps
 * the unconsumed tail and calls again with more). BC_HP_ERROR on garbage. */
size_t bc_hresp_feed(bc_hresp *r, const char *buf, size_t len, bc_body_fn fn,
                     void *ctx);

/* ---- latency samples (microseconds) ---- */

typedef struct bc_lat {
    uint32_t *v;
    size_t n, cap;
    bool sorted;
} bc_lat;

int bc_lat_add(bc_lat *l, int64_t us);
/* Sorts and returns the q-quantile (0..1) in milliseconds; 0 when empty. */
double bc_lat_q_ms(bc_lat *l, double q);
void bc_lat_free(bc_lat *l);

/* ---- JSON scanning (flat, for known node output) ---- */

/* Finds "key": in json and copies the following string value (without
 * quotes, no unescaping) into out. 0 on success. */
int bc_json_str(const char *json, size_t len, const char *key, char *out,
                size_t outsz);
/* Finds "key": followed by an integer. 0 on success. */
int bc_json_int(const char *json, size_t len, const char *key, int64_t *out);
/* Parses an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" into
 * microseconds since the epoch. 0 on success. */
int bc_parse_time_us(const char *s, int64_t *out);

#endif
