/* SPDX-License-Identifier: MIT
 * cs_test.h: a tiny single-header harness for the unit tests.
 *
 * Each check counts as passed or failed; a failure prints file:line and the
 * failed expression (with both values for the _EQ forms) on stderr and the
 * test goes on. main() ends with `return cs_test_summary();`, which prints
 * "N passed, M failed" and returns 0 only when nothing failed and at least
 * one check ran (a test that asserts nothing is a failure).
 *
 * Include it in exactly one translation unit per test program: the counters
 * are file-local statics. */
#ifndef CS_TEST_H
#define CS_TEST_H

#include <stdio.h>
#include <string.h>

static unsigned long cs_test_passed_;
static unsigned long cs_test_failed_;

/* Records one check; returns ok so that callers can branch on it. */
static inline int
cs_test_record_(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        cs_test_passed_++;
    } else {
        cs_test_failed_++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    }
    return ok;
}

static inline int
cs_test_str_eq_(const char *a, const char *b, const char *file, int line,
                const char *ea, const char *eb)
{
    int ok = (a == NULL && b == NULL) ||
             (a != NULL && b != NULL && strcmp(a, b) == 0);
    if (!cs_test_record_(ok, file, line, "string equality"))
        fprintf(stderr, "    %s == \"%s\"\n    %s == \"%s\"\n", ea,
                a ? a : "(null)", eb, b ? b : "(null)");
    return ok;
}

static inline int
cs_test_int_eq_(long long a, long long b, const char *file, int line,
                const char *ea, const char *eb)
{
    int ok = a == b;
    if (!cs_test_record_(ok, file, line, "integer equality"))
        fprintf(stderr, "    %s == %lld\n    %s == %lld\n", ea, a, eb, b);
    return ok;
}

/* Each macro evaluates to nonzero when the check passed. */
#define CS_CHECK(expr) cs_test_record_(!!(expr), __FILE__, __LINE__, #expr)
#define CS_CHECK_STR_EQ(a, b) \
    cs_test_str_eq_((a), (b), __FILE__, __LINE__, #a, #b)
#define CS_CHECK_INT_EQ(a, b) \
    cs_test_int_eq_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)

/* Prints "N passed, M failed"; returns the process exit status. */
static inline int
cs_test_summary(void)
{
    printf("%lu passed, %lu failed\n", cs_test_passed_, cs_test_failed_);
    if (cs_test_passed_ + cs_test_failed_ == 0) {
        fprintf(stderr, "no checks ran\n");
        return 1;
    }
    return cs_test_failed_ == 0 ? 0 : 1;
}

#endif
