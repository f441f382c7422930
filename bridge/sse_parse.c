/* SPDX-License-Identifier: MIT
 * sse_parse.c: incremental text/event-stream parser (see sse_parse.h). */
#include "sse_parse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 1024
#define EVENT_MAX 256

typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf;

struct br_sse {
    size_t max_event;
    br_sse_callbacks cb;
    void *ud;
    buf line;          /* current, unterminated line */
    buf data;          /* data of the event being built, "\n" after each line */
    char id[ID_MAX + 1];       /* last event id */
    char event[EVENT_MAX + 1]; /* event type of the event being built */
    bool have_event_type;
    bool prev_cr;      /* last byte was '\r': a following '\n' is swallowed */
    unsigned bom;      /* BOM bytes matched so far; 3 = done/not present */
    cs_err err;        /* sticky error */
};

static cs_err
buf_append(buf *b, const char *s, size_t n, size_t max)
{
    if (n > max || b->len > max - n)
        return CS_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        np = realloc(b->p, cap);
        if (np == NULL)
            return CS_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return CS_OK;
}

cs_err
br_sse_new(size_t max_event, const br_sse_callbacks *cb, void *ud, br_sse **out)
{
    br_sse *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CS_ENOMEM;
    p->max_event = max_event ? max_event : 1;
    if (cb != NULL)
        p->cb = *cb;
    p->ud = ud;
    *out = p;
    return CS_OK;
}

void
br_sse_reset(br_sse *p)
{
    p->line.len = 0;
    p->data.len = 0;
    p->have_event_type = false;
    p->event[0] = '\0';
    p->prev_cr = false;
    p->bom = 0;
    p->err = CS_OK;
}

const char *
br_sse_last_id(const br_sse *p)
{
    return p->id;
}

void
br_sse_free(br_sse *p)
{
    if (p == NULL)
        return;
    free(p->line.p);
    free(p->data.p);
    free(p);
}

static cs_err
dispatch(br_sse *p)
{
    cs_err rc = CS_OK;
    const char *type = p->have_event_type ? p->event : "message";

    if (p->data.len > 0) {
        /* remove the "\n" added after the last data line */
        p->data.len--;
        p->data.p[p->data.len] = '\0';
        if (p->cb.on_event != NULL)
            rc = p->cb.on_event(p->ud, p->id, type, p->data.p, p->data.len);
    }
    p->data.len = 0;
    p->have_event_type = false;
    p->event[0] = '\0';
    return rc;
}

static cs_err
process_line(br_sse *p, const char *s, size_t n, cs_errbuf *eb)
{
    const char *colon, *val;
    size_t flen, vlen;

    if (n == 0)
        return dispatch(p);
    if (s[0] == ':') {
        s++;
        n--;
        if (n > 0 && s[0] == ' ') {
            s++;
            n--;
        }
        return p->cb.on_comment != NULL ? p->cb.on_comment(p->ud, s, n) : CS_OK;
    }
    colon = memchr(s, ':', n);
    if (colon != NULL) {
        flen = (size_t)(colon - s);
        val = colon + 1;
        vlen = n - flen - 1;
        if (vlen > 0 && val[0] == ' ') {
            val++;
            vlen--;
        }
    } else {
        flen = n;
        val = s + n;
        vlen = 0;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        cs_err rc = buf_append(&p->data, val, vlen, p->max_event);
        if (rc == CS_OK)
            rc = buf_append(&p->data, "\n", 1, p->max_event + 1);
        if (rc == CS_ETOOBIG)
            return cs_errf(eb, CS_ETOOBIG, "sse: event data larger than %zu bytes",
                           p->max_event);
        return rc;
    }
    if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (vlen > EVENT_MAX)
            return cs_errf(eb, CS_ETOOBIG, "sse: event type longer than %d bytes",
                           EVENT_MAX);
        memcpy(p->event, val, vlen);
        p->event[vlen] = '\0';
        p->have_event_type = true;
        return CS_OK;
    }
    if (flen == 2 && memcmp(s, "id", 2) == 0) {
        if (memchr(val, '\0', vlen) != NULL)
            return CS_OK; /* ignored, as the standard says */
        if (vlen > ID_MAX)
            return cs_errf(eb, CS_ETOOBIG, "sse: event id longer than %d bytes",
                           ID_MAX);
        memcpy(p->id, val, vlen);
        p->id[vlen] = '\0';
        return CS_OK;
    }
    if (flen == 5 && memcmp(s, "retry", 5) == 0) {
        unsigned long ms = 0;
        size_t i;
        if (vlen == 0 || vlen > 9)
            return CS_OK;
        for (i = 0; i < vlen; i++) {
            if (val[i] < '0' || val[i] > '9')
                return CS_OK;
            ms = ms * 10 + (unsigned long)(val[i] - '0');
        }
        return p->cb.on_retry != NULL ? p->cb.on_retry(p->ud, ms) : CS_OK;
    }
    return CS_OK; /* unknown field: ignored */
}

cs_err
br_sse_feed(br_sse *p, const char *in, size_t len, cs_errbuf *eb)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    size_t i = 0;
    cs_err rc = CS_OK;

    if (p->err != CS_OK)
        return cs_errf(eb, p->err, "sse: parser stopped after an earlier error");

    /* skip a leading BOM, possibly split across chunks */
    while (p->bom < 3 && i < len) {
        if ((unsigned char)in[i] == bom[p->bom]) {
            p->bom++;
            i++;
            continue;
        }
        if (p->bom > 0) {
            /* a partial BOM that is not one: its bytes belong to the line */
            rc = buf_append(&p->line, (const char *)bom, p->bom, p->max_event);
            if (rc != CS_OK)
                goto out;
        }
        p->bom = 3;
    }

    while (i < len) {
        const char *s = in + i;
        size_t n = len - i, k;

        if (p->prev_cr) {
            p->prev_cr = false;
            if (s[0] == '\n') {
                i++;
                continue;
            }
        }
        /* find the next CR or LF */
        for (k = 0; k < n; k++) {
            if (s[k] == '\n' || s[k] == '\r')
                break;
        }
        if (k == n) {
            rc = buf_append(&p->line, s, n, p->max_event);
            if (rc == CS_ETOOBIG)
                rc = cs_errf(eb, CS_ETOOBIG, "sse: line longer than %zu bytes",
                             p->max_event);
            goto out;
        }
        if (p->line.len == 0) {
            rc = k > p->max_event ? cs_errf(eb, CS_ETOOBIG,
                                            "sse: line longer than %zu bytes",
                                            p->max_event)
                                  : process_line(p, s, k, eb);
        } else {
            rc = buf_append(&p->line, s, k, p->max_event);
            if (rc == CS_ETOOBIG)
                rc = cs_errf(eb, CS_ETOOBIG, "sse: line longer than %zu bytes",
                             p->max_event);
            if (rc == CS_OK)
                rc = process_line(p, p->line.p, p->line.len, eb);
            p->line.len = 0;
        }
        if (rc != CS_OK)
            goto out;
        if (s[k] == '\r')
            p->prev_cr = true;
        i += k + 1;
    }
out:
    if (rc != CS_OK)
        p->err = rc;
    return rc;
}
