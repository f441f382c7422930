/* SPDX-License-Identifier: MIT
 * cs_uri.c: artifact URI parsing, pattern validation, matching, covering.
 *
 * A valid URI is a pattern without wildcards, so matching and covering share
 * one engine: a segment-level dynamic programme (for "**") over a per-segment
 * greedy glob (for '*'), both iterative and polynomial. */
#include "cs_uri.h"

#include <stdint.h>
#include <string.h>

#define CS_URI_SCHEME "ctx://"
#define CS_URI_SCHEME_LEN 6
/* Segments are non-empty and '/'-separated: at most (1024 - 6 + 1) / 2. */
#define CS_URI_MAX_SEGS 512

typedef struct seg {
    size_t off;
    size_t len;
} seg;

static bool
uri_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static cs_err
bad_char(cs_errbuf *eb, const char *what, unsigned char c, size_t at)
{
    if (c >= 0x20 && c < 0x7f)
        return cs_errf(eb, CS_EINVAL, "%s: invalid character '%c' at byte %zu",
                       what, (int)c, at);
    return cs_errf(eb, CS_EINVAL, "%s: invalid byte 0x%02x at byte %zu", what,
                   (unsigned)c, at);
}

/* Splits s[CS_URI_SCHEME_LEN..len) on '/' into segs, checking characters
 * (plus '*' when allow_star). Rejects empty segments. */
static cs_err
split_segments(const char *s, size_t len, bool allow_star, const char *what,
               seg *segs, size_t *nsegs, cs_errbuf *eb)
{
    size_t n = 0;
    size_t start = CS_URI_SCHEME_LEN;

    for (size_t i = CS_URI_SCHEME_LEN; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '/';
        if (c == '/') {
            if (i == start) {
                if (i == len && n > 0)
                    return cs_errf(eb, CS_EINVAL, "%s: trailing slash at byte %zu",
                                   what, i - 1);
                return cs_errf(eb, CS_EINVAL, "%s: empty segment at byte %zu",
                               what, start);
            }
            if (n == CS_URI_MAX_SEGS) /* unreachable within 1024 bytes */
                return cs_errf(eb, CS_EINVAL, "%s: too many segments", what);
            segs[n].off = start;
            segs[n].len = i - start;
            n++;
            start = i + 1;
        } else if (!uri_char(c) && !(allow_star && c == '*')) {
            return bad_char(eb, what, c, i);
        }
    }
    *nsegs = n;
    return CS_OK;
}

static cs_err
uri_segments(const char *uri, seg *segs, size_t *nsegs, cs_errbuf *eb)
{
    size_t len;
    cs_err rc;

    if (uri == NULL)
        return cs_errf(eb, CS_EINVAL, "uri is missing");
    len = strnlen(uri, CS_URI_MAX + 1);
    if (len > CS_URI_MAX)
        return cs_errf(eb, CS_EINVAL, "uri longer than %d bytes", CS_URI_MAX);
    if (strncmp(uri, CS_URI_SCHEME, CS_URI_SCHEME_LEN) != 0)
        return cs_errf(eb, CS_EINVAL, "uri must start with " CS_URI_SCHEME);
    rc = split_segments(uri, len, false, "uri", segs, nsegs, eb);
    if (rc != CS_OK)
        return rc;
    if (*nsegs < 3)
        return cs_errf(eb, CS_EINVAL,
                       "uri must be ctx://org/domain/id (found %zu segment%s)",
                       *nsegs, *nsegs == 1 ? "" : "s");
    return CS_OK;
}

cs_err
cs_uri_parse(const char *uri, cs_uri_parts *out, cs_errbuf *eb)
{
    seg segs[CS_URI_MAX_SEGS];
    size_t n = 0;
    cs_err rc = uri_segments(uri, segs, &n, eb);

    if (rc != CS_OK)
        return rc;
    if (out != NULL) {
        size_t idlen = strlen(uri) - segs[2].off;
        memcpy(out->org, uri + segs[0].off, segs[0].len);
        out->org[segs[0].len] = '\0';
        memcpy(out->domain, uri + segs[1].off, segs[1].len);
        out->domain[segs[1].len] = '\0';
        memcpy(out->id, uri + segs[2].off, idlen);
        out->id[idlen] = '\0';
    }
    return CS_OK;
}

static bool
is_dstar(const char *s, const seg *g)
{
    return g->len == 2 && s[g->off] == '*' && s[g->off + 1] == '*';
}

/* Splits a pattern; the bare "**" becomes the one segment "**" (for valid
 * URIs the same as the scheme followed by a "**" segment). */
static cs_err
pattern_segments(const char *pattern, seg *segs, size_t *nsegs, cs_errbuf *eb)
{
    size_t len;
    cs_err rc;

    if (pattern == NULL)
        return cs_errf(eb, CS_EINVAL, "pattern is missing");
    len = strnlen(pattern, CS_URI_MAX + 1);
    if (len > CS_URI_MAX)
        return cs_errf(eb, CS_EINVAL, "pattern longer than %d bytes", CS_URI_MAX);
    if (strcmp(pattern, "**") == 0) {
        segs[0].off = 0;
        segs[0].len = 2;
        *nsegs = 1;
        return CS_OK;
    }
    if (strncmp(pattern, CS_URI_SCHEME, CS_URI_SCHEME_LEN) != 0)
        return cs_errf(eb, CS_EINVAL,
                       "pattern must be \"**\" or start with " CS_URI_SCHEME);
    rc = split_segments(pattern, len, true, "pattern", segs, nsegs, eb);
    if (rc != CS_OK)
        return rc;
    for (size_t i = 0; i < *nsegs; i++) {
        const seg *g = &segs[i];
        if (is_dstar(pattern, g))
            continue;
        for (size_t k = 0; k + 1 < g->len; k++) {
            if (pattern[g->off + k] == '*' && pattern[g->off + k + 1] == '*')
                return cs_errf(eb, CS_EINVAL,
                               "pattern: \"**\" must be a whole segment "
                               "(segment at byte %zu mixes it with other "
                               "characters)", g->off);
        }
    }
    return CS_OK;
}

cs_err
cs_pattern_validate(const char *pattern, cs_errbuf *eb)
{
    seg segs[CS_URI_MAX_SEGS];
    size_t n = 0;

    return pattern_segments(pattern, segs, &n, eb);
}

/* Greedy glob of one pattern segment p against one text segment t: '*' in p
 * matches any run of t; any other p byte matches the same t byte, except
 * that a '*' in t (an inner wildcard, when covering) is only absorbed by a
 * '*' of p. Backtracks only to the last star: O(|p| * |t|) worst case. */
static bool
seg_glob(const char *p, size_t pl, const char *t, size_t tl)
{
    size_t pi = 0;
    size_t ti = 0;
    size_t star_p = SIZE_MAX;
    size_t star_t = 0;

    while (ti < tl) {
        if (pi < pl && p[pi] == '*') {
            star_p = pi++;
            star_t = ti;
        } else if (pi < pl && p[pi] == t[ti]) {
            pi++;
            ti++;
        } else if (star_p != SIZE_MAX) {
            pi = star_p + 1;
            ti = ++star_t;
        } else {
            return false;
        }
    }
    while (pi < pl && p[pi] == '*')
        pi++;
    return pi == pl;
}

/* Segment-level DP: does pattern p (segments ps) absorb text t (segments
 * ts)? A "**" of p absorbs any number of t segments; a "**" of t is only
 * absorbed by a "**" of p. cur[j] / next[j] say whether p segments i.. (and
 * i+1..) absorb t segments j..; rows are computed bottom-up. */
static bool
seg_seq_match(const char *p, const seg *ps, size_t np, const char *t,
              const seg *ts, size_t nt)
{
    bool row_a[CS_URI_MAX_SEGS + 1];
    bool row_b[CS_URI_MAX_SEGS + 1];
    bool *next = row_a;
    bool *cur = row_b;

    for (size_t j = 0; j <= nt; j++)
        next[j] = (j == nt);
    for (size_t i = np; i-- > 0;) {
        if (is_dstar(p, &ps[i])) {
            cur[nt] = next[nt];
            for (size_t j = nt; j-- > 0;)
                cur[j] = next[j] || cur[j + 1];
        } else {
            cur[nt] = false;
            for (size_t j = 0; j < nt; j++) {
                cur[j] = next[j + 1] && !is_dstar(t, &ts[j]) &&
                         seg_glob(p + ps[i].off, ps[i].len, t + ts[j].off,
                                  ts[j].len);
            }
        }
        bool *tmp = next;
        next = cur;
        cur = tmp;
    }
    return next[0];
}

bool
cs_pattern_match(const char *pattern, const char *uri)
{
    seg ps[CS_URI_MAX_SEGS];
    seg us[CS_URI_MAX_SEGS];
    size_t np = 0;
    size_t nu = 0;

    if (pattern_segments(pattern, ps, &np, NULL) != CS_OK)
        return false;
    if (uri_segments(uri, us, &nu, NULL) != CS_OK)
        return false;
    return seg_seq_match(pattern, ps, np, uri, us, nu);
}

bool
cs_pattern_covers(const char *outer, const char *inner)
{
    seg os[CS_URI_MAX_SEGS];
    seg is[CS_URI_MAX_SEGS];
    size_t no = 0;
    size_t ni = 0;

    if (pattern_segments(outer, os, &no, NULL) != CS_OK)
        return false;
    if (pattern_segments(inner, is, &ni, NULL) != CS_OK)
        return false;
    return seg_seq_match(outer, os, no, inner, is, ni);
}
