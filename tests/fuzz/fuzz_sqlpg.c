/* SPDX-License-Identifier: MIT
 * fuzz_sqlpg.c: libFuzzer target for cs_sqlpg (the SQLite -> PostgreSQL
 * rewrite and the store URL redaction).
 *
 * The input is one text. Invariants: the rewrite never fails on memory,
 * leaves no '?' outside quotes, and counts parameters within the limit,
 * agreeing with cs_sqlpg_params on its own output when every number is in
 * range; the redaction of a postgres URL carrying user:PW@ keeps what is
 * before the ':' and puts *** in place of PW. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_sqlpg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void
check_rewrite(const char *in)
{
    int n = -1;
    char *out = cs_sqlpg_rewrite(in, &n);
    char q = 0;
    CHECK(out != NULL);
    CHECK(n >= 0 && n <= CS_SQLPG_MAX_PARAM);
    for (const char *p = out; *p; p++) {
        if (q != 0) {
            if (*p == q)
                q = 0;
        } else if (*p == '\'' || *p == '"') {
            q = *p;
        } else {
            CHECK(*p != '?');
        }
    }
    /* the rewritten text's highest $N is at least the count (it may hold
     * more: a '$N' the input had itself) */
    CHECK(cs_sqlpg_params(out, NULL, 0) >= n);
    (void)cs_sqlpg_word(in, 1, "IS");
    free(out);
}

static void
check_redact(const char *in)
{
    char out[512];
    const char *scheme = strstr(in, "://");
    cs_sqlpg_redact_url(in, out, sizeof(out));
    CHECK(strlen(out) < sizeof(out));
    if ((strncmp(in, "postgres://", 11) == 0 ||
         strncmp(in, "postgresql://", 13) == 0) && scheme != NULL) {
        const char *at = strchr(in, '@');
        const char *colon = strchr(scheme + 3, ':');
        if (at != NULL && colon != NULL && colon < at && strlen(in) < 200) {
            /* scheme://user:***@... : the text up to the ':' kept, the
             * password replaced */
            size_t keep = (size_t)(colon - in);
            const char *pw = strstr(out, "password=***");
            /* or a "password=" before the ':' hid everything after it */
            if (pw == NULL || (size_t)(pw - out) > keep) {
                CHECK(strncmp(out, in, keep) == 0);
                CHECK(strncmp(out + keep, ":***@", 5) == 0);
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_rewrite(s);
    check_redact(s);
    free(s);
    return 0;
}
