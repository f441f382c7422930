/* SPDX-License-Identifier: MIT
 * test_diff.c: line diff, unified output, and a randomized comparison with
 * GNU diff --minimal (minimality) and GNU patch (the unified output applies
 * byte-for-byte). diff and patch must be installed: the test fails, loudly,
 * when they are not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cs_diff.h"
#include "cs_test.h"

/* ---- helpers */

typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf;

static void
buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = np;
        b->cap = ncap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Rebuilds one side ('-' = a, '+' = b) from the ops. */
static buf
rebuild(const cs_diff *d, char side)
{
    buf b = {0};
    buf_add(&b, "", 0);
    for (size_t i = 0; i < cs_diff_count(d); i++) {
        const cs_diff_op *op = cs_diff_get(d, i);
        if (op->op != ' ' && op->op != side)
            continue;
        buf_add(&b, op->line, op->len);
        if (!op->no_newline)
            buf_add(&b, "\n", 1);
    }
    return b;
}

/* Diffs a and b and checks the ops: both texts rebuilt, the stats agree,
 * no_newline only on last lines. Returns the diff (caller frees) or NULL. */
static cs_diff *
check_diff(const char *a, size_t alen, const char *b, size_t blen)
{
    cs_diff *d = NULL;
    if (!CS_CHECK_INT_EQ(cs_diff_lines(a, alen, b, blen, &d), CS_OK))
        return NULL;
    buf ra = rebuild(d, '-');
    buf rb = rebuild(d, '+');
    CS_CHECK(ra.len == alen && memcmp(ra.p, a ? a : "", alen) == 0);
    CS_CHECK(rb.len == blen && memcmp(rb.p, b ? b : "", blen) == 0);
    free(ra.p);
    free(rb.p);
    size_t add = 0, rem = 0, same = 0;
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add + rem + same, cs_diff_count(d));
    size_t cadd = 0, crem = 0;
    for (size_t i = 0; i < cs_diff_count(d); i++) {
        const cs_diff_op *op = cs_diff_get(d, i);
        cadd += op->op == '+';
        crem += op->op == '-';
    }
    CS_CHECK_INT_EQ(cadd, add);
    CS_CHECK_INT_EQ(crem, rem);
    CS_CHECK(cs_diff_get(d, cs_diff_count(d)) == NULL);
    return d;
}

static char *
unified(const char *a, const char *b, int context)
{
    cs_diff *d = check_diff(a, strlen(a), b, strlen(b));
    char *u = NULL;
    size_t ulen = 0;
    if (d == NULL)
        return NULL;
    CS_CHECK_INT_EQ(cs_diff_unified(d, "A", "B", context, &u, &ulen), CS_OK);
    if (u)
        CS_CHECK_INT_EQ(ulen, strlen(u));
    cs_diff_free(d);
    return u;
}

static void
check_unified(const char *a, const char *b, int context, const char *want)
{
    char *u = unified(a, b, context);
    if (!CS_CHECK_STR_EQ(u, want))
        fprintf(stderr, "    a=\"%s\" b=\"%s\" context=%d\n", a, b, context);
    free(u);
}

/* ---- hand cases */

static void
test_hand(void)
{
    cs_diff *d;
    size_t add, rem, same;

    /* empty vs empty */
    d = check_diff(NULL, 0, NULL, 0);
    CS_CHECK_INT_EQ(cs_diff_count(d), 0);
    cs_diff_free(d);
    check_unified("", "", 3, "");

    /* empty vs text, text vs empty */
    d = check_diff("", 0, "a\nb\n", 4);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add, 2);
    CS_CHECK_INT_EQ(rem, 0);
    CS_CHECK_INT_EQ(same, 0);
    CS_CHECK(cs_diff_get(d, 0)->op == '+' && cs_diff_get(d, 0)->len == 1 &&
             cs_diff_get(d, 0)->line[0] == 'a');
    cs_diff_free(d);
    check_unified("", "a\nb\n", 3, "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    check_unified("a\nb\n", "", 3, "--- A\n+++ B\n@@ -1,2 +0,0 @@\n-a\n-b\n");
    check_unified("", "a", 3,
                  "--- A\n+++ B\n@@ -0,0 +1 @@\n+a\n\\ No newline at end of file\n");
    check_unified("", "a\nb", 3,
                  "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+a\n+b\n"
                  "\\ No newline at end of file\n");

    /* no final newline on either side */
    check_unified("a\nb\n", "a\nb", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n"
                  "\\ No newline at end of file\n");
    check_unified("a\nb", "a\nb\n", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n"
                  "\\ No newline at end of file\n+b\n");
    check_unified("a\nb", "a\nc", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n"
                  "\\ No newline at end of file\n+c\n"
                  "\\ No newline at end of file\n");
    check_unified("x\na", "y\na", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n-x\n+y\n a\n"
                  "\\ No newline at end of file\n");
    d = check_diff("a\nb", 3, "a\nb", 3);
    CS_CHECK_INT_EQ(cs_diff_count(d), 2);
    CS_CHECK(cs_diff_get(d, 1)->no_newline);
    CS_CHECK(!cs_diff_get(d, 0)->no_newline);
    cs_diff_free(d);

    /* a lone newline is one empty line; "\n\n" two */
    d = check_diff("\n", 1, "\n\n", 2);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add, 1);
    CS_CHECK_INT_EQ(same, 1);
    CS_CHECK_INT_EQ(cs_diff_get(d, 0)->len, 0);
    cs_diff_free(d);

    /* identical */
    d = check_diff("x\ny\nz\n", 6, "x\ny\nz\n", 6);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add + rem, 0);
    CS_CHECK_INT_EQ(same, 3);
    cs_diff_free(d);
    check_unified("x\ny\nz\n", "x\ny\nz\n", 3, "");
    check_unified("x\ny", "x\ny", 3, "");

    /* all changed: removals first */
    d = check_diff("a\nb\n", 4, "c\nd\n", 4);
    CS_CHECK_INT_EQ(cs_diff_count(d), 4);
    CS_CHECK(cs_diff_get(d, 0)->op == '-' && cs_diff_get(d, 1)->op == '-' &&
             cs_diff_get(d, 2)->op == '+' && cs_diff_get(d, 3)->op == '+');
    cs_diff_free(d);
    check_unified("a\nb\n", "c\nd\n", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n-a\n-b\n+c\n+d\n");

    /* CRLF stays part of the line */
    d = check_diff("x\r\ny\n", 5, "x\ny\n", 4);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add, 1);
    CS_CHECK_INT_EQ(rem, 1);
    CS_CHECK_INT_EQ(same, 1);
    CS_CHECK_INT_EQ(cs_diff_get(d, 0)->len, 2);
    CS_CHECK(cs_diff_get(d, 0)->line[1] == '\r');
    cs_diff_free(d);
    check_unified("x\r\ny\n", "x\ny\n", 3,
                  "--- A\n+++ B\n@@ -1,2 +1,2 @@\n-x\r\n+x\n y\n");

    /* NUL bytes inside lines are compared and counted */
    d = check_diff("a\0b\nc\n", 6, "a\0c\nc\n", 6);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(add, 1);
    CS_CHECK_INT_EQ(same, 1);
    CS_CHECK_INT_EQ(cs_diff_get(d, 0)->len, 3);
    cs_diff_free(d);

    /* a minimal diff, with the classic Myers example ABCABBA -> CBABAC */
    d = check_diff("A\nB\nC\nA\nB\nB\nA\n", 14, "C\nB\nA\nB\nA\nC\n", 12);
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK_INT_EQ(rem, 3);
    CS_CHECK_INT_EQ(add, 2);
    CS_CHECK_INT_EQ(same, 4);
    cs_diff_free(d);

    /* hunks: GNU joins changes separated by <= 2*context lines */
    const char *s1 = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n"
                     "17\n18\n19\n20\n";
    const char *s2 = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\n12\n13\n14\n"
                     "fifteen\n16\n17\n18\n19\n20\n";
    const char *s3 = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\ntwelve\n13\n14\n"
                     "15\n16\n17\n18\n19\n20\n";
    check_unified(s1, s2, 3,
                  "--- A\n+++ B\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n"
                  " 7\n 8\n@@ -12,7 +12,7 @@\n 12\n 13\n 14\n-15\n+fifteen\n"
                  " 16\n 17\n 18\n");
    check_unified(s1, s3, 3,
                  "--- A\n+++ B\n@@ -2,14 +2,14 @@\n 2\n 3\n 4\n-5\n+five\n"
                  " 6\n 7\n 8\n 9\n 10\n 11\n-12\n+twelve\n 13\n 14\n 15\n");
    check_unified(s1, s3, 0,
                  "--- A\n+++ B\n@@ -5 +5 @@\n-5\n+five\n@@ -12 +12 @@\n-12\n"
                  "+twelve\n");
    check_unified(s1, s3, 1,
                  "--- A\n+++ B\n@@ -4,3 +4,3 @@\n 4\n-5\n+five\n 6\n"
                  "@@ -11,3 +11,3 @@\n 11\n-12\n+twelve\n 13\n");
    check_unified("a\nb\nc\n", "a\nc\n", 0, "--- A\n+++ B\n@@ -2 +1,0 @@\n-b\n");
    check_unified("a\nc\n", "a\nb\nc\n", 0, "--- A\n+++ B\n@@ -1,0 +2 @@\n+b\n");

    /* argument checks */
    d = NULL;
    CS_CHECK_INT_EQ(cs_diff_lines(NULL, 1, "", 0, &d), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_diff_lines("", 0, "", 0, NULL), CS_EINVAL);
    CS_CHECK(d == NULL);
    d = check_diff("a\n", 2, "b\n", 2);
    char *u = NULL;
    CS_CHECK_INT_EQ(cs_diff_unified(d, "A", "B", -1, &u, NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_diff_unified(d, "A\nx", "B", 3, &u, NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_diff_unified(NULL, "A", "B", 3, &u, NULL), CS_EINVAL);
    CS_CHECK(u == NULL);
    CS_CHECK_INT_EQ(cs_diff_unified(d, NULL, NULL, 3, &u, NULL), CS_OK);
    CS_CHECK_STR_EQ(u, "--- a\n+++ b\n@@ -1 +1 @@\n-a\n+b\n");
    free(u);
    cs_diff_free(d);
    cs_diff_free(NULL);
    CS_CHECK_INT_EQ(cs_diff_count(NULL), 0);
    CS_CHECK(cs_diff_get(NULL, 0) == NULL);
}

/* ---- limits and big inputs */

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_limits(void)
{
    size_t n = CS_DIFF_MAX_LINES;
    char *nl = malloc(n + 1);
    cs_diff *d = NULL;

    if (!CS_CHECK(nl != NULL))
        return;
    memset(nl, '\n', n + 1);
    /* exactly at the limit: fine; one more line: CS_ETOOBIG */
    CS_CHECK_INT_EQ(cs_diff_lines(nl, n / 2, nl, n / 2, &d), CS_OK);
    CS_CHECK_INT_EQ(cs_diff_count(d), n / 2);
    cs_diff_free(d);
    d = NULL;
    CS_CHECK_INT_EQ(cs_diff_lines(nl, n / 2, nl, n / 2 + 1, &d), CS_ETOOBIG);
    CS_CHECK(d == NULL);
    CS_CHECK_INT_EQ(cs_diff_lines(nl, n + 1, "", 0, &d), CS_ETOOBIG);
    free(nl);
}

static unsigned
rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void
test_big(void)
{
    /* two ~8 MiB texts of 200k lines with scattered edits */
    size_t nlines = 200000;
    buf a = {0}, b = {0};
    unsigned seed = 7;
    char line[64];

    for (size_t i = 0; i < nlines; i++) {
        int len = snprintf(line, sizeof(line),
                           "line %zu of a fairly long text file, padding\n", i);
        buf_add(&a, line, (size_t)len);
        unsigned r = rnd(&seed) % 100;
        if (r == 0)
            continue; /* removed */
        if (r == 1)
            buf_add(&b, "inserted line\n", 14);
        if (r == 2)
            len = snprintf(line, sizeof(line), "changed %zu\n", i);
        buf_add(&b, line, (size_t)len);
    }
    double t0 = now_s();
    cs_diff *d = check_diff(a.p, a.len, b.p, b.len);
    double dt = now_s() - t0;
    if (!CS_CHECK(dt < 10.0))
        fprintf(stderr, "    big diff took %.2f s\n", dt);
    size_t add, rem, same;
    cs_diff_stats(d, &add, &rem, &same);
    CS_CHECK(rem >= 3000 && rem <= 5000);
    CS_CHECK(same > 190000);
    cs_diff_free(d);

    /* worst case for Myers: long random texts over two distinct lines (the
     * edit distance is huge, the too-expensive split kicks in) */
    a.len = b.len = 0;
    for (size_t i = 0; i < 60000; i++) {
        buf_add(&a, rnd(&seed) & 1 ? "x\n" : "y\n", 2);
        buf_add(&b, rnd(&seed) & 1 ? "x\n" : "y\n", 2);
    }
    t0 = now_s();
    d = check_diff(a.p, a.len, b.p, b.len);
    dt = now_s() - t0;
    if (!CS_CHECK(dt < 20.0))
        fprintf(stderr, "    adversarial diff took %.2f s\n", dt);
    cs_diff_free(d);
    free(a.p);
    free(b.p);
}

/* ---- randomized comparison against GNU diff and patch */

static int
write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    buf b = {0};
    char tmp[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    buf_add(&b, "", 0);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_add(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return b.p;
}

/* Counts '+' and '-' lines of a unified diff, skipping the two headers. */
static void
count_changes(const char *u, size_t len, size_t *add, size_t *rem)
{
    size_t lineno = 0;
    *add = *rem = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(u + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - u) : len;
        if (lineno >= 2 && end > i) {
            *add += u[i] == '+';
            *rem += u[i] == '-';
        }
        lineno++;
        i = end + 1;
    }
}

static bool
tools_present(void)
{
    int d = system("diff --version >/dev/null 2>&1");
    int p = system("patch --version >/dev/null 2>&1");
    if (!CS_CHECK(d == 0 && p == 0)) {
        fprintf(stderr, "    GNU diff and patch are required by this test "
                        "(install diffutils and patch)\n");
        return false;
    }
    return true;
}

static void
random_text(buf *t, unsigned *seed)
{
    static const char *const pool[] = {"a", "b", "c", "d", "", "a\r",
                                       "--- x", "+++ y", "@@ z", " sp",
                                       "\\ q", "-", "+"};
    size_t npool = 4 + rnd(seed) % (sizeof(pool) / sizeof(pool[0]) - 3);
    size_t n = rnd(seed) % 14;
    t->len = 0;
    buf_add(t, "", 0);
    for (size_t i = 0; i < n; i++) {
        const char *l = pool[rnd(seed) % npool];
        buf_add(t, l, strlen(l));
        if (i + 1 < n || rnd(seed) % 3 != 0)
            buf_add(t, "\n", 1);
    }
}

/* b derived from a by a few edits, so that diffs are local */
static void
mutate_text(const buf *a, buf *b, unsigned *seed)
{
    b->len = 0;
    buf_add(b, "", 0);
    for (size_t i = 0; i < a->len; i++) {
        unsigned r = rnd(seed) % 10;
        if (r == 0 && a->p[i] != '\n')
            continue;
        if (r == 1)
            buf_add(b, "c\n", 2);
        buf_add(b, &a->p[i], 1);
    }
    if (rnd(seed) % 4 == 0) {
        if (b->len > 0 && b->p[b->len - 1] == '\n')
            b->len--;
        else
            buf_add(b, "\n", 1);
    }
}

static void
test_random_vs_gnu(void)
{
    char dir[] = "/tmp/cs_test_diff.XXXXXX";
    char pa[64], pb[64], pu[64], pd[64], po[64], pr[64], cmd[512];
    unsigned seed = 20240601;
    buf a = {0}, b = {0};
    int cases = 0, mism_min = 0, mism_patch = 0, mism_rebuild = 0;

    if (!tools_present())
        return;
    if (!CS_CHECK(mkdtemp(dir) != NULL))
        return;
    snprintf(pa, sizeof(pa), "%s/A", dir);
    snprintf(pb, sizeof(pb), "%s/B", dir);
    snprintf(pu, sizeof(pu), "%s/U", dir);
    snprintf(pd, sizeof(pd), "%s/D", dir);
    snprintf(po, sizeof(po), "%s/OUT", dir);
    snprintf(pr, sizeof(pr), "%s/REJ", dir);

    for (int k = 0; k < 400; k++) {
        random_text(&a, &seed);
        if (k % 2)
            mutate_text(&a, &b, &seed);
        else
            random_text(&b, &seed);
        int context = k % 5 == 4 ? (int)(rnd(&seed) % 3) : 3;

        cs_diff *d = NULL;
        if (cs_diff_lines(a.p, a.len, b.p, b.len, &d) != CS_OK) {
            mism_rebuild++;
            continue;
        }
        buf ra = rebuild(d, '-'), rb = rebuild(d, '+');
        if (ra.len != a.len || memcmp(ra.p, a.p, a.len) != 0 ||
            rb.len != b.len || memcmp(rb.p, b.p, b.len) != 0)
            mism_rebuild++;
        free(ra.p);
        free(rb.p);
        size_t add = 0, rem = 0;
        cs_diff_stats(d, &add, &rem, NULL);
        char *u = NULL;
        size_t ulen = 0;
        cs_err rc = cs_diff_unified(d, "A", "B", context, &u, &ulen);
        cs_diff_free(d);
        if (rc != CS_OK) {
            mism_patch++;
            continue;
        }
        cases++;
        if (write_file(pa, a.p, a.len) || write_file(pb, b.p, b.len) ||
            write_file(pu, u, ulen)) {
            CS_CHECK(!"cannot write temp files");
            free(u);
            break;
        }

        /* (2) minimality: as many changed lines as diff --minimal */
        snprintf(cmd, sizeof(cmd), "diff --minimal -U%d %s %s > %s", context,
                 pa, pb, pd);
        int st = system(cmd);
        size_t dlen = 0;
        char *gd = read_file(pd, &dlen);
        size_t gadd = 0, grem = 0;
        if (gd)
            count_changes(gd, dlen, &gadd, &grem);
        if (gd == NULL || st == -1 || gadd != add || grem != rem) {
            mism_min++;
            fprintf(stderr, "    case %d: ours +%zu -%zu, diff --minimal +%zu -%zu\n",
                    k, add, rem, gadd, grem);
        }
        /* identical texts: empty output, as diff prints nothing */
        if ((add + rem == 0) != (ulen == 0) || (dlen == 0) != (ulen == 0))
            mism_patch++;
        free(gd);

        /* (3) GNU patch applies our output to a and gives b exactly */
        if (ulen > 0) {
            unlink(po);
            snprintf(cmd, sizeof(cmd),
                     "patch -s -N -F0 --no-backup-if-mismatch -r %s -o %s %s %s "
                     "</dev/null >/dev/null 2>&1", pr, po, pa, pu);
            st = system(cmd);
            size_t olen = 0;
            char *o = read_file(po, &olen);
            if (st != 0 || o == NULL || olen != b.len ||
                memcmp(o, b.p, b.len) != 0) {
                mism_patch++;
                fprintf(stderr, "    case %d: patch rc %d did not rebuild b\n%s",
                        k, st, u);
            }
            free(o);
        }
        free(u);
    }
    CS_CHECK(cases >= 300);
    CS_CHECK_INT_EQ(mism_rebuild, 0);
    CS_CHECK_INT_EQ(mism_min, 0);
    CS_CHECK_INT_EQ(mism_patch, 0);
    printf("random cases vs GNU diff/patch: %d\n", cases);
    unlink(pa);
    unlink(pb);
    unlink(pu);
    unlink(pd);
    unlink(po);
    unlink(pr);
    rmdir(dir);
    free(a.p);
    free(b.p);
}

/* Randomized rebuild + minimality against a DP LCS, without processes. */
static size_t
lcs_len(const char *a, size_t alen, const char *b, size_t blen)
{
    /* split both sides; a line's identity includes "no final newline" */
    size_t na = 0, nb = 0;
    const char *la[64], *lb[64];
    size_t lla[64], llb[64];
    bool ea[64], eb[64];
    for (int side = 0; side < 2; side++) {
        const char *t = side ? b : a;
        size_t len = side ? blen : alen;
        size_t *n = side ? &nb : &na;
        for (size_t i = 0; i < len && *n < 64;) {
            const char *nl = memchr(t + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - t) : len;
            (side ? lb : la)[*n] = t + i;
            (side ? llb : lla)[*n] = end - i;
            (side ? eb : ea)[*n] = nl == NULL;
            (*n)++;
            i = end + 1;
        }
    }
    size_t tab[65][65];
    for (size_t i = na + 1; i-- > 0;) {
        for (size_t j = nb + 1; j-- > 0;) {
            if (i == na || j == nb)
                tab[i][j] = 0;
            else if (lla[i] == llb[j] && ea[i] == eb[j] &&
                     memcmp(la[i], lb[j], lla[i]) == 0)
                tab[i][j] = 1 + tab[i + 1][j + 1];
            else
                tab[i][j] = tab[i + 1][j] > tab[i][j + 1] ? tab[i + 1][j]
                                                          : tab[i][j + 1];
        }
    }
    return tab[0][0];
}

static void
test_random_lcs(void)
{
    unsigned seed = 99;
    buf a = {0}, b = {0};
    int bad = 0;
    for (int k = 0; k < 3000; k++) {
        random_text(&a, &seed);
        if (k % 3 == 0)
            mutate_text(&a, &b, &seed);
        else
            random_text(&b, &seed);
        cs_diff *d = NULL;
        if (cs_diff_lines(a.p, a.len, b.p, b.len, &d) != CS_OK) {
            bad++;
            continue;
        }
        buf ra = rebuild(d, '-'), rb = rebuild(d, '+');
        size_t same = 0;
        cs_diff_stats(d, NULL, NULL, &same);
        if (ra.len != a.len || memcmp(ra.p, a.p, a.len) != 0 ||
            rb.len != b.len || memcmp(rb.p, b.p, b.len) != 0 ||
            same != lcs_len(a.p, a.len, b.p, b.len))
            bad++;
        free(ra.p);
        free(rb.p);
        cs_diff_free(d);
    }
    CS_CHECK_INT_EQ(bad, 0);
    free(a.p);
    free(b.p);
}

int
main(void)
{
    test_hand();
    test_limits();
    test_big();
    test_random_lcs();
    test_random_vs_gnu();
    return cs_test_summary();
}
