/* SPDX-License-Identifier: MIT
 * fuzz_canonical.c: libFuzzer target for cs_json_canonical (RFC 8785).
 *
 * The input is parsed with jansson (any value, NUL allowed in strings). Its
 * canonical text c1 must be NUL-terminated, as long as *len says, valid
 * UTF-8 without raw control characters, and parse back (v2) to the same
 * value: integers, strings, literals and the structure exactly, reals as
 * the same double (one with an integral value may come back as an integer).
 * Canonicalizing v2 must give c1 again (idempotence).
 *
 * One known exception: a real in [2^63, 1e21) (always integral) prints as a
 * plain integer ("100000000000000000000"), as RFC 8785 wants, and jansson
 * refuses integers beyond int64. For such inputs the re-parse must fail
 * with jansson's "too big" integer error and nothing else; see
 * docs/internals/canonical-json.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* True when v holds a real that prints as an integer jansson cannot read. */
static bool
has_big_integral_real(json_t *v)
{
    const char *key;
    json_t *m;
    size_t i;
    double a;

    switch (json_typeof(v)) {
    case JSON_REAL:
        a = json_real_value(v);
        a = a < 0 ? -a : a;
        return a >= 9223372036854775808.0 && a < 1e21;
    case JSON_ARRAY:
        json_array_foreach(v, i, m) {
            if (has_big_integral_real(m))
                return true;
        }
        return false;
    case JSON_OBJECT:
        json_object_foreach(v, key, m) {
            if (has_big_integral_real(m))
                return true;
        }
        return false;
    default:
        return false;
    }
}

/* a (parsed input) and b (parsed canonical text) hold the same value. */
static bool
same_value(json_t *a, json_t *b)
{
    const char *key;
    json_t *m;
    size_t i;

    if (json_is_real(a)) {
        if (json_is_real(b))
            return json_real_value(a) == json_real_value(b);
        return json_is_integer(b) &&
               (double)json_integer_value(b) == json_real_value(a);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        json_array_foreach(a, i, m) {
            if (!same_value(m, json_array_get(b, i)))
                return false;
        }
        return true;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach(a, key, m) {
            json_t *o = json_object_get(b, key);
            if (o == NULL || !same_value(m, o))
                return false;
        }
        return true;
    default: /* integer, string (with NULs), true, false, null */
        return json_equal(a, b);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    json_t *v1 = json_loadb((const char *)data, size, LOAD_FLAGS, &err);
    json_t *v2 = NULL;
    char *c1 = NULL, *c2 = NULL;
    size_t l1 = 0, l2 = 0;

    if (v1 == NULL)
        return 0;
    c1 = cs_json_canonical(v1, &l1);
    CHECK(c1 != NULL);
    CHECK(strlen(c1) == l1);
    CHECK(cs_utf8_valid(c1, l1));
    for (size_t i = 0; i < l1; i++)
        CHECK((unsigned char)c1[i] >= 0x20);

    v2 = json_loadb(c1, l1, LOAD_FLAGS, &err);
    if (v2 == NULL) {
        CHECK(has_big_integral_real(v1));
        CHECK(strstr(err.text, "too big") != NULL);
        goto out;
    }
    CHECK(same_value(v1, v2));
    c2 = cs_json_canonical(v2, &l2);
    CHECK(c2 != NULL);
    CHECK(l1 == l2 && memcmp(c1, c2, l1) == 0);
out:
    free(c1);
    free(c2);
    json_decref(v1);
    json_decref(v2);
    return 0;
}
