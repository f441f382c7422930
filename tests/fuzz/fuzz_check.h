/* SPDX-License-Identifier: MIT
 * fuzz_check.h: CHECK(x), the fuzz targets' invariant: names the failed
 * condition on stderr and aborts, which libFuzzer reports as a crash. */
#ifndef CS_FUZZ_CHECK_H
#define CS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                              \
    do {                                                                      \
        if (!(x)) {                                                           \
            fprintf(stderr, "invariant failed: %s\n", #x);                    \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif
