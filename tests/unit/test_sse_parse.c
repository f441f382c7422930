/* SPDX-License-Identifier: MIT
 * test_sse_parse.c: the bridge's incremental SSE parser
 * (bridge/sse_parse.c, included directly: unit tests link only cs_core). */
#include "../../bridge/sse_parse.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_test.h"

#define MAXREC 64

typedef struct rec {
    int nev, ncom, nretry;
    char id[MAXREC][64];
    char type[MAXREC][64];
    char data[MAXREC][256];
    size_t dlen[MAXREC];
    char com[MAXREC][64];
    unsigned long retry[MAXREC];
} rec;

static cs_err
on_ev(void *ud, const char *id, const char *event, const char *data, size_t len)
{
    rec *r = ud;
    if (r->nev < MAXREC) {
        snprintf(r->id[r->nev], sizeof(r->id[0]), "%s", id);
        snprintf(r->type[r->nev], sizeof(r->type[0]), "%s", event);
        memcpy(r->data[r->nev], data, len < 255 ? len : 255);
        r->data[r->nev][len < 255 ? len : 255] = '\0';
        r->dlen[r->nev] = len;
    }
    r->nev++;
    return CS_OK;
}

static cs_err
on_com(void *ud, const char *text, size_t len)
{
    rec *r = ud;
    if (r->ncom < MAXREC) {
        memcpy(r->com[r->ncom], text, len < 63 ? len : 63);
        r->com[r->ncom][len < 63 ? len : 63] = '\0';
    }
    r->ncom++;
    return CS_OK;
}

static cs_err
on_retry(void *ud, unsigned long ms)
{
    rec *r = ud;
    if (r->nretry < MAXREC)
        r->retry[r->nretry] = ms;
    r->nretry++;
    return CS_OK;
}

static const br_sse_callbacks cbs = {on_ev, on_com, on_retry};

/* Feeds s in chunks of the given sizes (cycled); returns the feed result. */
static cs_err
feed_split(const char *s, size_t n, size_t max_event, rec *r, const size_t *cuts,
           size_t ncuts)
{
    br_sse *p = NULL;
    size_t off = 0, k = 0;
    cs_err rc = CS_OK;
    memset(r, 0, sizeof(*r));
    if (br_sse_new(max_event, &cbs, r, &p) != CS_OK)
        return CS_ENOMEM;
    while (off < n && rc == CS_OK) {
        size_t c = ncuts ? cuts[k++ % ncuts] : n;
        if (c > n - off)
            c = n - off;
        rc = br_sse_feed(p, s + off, c, NULL);
        off += c;
    }
    br_sse_free(p);
    return rc;
}

static const char stream1[] =
    "retry: 2000\n"
    ": keepalive\n"
    "id: 1\nevent: change\ndata: {\"seq\":1}\n\n"
    "id: 2\r\nevent: change\r\ndata: {\"seq\":2}\r\n\r\n"
    "id: 3\revent: change\rdata: line1\rdata: line2\r\r"
    ":nospace\n"
    "data:no space\n\n"
    "id: 4\nevent: overflow\ndata\n\n"
    "id: 5\ndata: x\n\n";

static void
check_stream1(const rec *r, const char *what)
{
    int ok = 1;
    ok &= CS_CHECK_INT_EQ(r->nev, 6);
    ok &= CS_CHECK_INT_EQ(r->ncom, 2);
    ok &= CS_CHECK_INT_EQ(r->nretry, 1);
    if (r->nev == 6) {
        ok &= CS_CHECK_STR_EQ(r->id[0], "1");
        ok &= CS_CHECK_STR_EQ(r->type[0], "change");
        ok &= CS_CHECK_STR_EQ(r->data[0], "{\"seq\":1}");
        ok &= CS_CHECK_STR_EQ(r->id[1], "2");
        ok &= CS_CHECK_STR_EQ(r->data[1], "{\"seq\":2}");
        ok &= CS_CHECK_STR_EQ(r->id[2], "3");
        ok &= CS_CHECK_STR_EQ(r->data[2], "line1\nline2");
        ok &= CS_CHECK_INT_EQ(r->dlen[2], 11);
        /* no id: field: the last event id carries over */
        ok &= CS_CHECK_STR_EQ(r->id[3], "3");
        ok &= CS_CHECK_STR_EQ(r->type[3], "message");
        ok &= CS_CHECK_STR_EQ(r->data[3], "no space");
        /* a bare "data" line is an empty data line: the event is
         * dispatched with empty data (WHATWG: the buffer is "\n") */
        ok &= CS_CHECK_STR_EQ(r->id[4], "4");
        ok &= CS_CHECK_STR_EQ(r->type[4], "overflow");
        ok &= CS_CHECK_INT_EQ(r->dlen[4], 0);
        ok &= CS_CHECK_STR_EQ(r->id[5], "5");
        ok &= CS_CHECK_STR_EQ(r->type[5], "message");
        ok &= CS_CHECK_STR_EQ(r->data[5], "x");
    }
    if (r->ncom == 2) {
        ok &= CS_CHECK_STR_EQ(r->com[0], "keepalive");
        ok &= CS_CHECK_STR_EQ(r->com[1], "nospace");
    }
    if (r->nretry == 1)
        ok &= CS_CHECK_INT_EQ(r->retry[0], 2000);
    if (!ok)
        fprintf(stderr, "    (while testing %s)\n", what);
}

static void
test_whole_and_every_split(void)
{
    size_t n = sizeof(stream1) - 1, cut;
    rec r;
    char what[64];

    CS_CHECK_INT_EQ(feed_split(stream1, n, 4096, &r, NULL, 0), CS_OK);
    check_stream1(&r, "whole");
    /* a chunk boundary at every byte offset */
    for (cut = 1; cut < n; cut++) {
        size_t cuts[2] = {cut, n};
        snprintf(what, sizeof(what), "split at %zu", cut);
        CS_CHECK_INT_EQ(feed_split(stream1, n, 4096, &r, cuts, 2), CS_OK);
        check_stream1(&r, what);
    }
    /* byte by byte, and odd chunk sizes */
    {
        size_t one = 1, odd[3] = {3, 7, 2};
        CS_CHECK_INT_EQ(feed_split(stream1, n, 4096, &r, &one, 1), CS_OK);
        check_stream1(&r, "byte by byte");
        CS_CHECK_INT_EQ(feed_split(stream1, n, 4096, &r, odd, 3), CS_OK);
        check_stream1(&r, "3/7/2 chunks");
    }
}

static void
test_crlf_split_between_cr_and_lf(void)
{
    /* "\r" at the end of a chunk, "\n" at the start of the next: one line
     * end, not two (which would dispatch an empty event early) */
    const char *a = "data: a\r", *b = "\ndata: b\r\n\r\n";
    br_sse *p = NULL;
    rec r;
    memset(&r, 0, sizeof(r));
    CS_CHECK_INT_EQ(br_sse_new(1024, &cbs, &r, &p), CS_OK);
    CS_CHECK_INT_EQ(br_sse_feed(p, a, strlen(a), NULL), CS_OK);
    CS_CHECK_INT_EQ(br_sse_feed(p, b, strlen(b), NULL), CS_OK);
    CS_CHECK_INT_EQ(r.nev, 1);
    CS_CHECK_STR_EQ(r.data[0], "a\nb");
    br_sse_free(p);
}

static void
test_bom_and_fields(void)
{
    const char s[] = "\xEF\xBB\xBF"
                     "data: first\n\n"
                     "id\n"          /* empty id resets it */
                     "data: second\n"
                     "retry: 12x\n"  /* not all digits: ignored */
                     "retry:\n"
                     "foo: bar\n"    /* unknown field: ignored */
                     "data:  two spaces\n\n";
    size_t n = sizeof(s) - 1, cut;
    rec r;
    for (cut = 1; cut <= n; cut++) {
        size_t cuts[2] = {cut, n};
        CS_CHECK_INT_EQ(feed_split(s, n, 1024, &r, cuts, 2), CS_OK);
        if (!CS_CHECK_INT_EQ(r.nev, 2))
            continue;
        CS_CHECK_STR_EQ(r.data[0], "first");
        CS_CHECK_STR_EQ(r.id[1], "");
        CS_CHECK_STR_EQ(r.data[1], "second\n two spaces");
        CS_CHECK_INT_EQ(r.nretry, 0);
    }
}

static void
test_partial_bom_is_data(void)
{
    const char s[] = "\xEF" "data: z\n\n";
    rec r;
    CS_CHECK_INT_EQ(feed_split(s, sizeof(s) - 1, 1024, &r, NULL, 0), CS_OK);
    /* the field name is "\xEF" "data": unknown, nothing dispatched */
    CS_CHECK_INT_EQ(r.nev, 0);
}

static void
test_incomplete_event_not_dispatched(void)
{
    const char s[] = "id: 9\ndata: pending";
    const char t[] = "id: 10\nevent: change\n\n"; /* no data: not dispatched */
    rec r;
    CS_CHECK_INT_EQ(feed_split(s, sizeof(s) - 1, 1024, &r, NULL, 0), CS_OK);
    CS_CHECK_INT_EQ(r.nev, 0);
    CS_CHECK_INT_EQ(feed_split(t, sizeof(t) - 1, 1024, &r, NULL, 0), CS_OK);
    CS_CHECK_INT_EQ(r.nev, 0);
}

static void
test_oversize(void)
{
    char big[300];
    rec r;
    br_sse *p = NULL;
    cs_errbuf eb;
    size_t one = 1;

    /* a line longer than the limit, fed whole and byte by byte */
    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    big[sizeof(big) - 1] = '\n';
    CS_CHECK_INT_EQ(feed_split(big, sizeof(big), 100, &r, NULL, 0), CS_ETOOBIG);
    CS_CHECK_INT_EQ(feed_split(big, sizeof(big), 100, &r, &one, 1), CS_ETOOBIG);
    CS_CHECK_INT_EQ(r.nev, 0);

    /* many short data lines adding up to more than the limit */
    memset(&r, 0, sizeof(r));
    CS_CHECK_INT_EQ(br_sse_new(100, &cbs, &r, &p), CS_OK);
    {
        int i;
        cs_err rc = CS_OK;
        for (i = 0; i < 50 && rc == CS_OK; i++)
            rc = br_sse_feed(p, "data: 0123456789\n", 17, NULL);
        CS_CHECK_INT_EQ(rc, CS_ETOOBIG);
    }
    /* sticky error, with a message */
    eb.msg[0] = '\0';
    CS_CHECK_INT_EQ(br_sse_feed(p, "\n", 1, &eb), CS_ETOOBIG);
    CS_CHECK(strstr(eb.msg, "earlier error") != NULL);
    CS_CHECK_INT_EQ(r.nev, 0);
    /* reset clears it and keeps the last id */
    br_sse_reset(p);
    CS_CHECK_INT_EQ(br_sse_feed(p, "data: ok\n\n", 10, NULL), CS_OK);
    CS_CHECK_INT_EQ(r.nev, 1);
    br_sse_free(p);

    /* exactly at the limit is fine */
    {
        char ok[64];
        memcpy(ok, "data: ", 6);
        memset(ok + 6, 'y', 10);
        memcpy(ok + 16, "\n\n", 2);
        CS_CHECK_INT_EQ(feed_split(ok, 18, 16, &r, NULL, 0), CS_OK);
        CS_CHECK_INT_EQ(r.nev, 1);
        CS_CHECK_INT_EQ(r.dlen[0], 10);
    }
    /* oversize id */
    {
        char idl[1100];
        memcpy(idl, "id: ", 4);
        memset(idl + 4, '1', 1090);
        idl[1094] = '\n';
        CS_CHECK_INT_EQ(feed_split(idl, 1095, 1 << 20, &r, NULL, 0), CS_ETOOBIG);
    }
}

static cs_err
stop_cb(void *ud, const char *id, const char *event, const char *data, size_t len)
{
    (void)ud;
    (void)id;
    (void)event;
    (void)data;
    (void)len;
    return CS_ESHUTDOWN;
}

static void
test_callback_abort(void)
{
    br_sse_callbacks cb = {stop_cb, NULL, NULL};
    br_sse *p = NULL;
    CS_CHECK_INT_EQ(br_sse_new(1024, &cb, NULL, &p), CS_OK);
    CS_CHECK_INT_EQ(br_sse_feed(p, "data: a\n\ndata: b\n\n", 18, NULL), CS_ESHUTDOWN);
    br_sse_free(p);
}

static void
test_nul_in_data_and_id(void)
{
    const char s[] = "id: a\0b\ndata: x\0y\n\n";
    rec r;
    CS_CHECK_INT_EQ(feed_split(s, sizeof(s) - 1, 1024, &r, NULL, 0), CS_OK);
    CS_CHECK_INT_EQ(r.nev, 1);
    CS_CHECK_STR_EQ(r.id[0], "");  /* an id with NUL is ignored */
    CS_CHECK_INT_EQ(r.dlen[0], 3); /* data keeps its NUL */
}

int
main(void)
{
    test_whole_and_every_split();
    test_crlf_split_between_cr_and_lf();
    test_bom_and_fields();
    test_partial_bom_is_data();
    test_incomplete_event_not_dispatched();
    test_oversize();
    test_callback_abort();
    test_nul_in_data_and_id();
    return cs_test_summary();
}
