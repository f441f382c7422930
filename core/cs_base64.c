/* SPDX-License-Identifier: MIT */
#include "cs_base64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *
cs_base64_encode(const void *data, size_t len, bool url)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    unsigned char *out;
    int n;
    if (len > (size_t)1 << 30)
        return NULL;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    n = EVP_EncodeBlock(out, data, (int)len);
    if (url) {
        while (n > 0 && out[n - 1] == '=')
            n--;
        for (int i = 0; i < n; i++) {
            if (out[i] == '+')
                out[i] = '-';
            else if (out[i] == '/')
                out[i] = '_';
        }
    }
    out[n] = '\0';
    return (char *)out;
}

char *
cs_base64_decode(const char *in, size_t inlen, size_t *outlen)
{
    size_t padded, pad = 0;
    unsigned char *norm = NULL, *out = NULL;
    int n;

    while (inlen > 0 && in[inlen - 1] == '=' && pad < 2) {
        inlen--;
        pad++;
    }
    if (inlen % 4 == 1 || inlen > (size_t)1 << 30)
        return NULL;
    padded = (inlen + 3) / 4 * 4;
    norm = malloc(padded + 1);
    out = malloc(padded / 4 * 3 + 1);
    if (norm == NULL || out == NULL)
        goto fail;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        /* EVP_DecodeBlock skips surrounding whitespace: refuse it here */
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            goto fail;
        norm[i] = (unsigned char)c;
    }
    pad = padded - inlen;
    memset(norm + inlen, '=', pad);
    n = padded ? EVP_DecodeBlock(out, norm, (int)padded) : 0;
    if (n < 0 || (size_t)n < pad)
        goto fail;
    n -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    out[n] = '\0';
    free(norm);
    *outlen = (size_t)n;
    return (char *)out;
fail:
    free(norm);
    free(out);
    return NULL;
}
