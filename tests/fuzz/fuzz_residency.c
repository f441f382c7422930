/* SPDX-License-Identifier: MIT
 * fuzz_residency.c: libFuzzer target for the residency policy parser
 * (residency/residency.c).
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCS_FUZZ=ON -DCS_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_residency
 *   build-fuzz/fuzz/fuzz_residency -max_total_time=60 tests/fuzz/corpus/residency
 *
 * Any input either parses into a policy whose invariants hold (valid
 * patterns and regions, first-match lookup consistent with the rules,
 * explanations terminated) or fails with at least one error message. The
 * input also drives the pattern-overlap check directly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cs_uri.h"
#include "residency.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const uris[] = {
    "ctx://acme/hr/salaries", "ctx://acme/hr/a/b/c", "ctx://acme/eng/spec",
    "ctx://x/y/z", "ctx://acme/legal/nda",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_residency *p = NULL;
    cs_res_diag d;
    cs_errbuf eb;
    char expl[512];
    size_t i, k;

    eb.msg[0] = '\0';
    if (cs_residency_parse((const char *)data, size, &p, &d, &eb) != CS_OK) {
        if (p != NULL || d.nerrors == 0 || d.n == 0 || eb.msg[0] == '\0')
            abort();
    } else {
        if (p == NULL || d.nerrors != 0)
            abort();
        for (i = 0; i < cs_residency_count(p); i++) {
            const cs_res_rule *r = cs_residency_rule(p, i);
            if (cs_pattern_validate(r->pattern, NULL) != CS_OK ||
                r->home_region[0] == '\0' ||
                !cs_res_payload_allowed(r, r->home_region))
                abort();
        }
        for (k = 0; k < sizeof(uris) / sizeof(uris[0]); k++) {
            size_t idx = 0;
            const cs_res_rule *r = cs_residency_match(p, uris[k], &idx);
            if (r != NULL && (r != cs_residency_rule(p, idx) ||
                              !cs_pattern_match(r->pattern, uris[k])))
                abort();
            cs_residency_explain(p, uris[k], expl, sizeof(expl));
            if (memchr(expl, '\0', sizeof(expl)) == NULL)
                abort();
        }
        cs_residency_free(p);
    }
    for (i = 0; i < d.n; i++)
        if (memchr(d.items[i].msg, '\0', sizeof(d.items[i].msg)) == NULL)
            abort();
    /* the overlap check on two halves of the input, as patterns */
    if (size > 1 && size < 2048) {
        char a[1025], b[1025];
        size_t h = size / 2;
        size_t na = h < 1024 ? h : 1024, nb = size - h < 1024 ? size - h : 1024;
        memcpy(a, data, na);
        a[na] = '\0';
        memcpy(b, data + h, nb);
        b[nb] = '\0';
        if (cs_res_patterns_overlap(a, b) != cs_res_patterns_overlap(b, a))
            abort();
        if (cs_pattern_validate(a, NULL) == CS_OK && !cs_res_patterns_overlap(a, a))
            abort();
    }
    return 0;
}
