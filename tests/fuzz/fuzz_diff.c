/* SPDX-License-Identifier: MIT
 * fuzz_diff.c: libFuzzer target for cs_diff.
 *
 * The input is split at its first NUL byte (or in half when there is none)
 * into texts a and b. The ops must rebuild both texts byte-for-byte and agree
 * with the stats; the unified output (context from the first byte) must be
 * empty exactly when nothing changed, and applying it to a with the small
 * strict patcher below (no fuzz, no offsets) must give b. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

typedef struct text {
    char *p;
    size_t len;
} text;

static void
put(text *t, const char *s, size_t n)
{
    if (n > 0)
        memcpy(t->p + t->len, s, n);
    t->len += n;
}

/* Rebuilds side '-' (a) or '+' (b) from the ops into t (big enough). */
static void
rebuild(const cs_diff *d, char side, text *t)
{
    t->len = 0;
    for (size_t i = 0; i < cs_diff_count(d); i++) {
        const cs_diff_op *op = cs_diff_get(d, i);
        CHECK(op->op == ' ' || op->op == '+' || op->op == '-');
        if (op->op != ' ' && op->op != side)
            continue;
        put(t, op->line, op->len);
        if (!op->no_newline)
            put(t, "\n", 1);
    }
}

/* Next line of u from *pos (without its '\n'); false at the end. */
static bool
next_line(const char *u, size_t ulen, size_t *pos, const char **line,
          size_t *len)
{
    if (*pos >= ulen)
        return false;
    const char *nl = memchr(u + *pos, '\n', ulen - *pos);
    CHECK(nl != NULL); /* every output line ends with '\n' */
    *line = u + *pos;
    *len = (size_t)(nl - *line);
    *pos += *len + 1;
    return true;
}

static size_t
parse_num(const char **s)
{
    size_t v = 0;
    CHECK(**s >= '0' && **s <= '9');
    while (**s >= '0' && **s <= '9')
        v = v * 10 + (size_t)(*(*s)++ - '0');
    return v;
}

/* "-l,s" or "-l": start line (1-based, or the line before when s == 0). */
static void
parse_range(const char **s, size_t *start, size_t *count)
{
    *start = parse_num(s);
    *count = 1;
    if (**s == ',') {
        (*s)++;
        *count = parse_num(s);
    }
}

/* Applies unified diff u to a (with its lines) strictly; output into out. */
static void
apply_unified(const char *a, size_t alen, const char *u, size_t ulen,
              text *out)
{
    size_t pos = 0, apos = 0, aline = 0; /* a consumed up to apos / aline */
    const char *l;
    size_t n;
    bool last_was_a = false, last_was_b = false;
    size_t bline = 0;           /* b lines written so far */
    size_t want_a = 0, want_b = 0; /* lines the current hunk still owes */

    out->len = 0;
    CHECK(next_line(u, ulen, &pos, &l, &n) && n >= 4 && memcmp(l, "--- ", 4) == 0);
    CHECK(next_line(u, ulen, &pos, &l, &n) && n >= 4 && memcmp(l, "+++ ", 4) == 0);
    while (next_line(u, ulen, &pos, &l, &n)) {
        if (n >= 4 && memcmp(l, "@@ -", 4) == 0) {
            const char *s = l + 4;
            size_t as, ac, bs, bc;
            parse_range(&s, &as, &ac);
            CHECK(*s++ == ' ' && *s++ == '+');
            parse_range(&s, &bs, &bc);
            CHECK(memcmp(s, " @@", 3) == 0 && (size_t)(s + 3 - l) == n);
            CHECK(want_a == 0 && want_b == 0);
            size_t first = ac == 0 ? as : as - 1; /* 0-based first a line */
            CHECK(first >= aline);
            while (aline < first) { /* copy unchanged a lines */
                const char *nl = memchr(a + apos, '\n', alen - apos);
                size_t e = nl ? (size_t)(nl - a) + 1 : alen;
                CHECK(apos < alen);
                put(out, a + apos, e - apos);
                apos = e;
                aline++;
                bline++;
            }
            CHECK((bc == 0 ? bs : bs - 1) == bline);
            CHECK(ac + bc > 0);
            want_a = ac;
            want_b = bc;
            last_was_a = last_was_b = false;
            continue;
        }
        CHECK(n >= 1);
        if (l[0] == '\\') {
            static const char nonl[] = "\\ No newline at end of file";
            CHECK(n == sizeof(nonl) - 1 && memcmp(l, nonl, n) == 0);
            CHECK(last_was_a || last_was_b);
            if (last_was_a) { /* the a line just consumed had no '\n' */
                CHECK(apos == alen && (alen == 0 || a[alen - 1] != '\n'));
            }
            if (last_was_b) {
                CHECK(out->len > 0 && out->p[out->len - 1] == '\n');
                out->len--;
            }
            last_was_a = last_was_b = false;
            continue;
        }
        CHECK(l[0] == ' ' || l[0] == '-' || l[0] == '+');
        last_was_a = last_was_b = false;
        if (l[0] != '+') { /* consume one line of a, which must match */
            CHECK(apos < alen && want_a > 0);
            want_a--;
            const char *nl = memchr(a + apos, '\n', alen - apos);
            size_t e = nl ? (size_t)(nl - a) : alen;
            CHECK(e - apos == n - 1 && memcmp(a + apos, l + 1, n - 1) == 0);
            apos = nl ? e + 1 : alen;
            aline++;
            last_was_a = nl == NULL;
            /* a context line that lacks '\n' in a lacks it in b too */
        }
        if (l[0] != '-') {
            CHECK(want_b > 0);
            want_b--;
            bline++;
            put(out, l + 1, n - 1);
            put(out, "\n", 1);
            last_was_b = true;
        }
    }
    CHECK(want_a == 0 && want_b == 0);
    put(out, a + apos, alen - apos); /* trailing unchanged lines */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *z = memchr(in, '\0', size);
    size_t alen = z ? (size_t)(z - in) : size / 2;
    const char *a = in, *b = in + alen + (z ? 1 : 0);
    size_t blen = size - alen - (z ? 1 : 0);
    int context = size > 0 ? data[0] % 5 : 3;
    cs_diff *d = NULL;
    char *u = NULL;
    size_t ulen = 0;
    text t = {malloc(size + 2), 0};

    CHECK(t.p != NULL);
    CHECK(cs_diff_lines(a, alen, b, blen, &d) == CS_OK);
    rebuild(d, '-', &t);
    CHECK(t.len == alen && memcmp(t.p, a, alen) == 0);
    rebuild(d, '+', &t);
    CHECK(t.len == blen && memcmp(t.p, b, blen) == 0);
    size_t add, rem, same, cadd = 0, crem = 0;
    cs_diff_stats(d, &add, &rem, &same);
    for (size_t i = 0; i < cs_diff_count(d); i++) {
        cadd += cs_diff_get(d, i)->op == '+';
        crem += cs_diff_get(d, i)->op == '-';
    }
    CHECK(cadd == add && crem == rem && add + rem + same == cs_diff_count(d));

    CHECK(cs_diff_unified(d, "a", "b", context, &u, &ulen) == CS_OK);
    CHECK(u[ulen] == '\0');
    CHECK((ulen == 0) == (add + rem == 0));
    if (ulen > 0) {
        text o = {malloc(ulen + alen + 2), 0};
        CHECK(o.p != NULL);
        apply_unified(a, alen, u, ulen, &o);
        CHECK(o.len == blen && memcmp(o.p, b, blen) == 0);
        free(o.p);
    }
    free(u);
    free(t.p);
    cs_diff_free(d);
    return 0;
}
