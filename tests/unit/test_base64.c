/* SPDX-License-Identifier: MIT
 * Unit tests of core/cs_base64: RFC 4648 §10 vectors, URL-safe form,
 * round trips of random data, and rejection of malformed input. */
#include <stdlib.h>
#include <string.h>

#include "cs_base64.h"
#include "cs_test.h"

static void
vector(const char *plain, const char *std, const char *url)
{
    size_t n = 0;
    char *e = cs_base64_encode(plain, strlen(plain), false);
    char *u = cs_base64_encode(plain, strlen(plain), true);
    char *d1 = cs_base64_decode(std, strlen(std), &n);
    CS_CHECK_STR_EQ(e, std);
    CS_CHECK_STR_EQ(u, url);
    CS_CHECK(d1 != NULL && n == strlen(plain) && memcmp(d1, plain, n) == 0);
    free(d1);
    d1 = cs_base64_decode(url, strlen(url), &n);
    CS_CHECK(d1 != NULL && n == strlen(plain) && memcmp(d1, plain, n) == 0);
    free(d1);
    free(e);
    free(u);
}

int
main(void)
{
    size_t n;
    static const char *const bad[] = {"a", "ab=c", "ab c", " abc", "abc\n",
                                      "a===", "%%%%", "abcde"};
    vector("", "", "");
    vector("f", "Zg==", "Zg");
    vector("fo", "Zm8=", "Zm8");
    vector("foo", "Zm9v", "Zm9v");
    vector("foob", "Zm9vYg==", "Zm9vYg");
    vector("fooba", "Zm9vYmE=", "Zm9vYmE");
    vector("foobar", "Zm9vYmFy", "Zm9vYmFy");
    vector("\xfb\xff\xbf", "+/+/", "-_-_");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *d = cs_base64_decode(bad[i], strlen(bad[i]), &n);
        CS_CHECK(d == NULL);
        free(d);
    }
    srand(7);
    for (int round = 0; round < 500; round++) {
        unsigned char buf[300];
        size_t len = (size_t)(rand() % 300);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rand();
        for (int url = 0; url < 2; url++) {
            char *e = cs_base64_encode(buf, len, url);
            char *d = e ? cs_base64_decode(e, strlen(e), &n) : NULL;
            CS_CHECK(d != NULL && n == len && memcmp(d, buf, len) == 0);
            free(e);
            free(d);
        }
    }
    return cs_test_summary();
}
