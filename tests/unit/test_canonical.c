/* SPDX-License-Identifier: MIT
 * test_canonical.c: cs_json_canonical as RFC 8785 (JSON Canonicalization
 * Scheme): the RFC's examples and number table, key order by UTF-16 code
 * units, string escapes, integers (kept exact: our documented deviation),
 * depth, 2000 random doubles (round trip, shortest), and a byte-for-byte
 * cross-check against a small JCS reference in Python on random documents.
 *
 * CS_CANON_SEED=<n> in the environment changes the random seed. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cs_json.h"
#include "cs_test.h"

/* ---- helpers ----------------------------------------------------------- */

/* cs_json_canonical, also checking that *len agrees with the text. */
static char *
canon(const json_t *v)
{
    size_t len = (size_t)-1;
    char *s = cs_json_canonical(v, &len);
    if (s != NULL)
        CS_CHECK_INT_EQ(len, strlen(s));
    return s;
}

static void
check_value(const json_t *v, const char *want, const char *what)
{
    char *got = canon(v);
    if (!CS_CHECK_STR_EQ(got, want))
        fprintf(stderr, "    for %s\n", what);
    free(got);
}

/* Parses text (NUL allowed in strings) and checks its canonical form. */
static void
check_text(const char *text, const char *want)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!CS_CHECK(v != NULL)) {
        fprintf(stderr, "    test bug: cannot parse %s: %s\n", text, err.text);
        return;
    }
    check_value(v, want, text);
    json_decref(v);
}

static double
from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void
check_real(double d, const char *want)
{
    char what[64];
    json_t *v = json_real(d);
    snprintf(what, sizeof(what), "real %.17g", d);
    if (CS_CHECK(v != NULL))
        check_value(v, want, what);
    json_decref(v);
}

static void
check_bits(uint64_t bits, const char *want)
{
    check_real(from_bits(bits), want);
}

/* xorshift64*: reproducible across platforms. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static unsigned
rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ---- RFC 8785 examples ------------------------------------------------- */

static void
test_rfc_numbers(void)
{
    /* RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS text */
    static const struct {
        uint64_t bits;
        const char *want;
    } tab[] = {
        {0x0000000000000000u, "0"},
        {0x8000000000000000u, "0"},
        {0x0000000000000001u, "5e-324"},
        {0x8000000000000001u, "-5e-324"},
        {0x7fefffffffffffffu, "1.7976931348623157e+308"},
        {0xffefffffffffffffu, "-1.7976931348623157e+308"},
        {0x4340000000000000u, "9007199254740992"},
        {0xc340000000000000u, "-9007199254740992"},
        {0x4430000000000000u, "295147905179352830000"},
        {0x44b52d02c7e14af5u, "9.999999999999997e+22"},
        {0x44b52d02c7e14af6u, "1e+23"},
        {0x44b52d02c7e14af7u, "1.0000000000000001e+23"},
        {0x444b1ae4d6e2ef4eu, "999999999999999700000"},
        {0x444b1ae4d6e2ef4fu, "999999999999999900000"},
        {0x444b1ae4d6e2ef50u, "1e+21"},
        {0x3eb0c6f7a0b5ed8cu, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8du, "0.000001"},
        {0x41b3de4355555553u, "333333333.3333332"},
        {0x41b3de4355555554u, "333333333.33333325"},
        {0x41b3de4355555555u, "333333333.3333333"},
        {0x41b3de4355555556u, "333333333.3333334"},
        {0x41b3de4355555557u, "333333333.33333343"},
        {0xbecbf647612f3696u, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959u, "1424953923781206.2"},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        check_bits(tab[i].bits, tab[i].want);

    /* NaN and Infinity are not JSON; jansson refuses to make them */
    CS_CHECK(json_real(from_bits(0x7fffffffffffffffu)) == NULL);
    CS_CHECK(json_real(from_bits(0x7ff0000000000000u)) == NULL);

    check_real(0.0, "0");
    check_real(-0.0, "0");
    check_real(1.0, "1");
    check_real(-1.0, "-1");
    check_real(100.0, "100");
    check_real(0.1, "0.1");
    check_real(-0.1, "-0.1");
    check_real(0.5, "0.5");
    check_real(4.5, "4.5");
    check_real(0.002, "0.002");
    check_real(0.1 + 0.2, "0.30000000000000004");
    check_real(123.456, "123.456");
    check_real(1.5, "1.5");
    check_real(1e-6, "0.000001");
    check_real(1.5e-6, "0.0000015");
    check_real(1e-7, "1e-7");
    check_real(1.5e-7, "1.5e-7");
    check_real(-1.5e-7, "-1.5e-7");
    check_real(1e-27, "1e-27");
    check_real(1e20, "100000000000000000000");
    check_real(1e21, "1e+21");
    check_real(1.5e21, "1.5e+21");
    check_real(1e22, "1e+22");
    check_real(1e23, "1e+23");
    check_real(1e30, "1e+30");
    check_real(1e300, "1e+300");
    check_real(1e-300, "1e-300");
    check_real(9007199254740992.0, "9007199254740992");
    check_real(9007199254740994.0, "9007199254740994");
    check_real(1152921504606846976.0, "1152921504606847000"); /* 2^60 */
    check_real(333333333.33333329, "333333333.3333333");
    check_real(5e-324, "5e-324");
    check_real(2.2250738585072014e-308, "2.2250738585072014e-308");
    check_real(1.7976931348623157e308, "1.7976931348623157e+308");
    /* powers of two where the nearest 16-digit decimal does not read back
     * but the one on the other side does: still 16 digits, not 17 */
    check_bits(0x0060000000000000u, "7.120236347223045e-307"); /* 2^-1017 */
    check_bits(0x0100000000000000u, "7.291122019556398e-304"); /* 2^-1007 */
    check_bits(0x0420000000000000u, "8.209073602596753e-289"); /* 2^-957 */
    check_bits(0x0660000000000000u, "5.641232424577593e-278"); /* 2^-921 */

    /* the same numbers as JSON text */
    check_text("[1E30, 4.50, 2e-3, 0.000000000000000000000000001, -0.0, 1.0]",
               "[1e+30,4.5,0.002,1e-27,0,1]");
}

static void
test_rfc_example(void)
{
    /* RFC 8785 §3.2.4 */
    check_text("{\n"
               "  \"numbers\": [333333333.33333329, 1E30, 4.50,\n"
               "              2e-3, 0.000000000000000000000000001],\n"
               "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022"
               "\\u005c\\\\\\\"\\/\",\n"
               "  \"literals\": [null, true, false]\n"
               "}",
               "{\"literals\":[null,true,false],"
               "\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
               "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

static void
test_sorting(void)
{
    json_t *o;

    /* RFC 8785 §3.2.3 */
    check_text("{\n"
               "  \"\\u20ac\": \"Euro Sign\",\n"
               "  \"\\r\": \"Carriage Return\",\n"
               "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
               "  \"1\": \"One\",\n"
               "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
               "  \"\\u0080\": \"Control\",\n"
               "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
               "}",
               "{\"\\r\":\"Carriage Return\",\"1\":\"One\","
               "\"\xc2\x80\":\"Control\","
               "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
               "\"\xe2\x82\xac\":\"Euro Sign\","
               "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
               "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");

    /* UTF-16 order differs from code point (= UTF-8 byte) order only for
     * supplementary characters against U+E000..U+FFFF */
    check_text("{\"\\uffff\":1,\"\\ue000\":2,\"\\ud800\\udc00\":3,"
               "\"\\udbff\\udfff\":4,\"\\ud7ff\":5,\"\\ud83d\\ude00\":6}",
               "{\"\xed\x9f\xbf\":5,\"\xf0\x90\x80\x80\":3,"
               "\"\xf0\x9f\x98\x80\":6,\"\xf4\x8f\xbf\xbf\":4,"
               "\"\xee\x80\x80\":2,\"\xef\xbf\xbf\":1}");
    /* prefixes first; case and digits by code unit */
    check_text("{\"ab\":1,\"a\":2,\"\":3,\"B\":4,\"b\":5,\"10\":6,\"9\":7}",
               "{\"\":3,\"10\":6,\"9\":7,\"B\":4,\"a\":2,\"ab\":1,\"b\":5}");
    /* a key with an inner NUL (only the API can make one) */
    o = json_object();
    CS_CHECK(o != NULL &&
             json_object_setn_new(o, "k\0z", 3, json_true()) == 0 &&
             json_object_setn_new(o, "k", 1, json_false()) == 0 &&
             json_object_set_new(o, "k\x01", json_null()) == 0);
    check_value(o, "{\"k\":false,\"k\\u0000z\":true,\"k\\u0001\":null}",
                "keys with NUL");
    json_decref(o);
}

static void
test_strings(void)
{
    static const char *const want[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005",
        "\\u0006", "\\u0007", "\\b",     "\\t",     "\\n",     "\\u000b",
        "\\f",     "\\r",     "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d",
        "\\u001e", "\\u001f"};
    char in[3], exp[16];
    json_t *v;

    for (int c = 0; c < 32; c++) {
        in[0] = 'x';
        in[1] = (char)c;
        in[2] = 'y';
        snprintf(exp, sizeof(exp), "\"x%sy\"", want[c]);
        v = json_stringn(in, 3);
        if (CS_CHECK(v != NULL))
            check_value(v, exp, want[c]);
        json_decref(v);
    }
    check_text("\"\\\"\\\\/\\u007f~ \"", "\"\\\"\\\\/\x7f~ \"");
    /* non-ASCII stays raw UTF-8, also U+2028/U+2029 and noncharacters */
    check_text("\"\\u00e9\\u2028\\u2029\\ufeff\\uffff\\ud83d\\ude00\"",
               "\"\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\xef\xbf\xbf"
               "\xf0\x9f\x98\x80\"");
    check_text("\"\"", "\"\"");
    check_text("\"a\\u0000b\\u0000\"", "\"a\\u0000b\\u0000\"");

    /* invalid UTF-8 cannot be canonicalized (only *_nocheck can make it) */
    v = json_stringn_nocheck("a\xff", 2);
    CS_CHECK(v != NULL && cs_json_canonical(v, NULL) == NULL);
    json_decref(v);
    v = json_object();
    CS_CHECK(v != NULL &&
             json_object_set_new_nocheck(v, "\xc0\x80", json_null()) == 0);
    CS_CHECK(cs_json_canonical(v, NULL) == NULL);
    json_decref(v);
}

/* cs_json_parse, canonical, parse again, canonical: the same text. */
static void
check_fixed_point(const char *text, const char *want)
{
    json_t *v = NULL, *v2 = NULL;
    char *c1 = NULL, *c2 = NULL;
    size_t n1 = 0, n2 = 0;
    if (!CS_CHECK(cs_json_parse(text, strlen(text), &v, NULL) == CS_OK))
        return;
    c1 = cs_json_canonical(v, &n1);
    CS_CHECK_STR_EQ(c1, want);
    if (CS_CHECK(c1 != NULL && cs_json_parse(c1, n1, &v2, NULL) == CS_OK))
        c2 = cs_json_canonical(v2, &n2);
    CS_CHECK_STR_EQ(c2, want);
    free(c1);
    free(c2);
    json_decref(v);
    json_decref(v2);
}

/* An integer literal beyond int64 is read as a real, and only that one:
 * the other integers of the document stay exact (found by
 * fuzz_request_bodies: a real >= 2^63 is printed without exponent, and
 * reading the canonical text back turned the document's other integers
 * into reals, so canonical(parse(canonical(x))) != canonical(x)). */
static void
test_big_integer_literals(void)
{
    json_t *v = NULL;
    const char *crash = "{\"content\": 1.53e+20, \"ban\": 7777777777777777730, "
                        "\"base_v\": null}";
    check_fixed_point(crash, "{\"ban\":7777777777777777730,\"base_v\":null,"
                             "\"content\":153000000000000000000}");
    check_fixed_point("[9223372036854775808, 1, -9223372036854775809, 2]",
                      "[9223372036854776000,1,-9223372036854776000,2]");
    check_fixed_point("{\"s\": \"99999999999999999999 \\\" 1e400\", \"n\": "
                      "123456789012345678901234, \"e\": 1e5, \"k\": 5}",
                      "{\"e\":100000,\"k\":5,\"n\":1.2345678901234569e+23,"
                      "\"s\":\"99999999999999999999 \\\" 1e400\"}");
    if (CS_CHECK(cs_json_parse(crash, strlen(crash), &v, NULL) == CS_OK)) {
        CS_CHECK(json_is_integer(json_object_get(v, "ban")));
        CS_CHECK(json_is_real(json_object_get(v, "content")));
    }
    json_decref(v);
    v = NULL;
    /* still malformed when something else is wrong */
    CS_CHECK(cs_json_parse("[99999999999999999999, x]", 25, &v, NULL) != CS_OK);
    CS_CHECK(cs_json_parse("[1e99999999999999999999]", 24, &v, NULL) != CS_OK ||
             json_is_real(json_array_get(v, 0)));
    json_decref(v);
}

static void
test_integers_literals(void)
{
    json_t *v;
    char *s;

    check_text("0", "0");
    check_text("-0", "0");
    check_text("-1", "-1");
    check_text("9223372036854775807", "9223372036854775807");
    check_text("-9223372036854775808", "-9223372036854775808");
    /* beyond 2^53 integers stay exact (a strict JCS would print the double
     * 9007199254740992): the documented deviation */
    check_text("9007199254740993", "9007199254740993");
    check_text("[1, 1.0, 1e0, 10E-1]", "[1,1,1,1]");
    check_text("true", "true");
    check_text("false", "false");
    check_text("null", "null");
    check_text("[]", "[]");
    check_text("{}", "{}");
    check_text(" [ [ ] , { } , [ { } ] ] ", "[[],{},[{}]]");
    check_text("{\"b\":[1,{\"d\":2,\"c\":[]}],\"a\":{\"y\":null,\"x\":\"s\"}}",
               "{\"a\":{\"x\":\"s\",\"y\":null},\"b\":[1,{\"c\":[],\"d\":2}]}");
    check_text("[3,1,2,\"b\",\"a\"]", "[3,1,2,\"b\",\"a\"]");

    /* len is optional; the text is NUL-terminated */
    v = json_pack("{s:i,s:[b,n]}", "z", 7, "y", 1);
    s = v != NULL ? cs_json_canonical(v, NULL) : NULL;
    CS_CHECK_STR_EQ(s, "{\"y\":[true,null],\"z\":7}");
    free(s);
    json_decref(v);
    CS_CHECK(cs_json_canonical(NULL, NULL) == NULL);
}

/* An array nested n deep around 1, or NULL. */
static json_t *
nest(int n)
{
    json_t *v = json_integer(1);
    for (int i = 0; i < n && v != NULL; i++) {
        json_t *a = json_array();
        if (a == NULL || json_array_append_new(a, v) != 0) {
            json_decref(a);
            return NULL;
        }
        v = a;
    }
    return v;
}

static void
test_depth(void)
{
    json_t *v = nest(3000);
    char *s = v != NULL ? cs_json_canonical(v, NULL) : NULL;
    size_t len = s != NULL ? strlen(s) : 0;

    CS_CHECK(s != NULL && len == 6001 && s[0] == '[' && s[2999] == '[' &&
             s[3000] == '1' && s[3001] == ']' && s[6000] == ']');
    free(s);
    json_decref(v);
    v = nest(5000); /* beyond the bound: refused, not a crash */
    CS_CHECK(v != NULL && cs_json_canonical(v, NULL) == NULL);
    json_decref(v);
}

/* ---- random doubles ---------------------------------------------------- */

/* Significant digits of a JCS number text (no sign, point, exponent,
 * leading or trailing zeros) into digs; returns their count. */
static int
sig_digits(const char *s, char digs[32])
{
    int n = 0;
    for (; *s != '\0' && *s != 'e'; s++) {
        if (*s < '0' || *s > '9' || (n == 0 && *s == '0'))
            continue;
        if (n < 31)
            digs[n] = *s;
        n++;
    }
    while (n > 0 && n <= 31 && digs[n - 1] == '0')
        n--;
    return n;
}

/* True when some decimal with p significant digits reads back as d > 0:
 * the nearest one printed by "%.*e", or one unit in its last place away
 * (which covers the neighbour on the other side of d). */
static bool
reads_back_with(double d, int p)
{
    char buf[64];
    uint64_t m = 0;
    int e;
    const char *q;

    snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
    for (q = buf; *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            m = m * 10 + (uint64_t)(*q - '0');
    e = atoi(q + 1) - (p - 1);
    for (int k = -1; k <= 1; k++) {
        if (m + (uint64_t)k == 0)
            continue;
        snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m + (uint64_t)k, e);
        if (strtod(buf, NULL) == d)
            return true;
    }
    return false;
}

/* The ES grammar: -?digits[.digits][e(+|-)digits], no leading zeros, no
 * trailing fraction zeros; fixed notation exactly for 1e-6 <= |d| < 1e21. */
static bool
es_shape_ok(const char *s, double d)
{
    const char *p = s;
    bool expo = strchr(s, 'e') != NULL;
    double a = d < 0 ? -d : d;

    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p[-1] == '0')
            return false;
    }
    if (*p == 'e') {
        p++;
        if ((*p != '+' && *p != '-') || p[1] < '1' || p[1] > '9')
            return false;
        p += 2;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && expo == (a < 1e-6 || a >= 1e21);
}

static void
test_random_doubles(void)
{
    int bad = 0;

    for (int i = 0; i < 2000; i++) {
        uint64_t bits;
        double d;
        json_t *v;
        char *s, digs[32];
        int k;
        bool ok;

        do {
            bits = rnd();
        } while ((bits & 0x7ff0000000000000u) == 0x7ff0000000000000u);
        d = from_bits(bits);
        v = json_real(d);
        s = v != NULL ? cs_json_canonical(v, NULL) : NULL;
        json_decref(v);
        if (!CS_CHECK(s != NULL))
            continue;
        k = sig_digits(s, digs);
        ok = strtod(s, NULL) == d && es_shape_ok(s, d) &&
             (d == 0 || (k >= 1 && k <= 17 &&
                         (k == 1 || !reads_back_with(d < 0 ? -d : d, k - 1))));
        if (!CS_CHECK(ok) && ++bad <= 5)
            fprintf(stderr, "    bits %016" PRIx64 ": %s (%.17g)\n", bits,
                    s, d);
        free(s);
    }
}

/* ---- Python cross-check ------------------------------------------------ */

/* A JCS reference: repr(float) is the shortest round-trip text, then the
 * ES layout; keys sorted by their UTF-16 code units. argv: in, out. */
static const char ref_py[] =
    "import sys, json\n"
    "def num(x):\n"
    "    if x == 0:\n"
    "        return \"0\"\n"
    "    r = repr(x)\n"
    "    neg = r.startswith(\"-\")\n"
    "    m, _, e = r.lstrip(\"-\").partition(\"e\")\n"
    "    e = int(e) if e else 0\n"
    "    ip, _, fp = m.partition(\".\")\n"
    "    s = (ip + fp).lstrip(\"0\")\n"
    "    e -= len(fp)\n"
    "    while s.endswith(\"0\"):\n"
    "        s = s[:-1]\n"
    "        e += 1\n"
    "    k = len(s)\n"
    "    n = k + e\n"
    "    if k <= n <= 21:\n"
    "        o = s + \"0\" * (n - k)\n"
    "    elif 0 < n <= 21:\n"
    "        o = s[:n] + \".\" + s[n:]\n"
    "    elif -6 < n <= 0:\n"
    "        o = \"0.\" + \"0\" * -n + s\n"
    "    else:\n"
    "        o = s[0] + (\".\" + s[1:] if k > 1 else \"\") + \"e\"\n"
    "        o += (\"-\" if n < 1 else \"+\") + str(abs(n - 1))\n"
    "    return (\"-\" if neg else \"\") + o\n"
    "ESC = {'\"': '\\\\\"', '\\\\': '\\\\\\\\', '\\b': '\\\\b',\n"
    "       '\\t': '\\\\t', '\\n': '\\\\n', '\\f': '\\\\f', '\\r': '\\\\r'}\n"
    "def ch(c):\n"
    "    return ESC.get(c) or (\"\\\\u%04x\" % ord(c) if ord(c) < 32 else c)\n"
    "def st(s):\n"
    "    return '\"' + \"\".join(ch(c) for c in s) + '\"'\n"
    "def canon(v):\n"
    "    if v is None:\n"
    "        return \"null\"\n"
    "    if v is True:\n"
    "        return \"true\"\n"
    "    if v is False:\n"
    "        return \"false\"\n"
    "    if isinstance(v, int):\n"
    "        return str(v)\n"
    "    if isinstance(v, float):\n"
    "        return num(v)\n"
    "    if isinstance(v, str):\n"
    "        return st(v)\n"
    "    if isinstance(v, list):\n"
    "        return \"[\" + \",\".join(canon(x) for x in v) + \"]\"\n"
    "    ks = sorted(v, key=lambda k: k.encode(\"utf-16-be\"))\n"
    "    m = (st(k) + \":\" + canon(v[k]) for k in ks)\n"
    "    return \"{\" + \",\".join(m) + \"}\"\n"
    "with open(sys.argv[1], \"rb\") as f, open(sys.argv[2], \"wb\") as out:\n"
    "    for line in f:\n"
    "        out.write(canon(json.loads(line)).encode() + b\"\\n\")\n";

static void
put_utf8(char *buf, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        buf[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        buf[(*n)++] = (char)(0xC0 | (cp >> 6));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        buf[(*n)++] = (char)(0xE0 | (cp >> 12));
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        buf[(*n)++] = (char)(0xF0 | (cp >> 18));
        buf[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        buf[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A code point from ranges where escaping and ordering differ. */
static unsigned long
rnd_cp(bool key)
{
    unsigned long cp;

    switch (rnd_below(8)) {
    case 0:
        return rnd_below(0x20); /* controls, NUL included */
    case 1:
        return "\"\\/\x7f~ aZ0"[rnd_below(9)];
    case 2:
        return 0x80 + rnd_below(0x780); /* 2-byte UTF-8 */
    case 3:
        do {
            cp = 0x800 + rnd_below(0xD000);
        } while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
    case 4:
        return 0xE000 + rnd_below(0x2000); /* sorts after supplementary */
    case 5:
        return 0x10000 + rnd_below(0x100000);
    default:
        return key ? 'a' + rnd_below(4) : 0x20 + rnd_below(0x5F);
    }
}

static json_t *
rnd_string(bool key)
{
    char buf[64];
    size_t n = 0, len = rnd_below(key ? 4 : 10);

    for (size_t i = 0; i < len; i++) {
        unsigned long cp = rnd_cp(key);
        if (key && cp == 0)
            cp = 'k'; /* jansson cannot dump keys with NUL */
        put_utf8(buf, &n, cp);
    }
    return json_stringn(buf, n);
}

static double
rnd_finite(void)
{
    uint64_t bits;
    do {
        bits = rnd();
    } while ((bits & 0x7ff0000000000000u) == 0x7ff0000000000000u);
    return from_bits(bits);
}

static double
rnd_real(void)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7,
                                 1e8, 1e15, 1e20, 1e22, 1e25};
    double sign = rnd_below(2) ? -1.0 : 1.0;

    switch (rnd_below(6)) {
    case 0: /* short decimals: 0.1, 12.5, 3e-7 */
        return sign * (double)rnd_below(100000) /
               p10[rnd_below(sizeof(p10) / sizeof(p10[0]))];
    case 1: /* integral, also above 2^53 and near 1e21 */
        return sign * (double)(rnd() >> rnd_below(64)) *
               (rnd_below(4) == 0 ? 1e3 : 1.0);
    case 2: /* powers of two */
        return sign * from_bits((uint64_t)(1 + rnd_below(2046)) << 52);
    case 3: /* around the fixed/exponential borders */
        return sign * (double)(1 + rnd_below(999)) *
               (rnd_below(2) ? 1e-9 : 1e19);
    default:
        return rnd_finite();
    }
}

static json_t *
rnd_value(int depth)
{
    unsigned t = rnd_below(depth >= 4 ? 6 : 8);
    json_t *v = NULL;

    switch (t) {
    case 0:
        return rnd_string(false);
    case 1:
        switch (rnd_below(4)) {
        case 0:
            return json_integer((json_int_t)rnd_below(2001) - 1000);
        case 1:
            return json_integer((json_int_t)(rnd() >> 10) -
                                (json_int_t)(1LL << 53));
        case 2:
            return json_integer(rnd_below(2) ? INT64_MAX : INT64_MIN);
        default:
            return json_integer((json_int_t)rnd());
        }
    case 2:
    case 3:
        return json_real(rnd_real());
    case 4:
        return rnd_below(2) ? json_true() : json_false();
    case 5:
        return json_null();
    case 6:
        v = json_array();
        for (unsigned i = rnd_below(5); v != NULL && i > 0; i--)
            json_array_append_new(v, rnd_value(depth + 1));
        return v;
    default:
        v = json_object();
        for (unsigned i = rnd_below(6); v != NULL && i > 0; i--) {
            json_t *k = rnd_string(true);
            if (k != NULL)
                json_object_set_new(v, json_string_value(k),
                                    rnd_value(depth + 1));
            json_decref(k);
        }
        return v;
    }
}

/* Runs the Python reference on in -> out; returns the exit status, 127
 * when python3 cannot be started. */
static int
run_python(const char *in, const char *out)
{
    int st = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("python3", "python3", "-c", ref_py, in, out, (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Prints where a and b (C and Python) first differ, with some context. */
static void
show_diff(size_t doc, const char *a, const char *b)
{
    size_t i = 0, from;

    while (a[i] != '\0' && a[i] == b[i])
        i++;
    from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "    document %zu differs at byte %zu:\n"
                    "    C:      ...%.100s\n    Python: ...%.100s\n",
            doc, i, a + from, b + from);
}

#define N_RANDOM_DOCS 300
#define N_DOCS (N_RANDOM_DOCS + 22 + 20)

static void
test_python_cross_check(void)
{
    const char *tmp = getenv("TMPDIR");
    char in[512], out[512];
    char *mine[N_DOCS] = {NULL};
    char *theirs = NULL;
    size_t tlen = 0, nd = 0;
    int fd_in, fd_out, rc, bad = 0;
    FILE *f = NULL;

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    snprintf(in, sizeof(in), "%s/cs_canon_in_XXXXXX", tmp);
    snprintf(out, sizeof(out), "%s/cs_canon_out_XXXXXX", tmp);
    fd_in = mkstemp(in);
    fd_out = mkstemp(out);
    if (!CS_CHECK(fd_in >= 0 && fd_out >= 0))
        goto done;
    close(fd_out);
    f = fdopen(fd_in, "w");
    if (!CS_CHECK(f != NULL)) {
        close(fd_in);
        goto done;
    }

    /* 300 random documents, then every power of two (either sign) in 22
     * arrays, then 2000 random doubles in 20 arrays */
    for (nd = 0; nd < N_DOCS; nd++) {
        json_t *doc;
        char *line;

        if (nd < N_RANDOM_DOCS) {
            doc = rnd_value(0);
        } else if (nd < N_RANDOM_DOCS + 22) {
            int first = -1074 + (int)(nd - N_RANDOM_DOCS) * 100;
            doc = json_array();
            for (int e = first; e < first + 100 && e <= 1023 && doc; e++) {
                double d = e >= -1022
                               ? from_bits((uint64_t)(e + 1023) << 52)
                               : from_bits((uint64_t)1 << (e + 1074));
                json_array_append_new(doc, json_real(e % 2 ? -d : d));
            }
        } else {
            doc = json_array();
            for (int i = 0; i < 100 && doc != NULL; i++)
                json_array_append_new(doc, json_real(rnd_finite()));
        }
        line = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY)
                           : NULL;
        mine[nd] = doc != NULL ? cs_json_canonical(doc, NULL) : NULL;
        json_decref(doc);
        if (!CS_CHECK(line != NULL && mine[nd] != NULL)) {
            free(line);
            goto done;
        }
        fprintf(f, "%s\n", line);
        free(line);
    }
    rc = fclose(f);
    f = NULL;
    if (!CS_CHECK(rc == 0))
        goto done;

    rc = run_python(in, out);
    if (rc == 127) {
        CS_CHECK(!"python3 not found");
        fprintf(stderr, "    the JCS cross-check needs python3 on PATH; "
                        "install Python 3 to run this test\n");
        goto done;
    }
    if (!CS_CHECK_INT_EQ(rc, 0))
        goto done;

    f = fopen(out, "rb");
    if (!CS_CHECK(f != NULL))
        goto done;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (theirs = malloc((size_t)size + 1)) != NULL)
            tlen = fread(theirs, 1, (size_t)size, f);
    }
    if (!CS_CHECK(theirs != NULL))
        goto done;
    theirs[tlen] = '\0';
    {
        char *p = theirs;
        size_t lines = 0;
        for (size_t i = 0; i < N_DOCS; i++) {
            char *nl = strchr(p, '\n');
            if (nl == NULL)
                break;
            *nl = '\0';
            lines++;
            if (strcmp(p, mine[i]) != 0 && ++bad <= 5)
                show_diff(i, mine[i], p);
            p = nl + 1;
        }
        CS_CHECK_INT_EQ(lines, N_DOCS);
        CS_CHECK(*p == '\0');
        CS_CHECK_INT_EQ(bad, 0);
    }

done:
    if (f != NULL)
        fclose(f);
    unlink(in);
    unlink(out);
    free(theirs);
    for (size_t i = 0; i < N_DOCS; i++)
        free(mine[i]);
}

int
main(void)
{
    const char *seed = getenv("CS_CANON_SEED");

    if (seed != NULL && *seed != '\0')
        rng_state = strtoull(seed, NULL, 0) | 1;
    printf("seed %" PRIu64 "\n", rng_state);
    test_rfc_numbers();
    test_rfc_example();
    test_sorting();
    test_strings();
    test_integers_literals();
    test_big_integer_literals();
    test_depth();
    test_random_doubles();
    test_python_cross_check();
    return cs_test_summary();
}
