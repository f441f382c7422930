/* SPDX-License-Identifier: MIT
 * fuzz_uri.c: libFuzzer target for cs_uri.
 *
 * The input is split on '\n' into up to three strings: p1, p2 and uri. It
 * checks the invariants that tie parse, validate, match and covers together:
 * a valid URI is a valid pattern matching itself and matched by "**"; the
 * parts rebuild the URI; a valid pattern covers itself and is covered by
 * "**"; covers(p, uri) == match(p, uri) for a valid uri; and covers is sound:
 * covers(p1, p2) && match(p2, uri) implies match(p1, uri). Slow inputs
 * (exponential matching) show up as libFuzzer timeouts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* Copies the next '\n'-terminated piece of data into a new C string. */
static char *
next_piece(const uint8_t **data, size_t *size)
{
    const uint8_t *nl = memchr(*data, '\n', *size);
    size_t n = nl ? (size_t)(nl - *data) : *size;
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, *data, n);
    s[n] = '\0';
    *data += nl ? n + 1 : n;
    *size -= nl ? n + 1 : n;
    return s;
}

static void
check_uri(const char *uri)
{
    cs_uri_parts parts;
    cs_errbuf eb;

    eb.msg[0] = '\0';
    if (cs_uri_parse(uri, &parts, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
        CHECK(!cs_pattern_match("**", uri));
        return;
    }
    char rebuilt[3 * (CS_URI_MAX + 1) + 16];
    snprintf(rebuilt, sizeof(rebuilt), "ctx://%s/%s/%s", parts.org,
             parts.domain, parts.id);
    CHECK(strcmp(rebuilt, uri) == 0);
    CHECK(strchr(parts.org, '/') == NULL && strchr(parts.domain, '/') == NULL);
    CHECK(cs_pattern_validate(uri, NULL) == CS_OK);
    CHECK(cs_pattern_match("**", uri));
    CHECK(cs_pattern_match("ctx://**", uri));
    CHECK(cs_pattern_match(uri, uri));
    CHECK(cs_pattern_covers(uri, uri));
}

static void
check_pattern(const char *p)
{
    cs_errbuf eb;

    eb.msg[0] = '\0';
    if (cs_pattern_validate(p, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
        CHECK(!cs_pattern_covers(p, p));
        CHECK(!cs_pattern_covers("**", p));
        CHECK(!cs_pattern_match(p, "ctx://a/b/c"));
        return;
    }
    CHECK(cs_pattern_covers(p, p));
    CHECK(cs_pattern_covers("**", p));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p1 = next_piece(&data, &size);
    char *p2 = next_piece(&data, &size);
    char *uri = next_piece(&data, &size);
    bool uri_ok = cs_uri_parse(uri, NULL, NULL) == CS_OK;

    check_uri(p1);
    check_uri(uri);
    check_pattern(p1);
    check_pattern(p2);

    bool m1 = cs_pattern_match(p1, uri);
    bool m2 = cs_pattern_match(p2, uri);
    if (m1 || m2)
        CHECK(uri_ok);
    if (uri_ok && cs_pattern_validate(p1, NULL) == CS_OK)
        CHECK(cs_pattern_covers(p1, uri) == m1);
    if (cs_pattern_covers(p1, p2) && m2)
        CHECK(m1);
    /* a URI used as a pattern: it matches only itself */
    if (uri_ok && cs_pattern_match(uri, p1))
        CHECK(strcmp(uri, p1) == 0);

    free(p1);
    free(p2);
    free(uri);
    return 0;
}
