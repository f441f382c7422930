/* SPDX-License-Identifier: MIT */
#include "cs_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *
cs_json_canonical(const json_t *v, size_t *len)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
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

int64_t
cs_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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
