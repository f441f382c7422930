/* SPDX-License-Identifier: MIT
 * test_uri.c: URI parsing, pattern validation, matching and covering. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_test.h"
#include "cs_uri.h"

typedef struct uri_case {
    const char *uri;
    bool ok;
    const char *org, *domain, *id; /* when ok */
    const char *msg_part;          /* substring of the error, when !ok */
} uri_case;

static const uri_case uri_cases[] = {
    {"ctx://acme/hr/emp-1", true, "acme", "hr", "emp-1", NULL},
    {"ctx://acme/hr/a/b/c", true, "acme", "hr", "a/b/c", NULL},
    {"ctx://A.b_c-9/D/x.y", true, "A.b_c-9", "D", "x.y", NULL},
    {"ctx://a/b/c", true, "a", "b", "c", NULL},
    {"ctx://.../.../...", true, "...", "...", "...", NULL},
    {"ctx://a/b/-/_/.", true, "a", "b", "-/_/.", NULL},
    {"", false, NULL, NULL, NULL, "must start with ctx://"},
    {"ctx:/a/b/c", false, NULL, NULL, NULL, "must start with ctx://"},
    {"CTX://a/b/c", false, NULL, NULL, NULL, "must start with ctx://"},
    {"http://a/b/c", false, NULL, NULL, NULL, "must start with ctx://"},
    {" ctx://a/b/c", false, NULL, NULL, NULL, "must start with ctx://"},
    {"ctx://", false, NULL, NULL, NULL, "empty segment at byte 6"},
    {"ctx:///", false, NULL, NULL, NULL, "empty segment at byte 6"},
    {"ctx:///a/b/c", false, NULL, NULL, NULL, "empty segment at byte 6"},
    {"ctx://acme/hr//x", false, NULL, NULL, NULL, "empty segment at byte 14"},
    {"ctx://acme//hr/x", false, NULL, NULL, NULL, "empty segment at byte 11"},
    {"ctx://acme/hr/x//y", false, NULL, NULL, NULL, "empty segment at byte 16"},
    {"ctx://acme/hr/x/", false, NULL, NULL, NULL, "trailing slash at byte 15"},
    {"ctx://acme/hr/", false, NULL, NULL, NULL, "trailing slash at byte 13"},
    {"ctx://acme/hr", false, NULL, NULL, NULL, "found 2 segments"},
    {"ctx://acme", false, NULL, NULL, NULL, "found 1 segment)"},
    {"ctx://acme/h%r/x", false, NULL, NULL, NULL, "invalid character '%' at byte 12"},
    {"ctx://a%20b/c/d", false, NULL, NULL, NULL, "invalid character '%' at byte 7"},
    {"ctx://acme/hr/a b", false, NULL, NULL, NULL, "invalid character ' ' at byte 15"},
    {"ctx://acme/hr/a*", false, NULL, NULL, NULL, "invalid character '*' at byte 15"},
    {"ctx://acme/hr/a?b", false, NULL, NULL, NULL, "invalid character '?'"},
    {"ctx://acme/hr/a#b", false, NULL, NULL, NULL, "invalid character '#'"},
    {"ctx://acme/hr/a\\b", false, NULL, NULL, NULL, "invalid character '\\'"},
    {"ctx://acme/hr/caf\xc3\xa9", false, NULL, NULL, NULL, "invalid byte 0xc3 at byte 17"},
    {"ctx://acme/hr/a\tb", false, NULL, NULL, NULL, "invalid byte 0x09 at byte 15"},
    {"ctx://acme/hr/a\nb", false, NULL, NULL, NULL, "invalid byte 0x0a"},
    {"ctx://acme:80/hr/x", false, NULL, NULL, NULL, "invalid character ':' at byte 10"},
};

static void
test_uri_table(void)
{
    for (size_t i = 0; i < sizeof(uri_cases) / sizeof(uri_cases[0]); i++) {
        const uri_case *c = &uri_cases[i];
        cs_uri_parts p;
        cs_errbuf eb = {{0}};
        cs_err rc = cs_uri_parse(c->uri, &p, &eb);
        if (!CS_CHECK_INT_EQ(rc, c->ok ? CS_OK : CS_EINVAL))
            fprintf(stderr, "    uri: \"%s\" (%s)\n", c->uri, eb.msg);
        if (c->ok && rc == CS_OK) {
            CS_CHECK_STR_EQ(p.org, c->org);
            CS_CHECK_STR_EQ(p.domain, c->domain);
            CS_CHECK_STR_EQ(p.id, c->id);
        }
        if (!c->ok && !CS_CHECK(strstr(eb.msg, c->msg_part) != NULL))
            fprintf(stderr, "    uri \"%s\": message \"%s\" lacks \"%s\"\n",
                    c->uri, eb.msg, c->msg_part);
        /* out and eb are optional */
        CS_CHECK_INT_EQ(cs_uri_parse(c->uri, NULL, NULL),
                        c->ok ? CS_OK : CS_EINVAL);
    }
    CS_CHECK_INT_EQ(cs_uri_parse(NULL, NULL, NULL), CS_EINVAL);
    /* an embedded NUL ends the string: the rest is not looked at */
    CS_CHECK_INT_EQ(cs_uri_parse("ctx://a/b/c\0/", NULL, NULL), CS_OK);
}

/* Builds "ctx://o/d/xxxx..." of exactly len bytes. */
static void
make_uri(char *buf, size_t len)
{
    memcpy(buf, "ctx://o/d/", 10);
    memset(buf + 10, 'x', len - 10);
    buf[len] = '\0';
}

static void
test_uri_length(void)
{
    char buf[2100];
    cs_uri_parts p;
    cs_errbuf eb = {{0}};

    make_uri(buf, 1024);
    CS_CHECK_INT_EQ(cs_uri_parse(buf, &p, &eb), CS_OK);
    CS_CHECK_INT_EQ(strlen(p.id), 1014);
    make_uri(buf, 1025);
    CS_CHECK_INT_EQ(cs_uri_parse(buf, &p, &eb), CS_EINVAL);
    CS_CHECK_STR_EQ(eb.msg, "uri longer than 1024 bytes");
    make_uri(buf, 2000);
    CS_CHECK_INT_EQ(cs_uri_parse(buf, &p, &eb), CS_EINVAL);
    CS_CHECK_STR_EQ(eb.msg, "uri longer than 1024 bytes");

    /* longest possible id: the maximum number of segments */
    size_t n = 10;
    memcpy(buf, "ctx://o/d/", 10);
    while (n + 3 <= 1024) {
        buf[n++] = 'x';
        buf[n++] = '/';
    }
    buf[n++] = 'y';
    buf[n++] = 'y';
    buf[n] = '\0';
    CS_CHECK_INT_EQ(strlen(buf), 1024);
    CS_CHECK_INT_EQ(cs_uri_parse(buf, &p, NULL), CS_OK);
    CS_CHECK(cs_pattern_match("ctx://o/d/**", buf));
    CS_CHECK(cs_pattern_match("ctx://**/yy", buf));
    CS_CHECK(!cs_pattern_match("ctx://**/z", buf));
    CS_CHECK(cs_pattern_match(buf, buf));

    /* an org of 1018 bytes fits in the parts buffer */
    memcpy(buf, "ctx://", 6);
    memset(buf + 6, 'o', 1014);
    memcpy(buf + 1020, "/d/i", 5);
    CS_CHECK_INT_EQ(cs_uri_parse(buf, &p, NULL), CS_OK);
    CS_CHECK_INT_EQ(strlen(p.org), 1014);
    CS_CHECK_STR_EQ(p.id, "i");
}

typedef struct pat_case {
    const char *pattern;
    bool ok;
    const char *msg_part;
} pat_case;

static const pat_case pat_cases[] = {
    {"**", true, NULL},
    {"ctx://**", true, NULL},
    {"ctx://acme/**", true, NULL},
    {"ctx://acme/*/x", true, NULL},
    {"ctx://acme/hr/emp-*", true, NULL},
    {"ctx://*", true, NULL},
    {"ctx://a/**/z", true, NULL},
    {"ctx://**/**", true, NULL},
    {"ctx://a/*b*c*/d", true, NULL},
    {"ctx://acme/hr/emp-1", true, NULL},
    {"ctx://acme", true, NULL},
    {"", false, "must be \"**\" or start with ctx://"},
    {"*", false, "must be \"**\" or start with ctx://"},
    {"***", false, "must be \"**\" or start with ctx://"},
    {"** ", false, "must be \"**\" or start with ctx://"},
    {"acme/**", false, "must be \"**\" or start with ctx://"},
    {"ctx://", false, "empty segment at byte 6"},
    {"ctx:///**", false, "empty segment at byte 6"},
    {"ctx://a//b", false, "empty segment at byte 8"},
    {"ctx://a/**/", false, "trailing slash at byte 10"},
    {"ctx://a**b/c", false, "\"**\" must be a whole segment"},
    {"ctx://a/***", false, "\"**\" must be a whole segment"},
    {"ctx://a/**x", false, "\"**\" must be a whole segment"},
    {"ctx://a/x**", false, "\"**\" must be a whole segment"},
    {"ctx://a/*x**", false, "\"**\" must be a whole segment"},
    {"ctx://a/b?", false, "invalid character '?' at byte 9"},
    {"ctx://a/b%2A", false, "invalid character '%'"},
    {"ctx://a/\xff", false, "invalid byte 0xff at byte 8"},
    {"ctx://a/b c", false, "invalid character ' '"},
};

static void
test_pattern_table(void)
{
    for (size_t i = 0; i < sizeof(pat_cases) / sizeof(pat_cases[0]); i++) {
        const pat_case *c = &pat_cases[i];
        cs_errbuf eb = {{0}};
        cs_err rc = cs_pattern_validate(c->pattern, &eb);
        if (!CS_CHECK_INT_EQ(rc, c->ok ? CS_OK : CS_EINVAL))
            fprintf(stderr, "    pattern \"%s\" (%s)\n", c->pattern, eb.msg);
        if (!c->ok && !CS_CHECK(strstr(eb.msg, c->msg_part) != NULL))
            fprintf(stderr, "    pattern \"%s\": message \"%s\" lacks \"%s\"\n",
                    c->pattern, eb.msg, c->msg_part);
        if (!c->ok) {
            /* an invalid pattern matches nothing and covers nothing */
            CS_CHECK(!cs_pattern_match(c->pattern, "ctx://a/b/c"));
            CS_CHECK(!cs_pattern_covers(c->pattern, "ctx://a/b/c"));
            CS_CHECK(!cs_pattern_covers("**", c->pattern));
        }
    }
    CS_CHECK_INT_EQ(cs_pattern_validate(NULL, NULL), CS_EINVAL);

    char buf[1100];
    memcpy(buf, "ctx://", 6);
    memset(buf + 6, '*', 1018);
    buf[1024] = '\0';
    CS_CHECK_INT_EQ(cs_pattern_validate(buf, NULL), CS_EINVAL); /* "**" mixed */
    for (size_t i = 6; i < 1024; i++)
        buf[i] = (i % 2 == 0) ? '*' : 'a';
    CS_CHECK_INT_EQ(cs_pattern_validate(buf, NULL), CS_OK);
    buf[1024] = 'a';
    buf[1025] = '\0';
    cs_errbuf eb = {{0}};
    CS_CHECK_INT_EQ(cs_pattern_validate(buf, &eb), CS_EINVAL);
    CS_CHECK_STR_EQ(eb.msg, "pattern longer than 1024 bytes");
}

typedef struct match_case {
    const char *pattern;
    const char *uri;
    bool match;
} match_case;

static const match_case match_cases[] = {
    {"**", "ctx://a/b/c", true},
    {"**", "ctx://a/b/c/d/e/f", true},
    {"**", "ctx://a/b", false},       /* not a valid URI */
    {"**", "not a uri", false},
    {"ctx://**", "ctx://a/b/c", true},
    {"ctx://acme/**", "ctx://acme/x/y", true},
    {"ctx://acme/**", "ctx://acme/x/y/z", true},
    {"ctx://acme/**", "ctx://acmex/y/z", false},
    {"ctx://acme/**", "ctx://acm/x/y", false},
    {"ctx://acme/*/x", "ctx://acme/d/x", true},
    {"ctx://acme/*/x", "ctx://acme/d/e/x", false},
    {"ctx://acme/*/x", "ctx://acme/d/x/y", false},
    {"ctx://acme/hr/emp-*", "ctx://acme/hr/emp-1", true},
    {"ctx://acme/hr/emp-*", "ctx://acme/hr/emp-", true},
    {"ctx://acme/hr/emp-*", "ctx://acme/hr/emp-1/a", false},
    {"ctx://acme/hr/emp-*", "ctx://acme/hr/emp", false},
    {"ctx://acme/hr/emp-*", "ctx://acme/hr/xemp-1", false},
    {"ctx://a/**/z", "ctx://a/z/q", false},
    {"ctx://a/b/**/z", "ctx://a/b/z", true},      /* zero segments */
    {"ctx://a/**/z", "ctx://a/b/z", true},
    {"ctx://a/**/z", "ctx://a/b/c/z", true},
    {"ctx://a/**/z", "ctx://a/b/c/d/z", true},
    {"ctx://a/**/z", "ctx://a/b/c/zz", false},
    {"ctx://a/**/z", "ctx://a/b/z/c", false},
    {"ctx://a/**/z/**", "ctx://a/b/z/c", true},
    {"ctx://a/**/b/**/c", "ctx://a/b/c", true},
    {"ctx://a/**/b/**/c", "ctx://a/x/b/y/c", true},
    {"ctx://a/**/b/**/c", "ctx://a/x/y/c", false},
    {"ctx://*/*/*", "ctx://a/b/c", true},
    {"ctx://*/*/*", "ctx://a/b/c/d", false},
    {"ctx://*/*/**", "ctx://a/b/c/d", true},
    {"ctx://a/b/c", "ctx://a/b/c", true},
    {"ctx://a/b/c", "ctx://a/b/cd", false},
    {"ctx://a/b/c", "ctx://a/b/c/d", false},
    {"ctx://a/b.c/d", "ctx://a/b.c/d", true},
    {"ctx://a/b.c/d", "ctx://a/bxc/d", false},  /* '.' is literal */
    {"ctx://a/b/*.json", "ctx://a/b/x.json", true},
    {"ctx://a/b/*.json", "ctx://a/b/xjson", false},
    {"ctx://a/b/*.json", "ctx://a/b/.json", true},
    {"ctx://a/b/*x*y*", "ctx://a/b/axbyc", true},
    {"ctx://a/b/*x*y*", "ctx://a/b/aybxc", false},
    {"ctx://a/b/*", "ctx://a/b/c", true},
    {"ctx://a/b/**", "ctx://a/b/c", true},
    {"ctx://a/b/c/**", "ctx://a/b/c", true},     /* ** may be empty */
    {"ctx://A/b/c", "ctx://a/b/c", false},      /* case-sensitive */
    {"ctx://acme", "ctx://acme/x/y", false},
    {"ctx://a/b/c", "ctx://a/b/c/", false},     /* invalid uri */
    {"ctx://a/*/c", "ctx://a//c", false},
};

static void
test_match_table(void)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const match_case *c = &match_cases[i];
        if (!CS_CHECK(cs_pattern_match(c->pattern, c->uri) == c->match))
            fprintf(stderr, "    match(\"%s\", \"%s\") should be %s\n",
                    c->pattern, c->uri, c->match ? "true" : "false");
    }
    CS_CHECK(!cs_pattern_match(NULL, "ctx://a/b/c"));
    CS_CHECK(!cs_pattern_match("**", NULL));
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_pathological(void)
{
    char pat[1100];
    char uri[1100];
    size_t n;
    double t0 = now_s();

    /* 50 '*' segments then ** segments, against a deep URI that misses */
    n = 6;
    memcpy(pat, "ctx://", 6);
    for (int i = 0; i < 50; i++) {
        memcpy(pat + n, "*/**/", 5);
        n += 5;
    }
    memcpy(pat + n, "z", 2);
    CS_CHECK_INT_EQ(cs_pattern_validate(pat, NULL), CS_OK);
    n = 10;
    memcpy(uri, "ctx://o/d/", 10);
    while (n + 3 < 1024) {
        uri[n++] = 'a';
        uri[n++] = '/';
    }
    uri[n++] = 'y';
    uri[n] = '\0';
    CS_CHECK(!cs_pattern_match(pat, uri));
    uri[n - 1] = 'z';
    CS_CHECK(cs_pattern_match(pat, uri));

    /* "*a*a*a...*b" against "aaaa...a" inside one segment */
    memcpy(pat, "ctx://o/d/", 10);
    n = 10;
    while (n + 3 < 1024) {
        pat[n++] = '*';
        pat[n++] = 'a';
    }
    pat[n++] = '*';
    pat[n++] = 'b';
    pat[n] = '\0';
    CS_CHECK_INT_EQ(cs_pattern_validate(pat, NULL), CS_OK);
    make_uri(uri, 1024);
    memset(uri + 10, 'a', 1014);
    CS_CHECK(!cs_pattern_match(pat, uri));
    uri[1023] = 'b';
    CS_CHECK(cs_pattern_match(pat, uri));
    CS_CHECK(cs_pattern_covers(pat, pat));

    /* long runs of ** segments */
    memcpy(pat, "ctx://", 6);
    n = 6;
    while (n + 4 < 1024) {
        memcpy(pat + n, "**/", 3);
        n += 3;
    }
    memcpy(pat + n, "q", 2);
    CS_CHECK(!cs_pattern_match(pat, uri));
    CS_CHECK(!cs_pattern_covers(pat, "ctx://**"));
    CS_CHECK(cs_pattern_covers(pat, pat));
    for (int i = 0; i < 100; i++)
        CS_CHECK(!cs_pattern_match(pat, uri));

    double dt = now_s() - t0;
    if (!CS_CHECK(dt < 2.0))
        fprintf(stderr, "    pathological patterns took %.3f s\n", dt);
}

typedef struct cover_case {
    const char *outer;
    const char *inner;
    bool covers;
} cover_case;

static const cover_case cover_cases[] = {
    {"**", "**", true},
    {"**", "ctx://a/**", true},
    {"**", "ctx://a/b/c", true},
    {"**", "ctx://*/x/*", true},
    {"ctx://**", "**", true},
    {"ctx://a/**", "**", false},
    {"ctx://a/b/c", "**", false},
    {"ctx://a/**", "ctx://a/**", true},
    {"ctx://a/**", "ctx://a/b/**", true},
    {"ctx://a/**", "ctx://a/b/c", true},
    {"ctx://a/**", "ctx://a/*/c", true},
    {"ctx://a/**", "ctx://a/**/c", true},
    {"ctx://a/b/**", "ctx://a/**", false},
    {"ctx://a/b/**", "ctx://a/*/c", false},
    {"ctx://a/b/**", "ctx://a/b/c", true},
    {"ctx://a/b/**", "ctx://a/bb/c", false},
    {"ctx://a/b/c", "ctx://a/b/c", true},
    {"ctx://a/b/c", "ctx://a/b/d", false},
    {"ctx://a/b/c", "ctx://a/b/*", false},
    {"ctx://a/*/c", "ctx://a/b/c", true},
    {"ctx://a/*/c", "ctx://a/*/c", true},
    {"ctx://a/*/c", "ctx://a/**/c", false},
    {"ctx://a/*/c", "ctx://a/b*/c", true},
    {"ctx://a/b*/c", "ctx://a/*/c", false},
    {"ctx://a/b*/c", "ctx://a/bx*/c", true},
    {"ctx://a/*x/c", "ctx://a/*yx/c", true},
    {"ctx://a/*x/c", "ctx://a/*xy/c", false},
    {"ctx://a/*/*", "ctx://a/b/**", false},
    {"ctx://a/**/z", "ctx://a/b/c/z", true},
    {"ctx://a/**/z", "ctx://a/**/y/z", true},
    {"ctx://a/**/z", "ctx://a/b/**", false},
    {"ctx://a/hr/emp-*", "ctx://a/hr/emp-1", true},
    {"ctx://a/hr/emp-*", "ctx://a/hr/emp-1/x", false},
    {"ctx://a/b/c", "ctx://a/b/c/d", false},
    {"ctx://a/b/c/d", "ctx://a/b/c", false},
};

static void
test_covers_table(void)
{
    for (size_t i = 0; i < sizeof(cover_cases) / sizeof(cover_cases[0]); i++) {
        const cover_case *c = &cover_cases[i];
        if (!CS_CHECK(cs_pattern_covers(c->outer, c->inner) == c->covers))
            fprintf(stderr, "    covers(\"%s\", \"%s\") should be %s\n",
                    c->outer, c->inner, c->covers ? "true" : "false");
    }
    CS_CHECK(!cs_pattern_covers(NULL, "**"));
    CS_CHECK(!cs_pattern_covers("**", NULL));
    /* every pattern covers itself */
    for (size_t i = 0; i < sizeof(pat_cases) / sizeof(pat_cases[0]); i++) {
        if (pat_cases[i].ok)
            CS_CHECK(cs_pattern_covers(pat_cases[i].pattern, pat_cases[i].pattern));
    }
}

/* Soundness of covers() against match() on random small patterns and URIs:
 * covers(o, i) && match(i, u) must imply match(o, u). */
static void
random_seg(char *buf, size_t *n, bool pattern, unsigned *seed)
{
    static const char alpha[] = "ab.";
    int len = 1 + rand_r(seed) % 3;
    if (pattern && rand_r(seed) % 5 == 0) {
        memcpy(buf + *n, "**", 2);
        *n += 2;
        return;
    }
    for (int i = 0; i < len; i++) {
        char c = alpha[rand_r(seed) % 3];
        if (pattern && rand_r(seed) % 4 == 0 &&
            (*n == 0 || buf[*n - 1] != '*'))
            c = '*';
        buf[(*n)++] = c;
    }
}

static void
random_str(char *buf, bool pattern, unsigned *seed)
{
    size_t n = 6;
    int segs = (pattern ? 1 : 3) + rand_r(seed) % 3;
    memcpy(buf, "ctx://", 6);
    for (int s = 0; s < segs; s++) {
        if (s > 0)
            buf[n++] = '/';
        random_seg(buf, &n, pattern, seed);
    }
    buf[n] = '\0';
}

static void
test_covers_random(void)
{
    unsigned seed = 12345;
    unsigned long violations = 0;
    unsigned long covered = 0;
    unsigned long matched = 0;

    for (int k = 0; k < 3000; k++) {
        char outer[64], inner[64];
        random_str(outer, true, &seed);
        random_str(inner, true, &seed);
        if (cs_pattern_validate(outer, NULL) != CS_OK ||
            cs_pattern_validate(inner, NULL) != CS_OK)
            continue;
        /* the identity: a URI used as a pattern covers exactly itself */
        bool cov = cs_pattern_covers(outer, inner);
        covered += cov;
        for (int u = 0; u < 20; u++) {
            char uri[64];
            random_str(uri, false, &seed);
            bool mi = cs_pattern_match(inner, uri);
            matched += mi;
            if (cov && mi && !cs_pattern_match(outer, uri)) {
                violations++;
                fprintf(stderr, "    covers(%s, %s) but %s\n", outer, inner, uri);
            }
            if (cs_pattern_covers(uri, uri) != true)
                violations++;
            /* a URI as the inner pattern: covers == match */
            if (cs_pattern_covers(outer, uri) != cs_pattern_match(outer, uri))
                violations++;
        }
    }
    CS_CHECK_INT_EQ(violations, 0);
    CS_CHECK(covered > 50);   /* the random set exercised both outcomes */
    CS_CHECK(matched > 500);
}

int
main(void)
{
    test_uri_table();
    test_uri_length();
    test_pattern_table();
    test_match_table();
    test_pathological();
    test_covers_table();
    test_covers_random();
    return cs_test_summary();
}
