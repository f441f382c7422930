/* SPDX-License-Identifier: MIT
 * fuzz_sse.c: libFuzzer target for the bridge's SSE parser.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L \
 *     -D_DEFAULT_SOURCE -Icore tests/fuzz/fuzz_sse.c core/cs_err.c -o fuzz_sse
 *
 * The first input byte picks a chunking; the rest is the stream. The parser
 * is fed in chunks and must give exactly the same callbacks as when fed the
 * whole input at once (and never crash, leak or overrun). */
#include "../../bridge/sse_parse.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct trace {
    uint64_t h;  /* hash of every callback and its arguments */
    size_t n;
} trace;

static void
mix(trace *t, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i;
    for (i = 0; i < n; i++) {
        t->h ^= s[i];
        t->h *= 1099511628211ULL;
    }
    t->h ^= 0xff;
    t->h *= 1099511628211ULL;
}

static cs_err
f_ev(void *ud, const char *id, const char *event, const char *d, size_t len)
{
    trace *t = ud;
    if (d[len] != '\0')
        abort(); /* data must be NUL-terminated */
    mix(t, "E", 1);
    mix(t, id, strlen(id));
    mix(t, event, strlen(event));
    mix(t, d, len);
    t->n++;
    return CS_OK;
}

static cs_err
f_com(void *ud, const char *text, size_t len)
{
    trace *t = ud;
    mix(t, "C", 1);
    mix(t, text, len);
    t->n++;
    return CS_OK;
}

static cs_err
f_retry(void *ud, unsigned long ms)
{
    trace *t = ud;
    mix(t, "R", 1);
    mix(t, &ms, sizeof(ms));
    t->n++;
    return CS_OK;
}

static const br_sse_callbacks cbs = {f_ev, f_com, f_retry};

static cs_err
run(const uint8_t *d, size_t n, size_t chunk, trace *t)
{
    br_sse *p = NULL;
    size_t off = 0;
    cs_err rc = CS_OK;
    memset(t, 0, sizeof(*t));
    if (br_sse_new(4096, &cbs, t, &p) != CS_OK)
        return CS_ENOMEM;
    while (off < n && rc == CS_OK) {
        size_t c = chunk == 0 ? n - off : chunk;
        if (c > n - off)
            c = n - off;
        rc = br_sse_feed(p, (const char *)d + off, c, NULL);
        off += c;
    }
    br_sse_free(p);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trace whole, split;
    cs_err a, b;
    size_t chunk;

    if (size < 1)
        return 0;
    chunk = (size_t)(data[0] % 17) + 1;
    a = run(data + 1, size - 1, 0, &whole);
    b = run(data + 1, size - 1, chunk, &split);
    if (a == CS_OK && b == CS_OK && (whole.h != split.h || whole.n != split.n))
        abort(); /* chunking changed what was parsed */
    if ((a == CS_OK) != (b == CS_OK))
        abort(); /* an oversize line must be found however it is chunked */
    return 0;
}
