/* SPDX-License-Identifier: MIT */
#include "cs_json.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- canonical JSON (RFC 8785, JCS) ------------------------------------
 * See docs/internals/canonical-json.md for the rules and the one deviation
 * (integers are printed exactly, also beyond 2^53). */

/* Containers nested deeper than this make cs_json_canonical fail: jansson's
 * parser stops at 2048, and the margin leaves room for records that wrap a
 * parsed value. It also ends the walk on a (broken) cyclic value. */
#define CANON_MAX_DEPTH 4096

typedef struct canon_buf {
    char *p;
    size_t len;
    size_t cap;
} canon_buf;

/* Makes room for n more bytes plus the final NUL; false on overflow/OOM. */
static bool
canon_reserve(canon_buf *b, size_t n)
{
    size_t need, cap;
    char *np;

    if (n > SIZE_MAX - 1 - b->len)
        return false;
    need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap > 0 ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    np = realloc(b->p, cap);
    if (np == NULL)
        return false;
    b->p = np;
    b->cap = cap;
    return true;
}

static bool
canon_put(canon_buf *b, const char *s, size_t n)
{
    if (!canon_reserve(b, n))
        return false;
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static bool
canon_putc(canon_buf *b, char c)
{
    return canon_put(b, &c, 1);
}

/* A JSON string literal (RFC 8785 §3.2.2.2). s must be valid UTF-8 (NUL
 * bytes allowed): only '"', '\' and U+0000..U+001F are escaped, the short
 * forms where JSON has one, \u00xx with lowercase hex otherwise. */
static bool
canon_string(canon_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of bytes copied as they are */

    if (!cs_utf8_valid(s, n) || !canon_putc(b, '"'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case 0x08: esc[1] = 'b'; break;
        case 0x09: esc[1] = 't'; break;
        case 0x0A: esc[1] = 'n'; break;
        case 0x0C: esc[1] = 'f'; break;
        case 0x0D: esc[1] = 'r'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0F];
            elen = 6;
            break;
        }
        if (!canon_put(b, s + run, i - run) || !canon_put(b, esc, elen))
            return false;
        run = i + 1;
    }
    return canon_put(b, s + run, n - run) && canon_putc(b, '"');
}

/* Decodes the code point at s[*i] (valid UTF-8, *i < n) and advances *i. */
static unsigned long
canon_utf8_next(const char *s, size_t n, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    unsigned long cp;
    size_t more;

    if (c < 0x80) {
        cp = c;
        more = 0;
    } else if (c < 0xE0) {
        cp = c & 0x1Fu;
        more = 1;
    } else if (c < 0xF0) {
        cp = c & 0x0Fu;
        more = 2;
    } else {
        cp = c & 0x07u;
        more = 3;
    }
    (*i)++;
    while (more-- > 0 && *i < n)
        cp = (cp << 6) | ((unsigned char)s[(*i)++] & 0x3Fu);
    return cp;
}

/* The first UTF-16 code unit of cp. */
static unsigned long
canon_utf16_lead(unsigned long cp)
{
    return cp < 0x10000 ? cp : 0xD800 + ((cp - 0x10000) >> 10);
}

typedef struct canon_member {
    const char *key;
    size_t keylen;
    json_t *value;
} canon_member;

/* Orders keys by their UTF-16 code units (RFC 8785 §3.2.3). On valid UTF-8
 * this is code point order, except that a supplementary character (a
 * surrogate pair, lead unit 0xD800..0xDBFF) sorts before U+E000..U+FFFF. */
static int
canon_member_cmp(const void *pa, const void *pb)
{
    const canon_member *a = pa, *b = pb;
    size_t i = 0, j = 0;

    while (i < a->keylen && j < b->keylen) {
        unsigned long ca = canon_utf8_next(a->key, a->keylen, &i);
        unsigned long cb = canon_utf8_next(b->key, b->keylen, &j);
        unsigned long ua, ub;

        if (ca == cb)
            continue;
        ua = canon_utf16_lead(ca);
        ub = canon_utf16_lead(cb);
        if (ua == ub) /* both supplementary with one lead unit: trail order */
            return ca < cb ? -1 : 1;
        return ua < ub ? -1 : 1;
    }
    if (i < a->keylen)
        return 1;
    return j < b->keylen ? -1 : 0;
}

/* Shortest decimal digits of a finite d > 0: d reads back from
 * mant * 10^(*exp10 - *ndig + 1), where mant has *ndig digits and no trailing
 * zero. For each digit count p = 1..17 the candidates are the two p-digit
 * decimals around d: first the nearer one (what "%.*e" rounds to), then the
 * other, which can read back alone where the gap below d is half the gap
 * above (d a power of two). The first count with a candidate that reads
 * back wins, as in ES Number::toString. Locale-proof: only digits are taken
 * from the "%.*e" text, and strtod gets "<integer>e<exponent>". */
static bool
canon_shortest(double d, uint64_t *mant, int *ndig, int *exp10)
{
    char buf[64];

    for (int p = 1; p <= 17; p++) {
        uint64_t m = 0;
        int nd = 0, e = 0, neg = 0;
        const char *q;
        int w = snprintf(buf, sizeof(buf), "%.*e", p - 1, d);

        if (w < 0 || (size_t)w >= sizeof(buf))
            return false;
        for (q = buf; *q != '\0' && *q != 'e' && *q != 'E'; q++) {
            if (*q >= '0' && *q <= '9') {
                m = m * 10 + (uint64_t)(*q - '0');
                nd++;
            }
        }
        if (*q == '\0' || nd != p)
            return false;
        q++;
        if (*q == '-' || *q == '+')
            neg = *q++ == '-';
        for (; *q >= '0' && *q <= '9' && e < 10000; q++)
            e = e * 10 + (*q - '0');
        if (neg)
            e = -e;
        e -= p - 1; /* now the candidate is m * 10^e */

        for (int k = 0; k < 2; k++) {
            double back;

            snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m, e);
            back = strtod(buf, NULL);
            if (back == d) {
                uint64_t t;
                int len = 0;

                while (m % 10 == 0) { /* m > 0 since d > 0 */
                    m /= 10;
                    e++;
                }
                for (t = m; t > 0; t /= 10)
                    len++;
                *mant = m;
                *ndig = len;
                *exp10 = e + len - 1;
                return true;
            }
            if (back > d) {
                if (m <= 1)
                    break;
                m--;
            } else {
                m++;
            }
        }
    }
    return false;
}

/* A real as ES Number.prototype.toString prints it (RFC 8785 §3.2.2.3). */
static bool
canon_real(canon_buf *b, double d)
{
    char digs[24], out[48];
    uint64_t mant;
    int k, e10, n;
    size_t o = 0;

    if (!isfinite(d))
        return false;
    if (d == 0) /* also -0 */
        return canon_putc(b, '0');
    if (d < 0)
        out[o++] = '-';
    if (!canon_shortest(d < 0 ? -d : d, &mant, &k, &e10))
        return false;
    snprintf(digs, sizeof(digs), "%" PRIu64, mant);
    n = e10 + 1; /* value = 0.digs * 10^n */
    if (k <= n && n <= 21) { /* integral: digits, then n - k zeros */
        memcpy(out + o, digs, (size_t)k);
        o += (size_t)k;
        for (int i = k; i < n; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) { /* point inside the digits */
        memcpy(out + o, digs, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digs + n, (size_t)(k - n));
        o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) { /* "0." then -n zeros, then the digits */
        out[o++] = '0';
        out[o++] = '.';
        for (int i = n; i < 0; i++)
            out[o++] = '0';
        memcpy(out + o, digs, (size_t)k);
        o += (size_t)k;
    } else { /* exponential: d[.ddd]e±x */
        int w;

        out[o++] = digs[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digs + 1, (size_t)(k - 1));
            o += (size_t)(k - 1);
        }
        w = snprintf(out + o, sizeof(out) - o, "e%c%d", n - 1 < 0 ? '-' : '+',
                     n - 1 < 0 ? 1 - n : n - 1);
        if (w < 0 || (size_t)w >= sizeof(out) - o)
            return false;
        o += (size_t)w;
    }
    return canon_put(b, out, o);
}

static bool canon_value(canon_buf *b, const json_t *v, int depth);

static bool
canon_object(canon_buf *b, const json_t *v, int depth)
{
    size_t n = json_object_size(v), i = 0;
    canon_member *m = NULL;
    bool ok = false;
    void *it;

    if (n > 0) {
        if (n > SIZE_MAX / sizeof(*m))
            goto out;
        m = malloc(n * sizeof(*m));
        if (m == NULL)
            goto out;
    }
    /* jansson's iterators take a non-const object but do not change it */
    for (it = json_object_iter((json_t *)v); it != NULL && i < n;
         it = json_object_iter_next((json_t *)v, it), i++) {
        m[i].key = json_object_iter_key(it);
        m[i].keylen = json_object_iter_key_len(it);
        m[i].value = json_object_iter_value(it);
        if (!cs_utf8_valid(m[i].key, m[i].keylen))
            goto out; /* the comparator needs valid UTF-8 */
    }
    if (i != n || it != NULL)
        goto out;
    if (n > 1)
        qsort(m, n, sizeof(*m), canon_member_cmp);
    if (!canon_putc(b, '{'))
        goto out;
    for (i = 0; i < n; i++) {
        if ((i > 0 && !canon_putc(b, ',')) ||
            !canon_string(b, m[i].key, m[i].keylen) || !canon_putc(b, ':') ||
            !canon_value(b, m[i].value, depth + 1))
            goto out;
    }
    ok = canon_putc(b, '}');
out:
    free(m);
    return ok;
}

static bool
canon_value(canon_buf *b, const json_t *v, int depth)
{
    char num[32];
    int w;

    if (v == NULL || depth > CANON_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return canon_object(b, v, depth);
    case JSON_ARRAY:
        if (!canon_putc(b, '['))
            return false;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if ((i > 0 && !canon_putc(b, ',')) ||
                !canon_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        return canon_putc(b, ']');
    case JSON_STRING:
        return canon_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        w = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        return w > 0 && (size_t)w < sizeof(num) &&
               canon_put(b, num, (size_t)w);
    case JSON_REAL:
        return canon_real(b, json_real_value(v));
    case JSON_TRUE:
        return canon_put(b, "true", 4);
    case JSON_FALSE:
        return canon_put(b, "false", 5);
    case JSON_NULL:
        return canon_put(b, "null", 4);
    }
    return false;
}

char *
cs_json_canonical(const json_t *v, size_t *len)
{
    canon_buf b = {NULL, 0, 0};
    char *rv = NULL;

    if (!canon_value(&b, v, 0) || !canon_reserve(&b, 0))
        goto out;
    b.p[b.len] = '\0';
    if (len != NULL)
        *len = b.len;
    rv = b.p;
    b.p = NULL;
out:
    free(b.p);
    return rv;
}

bool
cs_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) /* need n continuation bytes after s[i] */
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
            (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Is the integer literal p[0..n) (optional '-', digits) outside int64? */
static bool
int_literal_too_big(const char *p, size_t n)
{
    char tmp[24];
    size_t digits = n - (p[0] == '-');
    if (digits > 20)
        return true;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    errno = 0;
    (void)strtoll(tmp, NULL, 10);
    return errno == ERANGE;
}

/* A copy of buf in which every integer literal outside int64 (outside
 * strings) gets a ".0", so that jansson reads that one as a real and every
 * other integer stays an integer. JSON_DECODE_INT_AS_REAL would turn all
 * of the document's integers into reals: then a canonical text holding a
 * real >= 2^63 (printed without exponent below 1e21) and an integer would
 * not read back as itself (fuzz_request_bodies found it). NULL when out of
 * memory. A big literal has at least 19 digits, so the copy grows by at
 * most 2 bytes per 20. */
static char *
big_ints_as_reals(const char *buf, size_t len, size_t *outlen)
{
    char *out = malloc(len + len / 8 + 16);
    size_t i = 0, o = 0;
    bool in_str = false;

    if (out == NULL)
        return NULL;
    while (i < len) {
        char c = buf[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = buf[++i];
            else if (c == '"')
                in_str = false;
            i++;
        } else if (c == '-' || is_digit(c)) {
            size_t st = i;
            bool integral = true;
            if (c == '-')
                i++;
            while (i < len && is_digit(buf[i]))
                i++;
            if (i < len && buf[i] == '.') {
                integral = false;
                for (i++; i < len && is_digit(buf[i]); i++)
                    ;
            }
            if (i < len && (buf[i] == 'e' || buf[i] == 'E')) {
                integral = false;
                i++;
                if (i < len && (buf[i] == '+' || buf[i] == '-'))
                    i++;
                while (i < len && is_digit(buf[i]))
                    i++;
            }
            memcpy(out + o, buf + st, i - st);
            o += i - st;
            if (integral && i - st > (size_t)(c == '-') &&
                int_literal_too_big(buf + st, i - st)) {
                out[o++] = '.';
                out[o++] = '0';
            }
        } else {
            if (c == '"')
                in_str = true;
            out[o++] = c;
            i++;
        }
    }
    *outlen = o;
    return out;
}

cs_err
cs_json_parse(const char *buf, size_t len, json_t **out, cs_errbuf *eb)
{
    json_error_t jerr;
    json_t *v;

    if (!cs_utf8_valid(buf, len))
        return cs_errf(eb, CS_EINVAL, "body is not valid UTF-8");
    if (memchr(buf, '\0', len) != NULL)
        return cs_errf(eb, CS_EINVAL, "body contains a NUL byte");
    v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL && strstr(jerr.text, "too big") != NULL) {
        /* An integer beyond int64 (canonical JSON prints reals below 1e21
         * without exponent): read that literal as a real. */
        size_t n2 = 0;
        char *b2 = big_ints_as_reals(buf, len, &n2);
        if (b2 == NULL)
            return cs_errf(eb, CS_ENOMEM, "out of memory");
        v = json_loadb(b2, n2, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        free(b2);
    }
    if (v == NULL)
        return cs_errf(eb, CS_EINVAL, "malformed JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    *out = v;
    return CS_OK;
}

cs_err
cs_json_get_str(const json_t *obj, const char *key, const char **out,
                cs_errbuf *eb)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return CS_ENOTFOUND;
    if (!json_is_string(v))
        return cs_errf(eb, CS_EINVAL, "field '%s' must be a string", key);
    *out = json_string_value(v);
    return CS_OK;
}

cs_err
cs_json_get_int(const json_t *obj, const char *key, int64_t *out,
                cs_errbuf *eb)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return CS_ENOTFOUND;
    if (!json_is_integer(v))
        return cs_errf(eb, CS_EINVAL, "field '%s' must be an integer", key);
    *out = (int64_t)json_integer_value(v);
    return CS_OK;
}

/* TEST ONLY: CS_CLOCK_OFFSET_MS (a signed integer of milliseconds, read
 * once per process) is added to the wall clock, so that the fault tests
 * can run nodes with skewed clocks (tests/fault/test_epoch_skew.py). Not a
 * production setting: never set it outside tests. */
static int64_t g_clock_offset_us;
static pthread_once_t g_clock_once = PTHREAD_ONCE_INIT;

static void
clock_offset_init(void)
{
    const char *s = getenv("CS_CLOCK_OFFSET_MS");
    char *end = NULL;
    long long ms;
    if (s == NULL || *s == '\0')
        return;
    errno = 0;
    ms = strtoll(s, &end, 10);
    /* at most ~100 years either way; anything else is ignored */
    if (errno == 0 && end != s && *end == '\0' && ms > -3153600000000LL &&
        ms < 3153600000000LL)
        g_clock_offset_us = (int64_t)ms * 1000;
}

int64_t
cs_now_us(void)
{
    struct timespec ts;
    pthread_once(&g_clock_once, clock_offset_init);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 +
           g_clock_offset_us;
}

void
cs_time_format(int64_t us, char out[CS_TIME_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    /* Values are range-limited by gmtime_r; the casts tell the compiler. */
    snprintf(out, CS_TIME_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%06uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)frac % 1000000u);
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

cs_err
cs_time_parse(const char *s, int64_t *us)
{
    int Y, M, D, h, m, sec;
    long frac = 0;
    int off = 0;
    struct tm tm;
    const char *p;

    if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' ||
        digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) ||
        s[16] != ':' || digits(s + 17, 2, &sec))
        return CS_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return CS_EINVAL;
    p = s + 19;
    if (*p == '.') {
        int nd = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (nd < 6) {
                frac = frac * 10 + (*p - '0');
                nd++;
            }
            p++;
        }
        if (nd == 0)
            return CS_EINVAL;
        while (nd < 6) {
            frac *= 10;
            nd++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
            return CS_EINVAL;
        off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return CS_EINVAL;
    }
    if (*p != '\0')
        return CS_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    *us = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
    return CS_OK;
}
