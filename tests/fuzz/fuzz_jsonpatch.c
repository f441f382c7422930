/* SPDX-License-Identifier: MIT
 * fuzz_jsonpatch.c: libFuzzer target for cs_jsonpatch.
 *
 * The input is parsed as JSON. If it is a two-element array [x, y]:
 * diff(x, y) applied to x must give y, and diff(x, x) must be []; then y is
 * also tried as a patch for x: whatever happens must not crash, leave x
 * unchanged, and a success r must round-trip (diff(x, r) applied to x is r).
 * Any other document is diffed against null and against itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cs_jsonpatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* diff(x, y) applied to x gives y. */
static void
round_trip(const json_t *x, const json_t *y)
{
    json_t *patch = NULL, *res = NULL;
    cs_errbuf eb;

    CHECK(cs_jsonpatch_diff(x, y, &patch) == CS_OK);
    CHECK(json_is_array(patch));
    if (cs_jsonpatch_apply(x, patch, &res, &eb) != CS_OK) {
        fprintf(stderr, "apply of a generated patch failed: %s\n", eb.msg);
        abort();
    }
    CHECK(json_equal(res, (json_t *)y));
    if (json_equal((json_t *)x, (json_t *)y))
        CHECK(json_array_size(patch) == 0);
    json_decref(patch);
    json_decref(res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size,
                            JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (in == NULL)
        return 0;
    if (json_is_array(in) && json_array_size(in) == 2) {
        json_t *x = json_array_get(in, 0), *y = json_array_get(in, 1);
        json_t *x0 = json_deep_copy(x), *res = NULL;
        cs_errbuf eb;

        round_trip(x, y);
        round_trip(y, x);
        round_trip(x, x);
        eb.msg[0] = '\0';
        cs_err rc = cs_jsonpatch_apply(x, y, &res, &eb);
        CHECK(rc == CS_OK || rc == CS_EINVAL);
        CHECK(json_equal(x, x0));
        if (rc == CS_OK) {
            round_trip(x, res);
            json_decref(res);
        } else {
            CHECK(res == NULL && eb.msg[0] != '\0');
        }
        json_decref(x0);
    } else {
        json_t *null = json_null();
        round_trip(in, null);
        round_trip(null, in);
        round_trip(in, in);
    }
    json_decref(in);
    return 0;
}
