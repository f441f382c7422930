/* SPDX-License-Identifier: MIT
 * cs_sqlpg.c: SQLite-dialect SQL text rewritten for PostgreSQL (see
 * cs_sqlpg.h). A single left-to-right pass over the text that copies
 * quoted strings and identifiers untouched. */
#include "cs_sqlpg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void
sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->p == NULL || b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256);
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static bool
is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Length of the word at s (0 if none). */
static size_t
word_len(const char *s)
{
    size_t n = 0;
    while (is_word(s[n]))
        n++;
    return n;
}

static bool
word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static const char *
skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* True when the word after IS [NOT] makes a test PostgreSQL reads as
 * SQLite does (IS NULL, IS TRUE, IS DISTINCT FROM ...): kept as is. */
static bool
is_keeps_is(const char *w, size_t n)
{
    return word_is(w, n, "NULL") || word_is(w, n, "DISTINCT") ||
           word_is(w, n, "TRUE") || word_is(w, n, "FALSE");
}

/* True when s (after a parameter) reads IS [NOT] NULL: PostgreSQL cannot
 * type a parameter from that alone, so it is typed text (every such
 * parameter of the node is a text filter, as in "?2 IS NULL OR org = ?2"). */
static bool
tests_null(const char *s)
{
    const char *t = skip_space(s);
    size_t tl = word_len(t);
    if (!word_is(t, tl, "IS"))
        return false;
    t = skip_space(t + tl);
    tl = word_len(t);
    if (word_is(t, tl, "NOT")) {
        t = skip_space(t + tl);
        tl = word_len(t);
    }
    return word_is(t, tl, "NULL");
}

char *
cs_sqlpg_rewrite(const char *sql, int *nparams)
{
    sbuf b = {0};
    const char *s = skip_space(sql);
    int autoidx = 0, maxidx = 0;
    bool on_conflict = false;
    size_t wl;

    wl = word_len(s);
    if (word_is(s, wl, "BEGIN")) {
        const char *t = skip_space(s + wl);
        size_t tl = word_len(t);
        if (word_is(t, tl, "IMMEDIATE") || word_is(t, tl, "DEFERRED") ||
            word_is(t, tl, "EXCLUSIVE"))
            s = t + tl;
        else
            s += wl;
        sb_puts(&b, "BEGIN");
    } else if (word_is(s, wl, "INSERT")) {
        const char *t = skip_space(s + wl);
        size_t tl = word_len(t);
        if (word_is(t, tl, "OR")) {
            const char *u = skip_space(t + tl);
            size_t ul = word_len(u);
            if (word_is(u, ul, "IGNORE")) {
                on_conflict = true;
                sb_puts(&b, "INSERT");
                s = u + ul;
            }
        }
    }
    while (*s != '\0') {
        if (*s == '\'' || *s == '"') {
            char q = *s;
            const char *e = s + 1;
            for (;;) {
                if (*e == '\0')
                    break;
                if (*e == q) {
                    if (e[1] == q) {
                        e += 2;
                        continue;
                    }
                    e++;
                    break;
                }
                e++;
            }
            sb_putn(&b, s, (size_t)(e - s));
            s = e;
        } else if (*s == '?') {
            char num[24];
            long idx;
            s++;
            if (isdigit((unsigned char)*s)) {
                char *end;
                idx = strtol(s, &end, 10);
                s = end;
            } else {
                idx = ++autoidx;
            }
            /* a number beyond the limit is kept in the text (PostgreSQL
             * then refuses the statement) but not counted */
            if (idx > maxidx && idx <= CS_SQLPG_MAX_PARAM)
                maxidx = (int)idx;
            snprintf(num, sizeof(num), "$%ld", idx);
            sb_puts(&b, num);
            if (tests_null(s))
                sb_puts(&b, "::text");
        } else if (is_word(*s) && (s == sql || !is_word(s[-1]))) {
            wl = word_len(s);
            if (word_is(s, wl, "IS")) {
                const char *t = skip_space(s + wl);
                size_t tl = word_len(t);
                if (is_keeps_is(t, tl)) {
                    sb_putn(&b, s, wl);
                    s += wl;
                } else if (word_is(t, tl, "NOT")) {
                    const char *u = skip_space(t + tl);
                    size_t ul = word_len(u);
                    if (is_keeps_is(u, ul)) {
                        sb_putn(&b, s, wl);
                        s += wl;
                    } else {
                        sb_puts(&b, "IS DISTINCT FROM");
                        s = t + tl;
                    }
                } else {
                    sb_puts(&b, "IS NOT DISTINCT FROM");
                    s += wl;
                }
            } else {
                sb_putn(&b, s, wl);
                s += wl;
            }
        } else {
            sb_putn(&b, s, 1);
            s++;
        }
    }
    if (on_conflict) {
        while (b.len > 0 && (b.p[b.len - 1] == ';' || b.p[b.len - 1] == ' '))
            b.p[--b.len] = '\0';
        sb_puts(&b, " ON CONFLICT DO NOTHING");
    }
    if (!b.oom && b.p == NULL)
        sb_puts(&b, ""); /* an empty text */
    if (b.oom || b.p == NULL) {
        free(b.p);
        return NULL;
    }
    *nparams = maxidx;
    return b.p;
}

int
cs_sqlpg_params(const char *sql, bool *used, int nused)
{
    int maxidx = 0;
    char q = 0;
    for (int i = 0; i < nused; i++)
        used[i] = false;
    for (const char *s = sql; *s; s++) {
        if (q != 0) {
            if (*s == q)
                q = 0;
        } else if (*s == '\'' || *s == '"') {
            q = *s;
        } else if (*s == '$' && isdigit((unsigned char)s[1])) {
            long idx = strtol(s + 1, NULL, 10);
            if (idx > maxidx && idx <= CS_SQLPG_MAX_PARAM)
                maxidx = (int)idx;
            if (idx >= 1 && idx <= nused)
                used[idx - 1] = true;
        }
    }
    return maxidx;
}

bool
cs_sqlpg_word(const char *sql, int n, const char *word)
{
    const char *s = skip_space(sql);
    size_t wl = word_len(s);
    for (int i = 0; i < n && wl > 0; i++) {
        s = skip_space(s + wl);
        wl = word_len(s);
    }
    return wl > 0 && word_is(s, wl, word);
}

void
cs_sqlpg_redact_url(const char *store, char *out, size_t sz)
{
    const char *at, *colon, *pw;
    size_t o = 0;
    if (sz == 0)
        return;
    snprintf(out, sz, "%s", store);
    if (strncmp(store, "postgres://", 11) != 0 &&
        strncmp(store, "postgresql://", 13) != 0)
        return;
    /* scheme://user:PW@host... */
    at = strchr(store, '@');
    colon = strchr(strstr(store, "://") + 3, ':');
    if (at != NULL && colon != NULL && colon < at)
        o = (size_t)snprintf(out, sz, "%.*s:***%s", (int)(colon - store), store,
                             at);
    /* ...?password=PW&... */
    if (o < sz && (pw = strstr(out, "password=")) != NULL) {
        char *p = out + (pw - out) + 9;
        const char *rest = strchr(p, '&');
        char tail[256];
        snprintf(tail, sizeof(tail), "%s", rest != NULL ? rest : "");
        snprintf(p, sz - (size_t)(p - out), "***%s", tail);
    }
}
