/* SPDX-License-Identifier: MIT */
#include "cs_hash.h"

#include "cs_base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

static void
to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
cs_sha256_hex(const void *data, size_t len, char out[CS_SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

void
cs_content_hash(const void *data, size_t len, char out[CS_CONTENT_HASH_LEN + 1])
{
    snprintf(out, 8, "sha256:");
    cs_sha256_hex(data, len, out + 7); /* NUL-terminates */
}

cs_err
cs_random_bytes(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1)
        return CS_EIO;
    return CS_OK;
}

cs_err
cs_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof(raw))
        return CS_EINVAL;
    if (cs_random_bytes(raw, nbytes) != CS_OK)
        return CS_EIO;
    to_hex(raw, nbytes, out);
    return CS_OK;
}

cs_err
cs_token_new(char *out, size_t outlen)
{
    unsigned char raw[32];
    char *enc;

    if (outlen < 44)
        return CS_EINVAL;
    if (cs_random_bytes(raw, sizeof(raw)) != CS_OK)
        return CS_EIO;
    enc = cs_base64_encode(raw, sizeof(raw), true); /* 43 chars */
    if (enc == NULL)
        return CS_ENOMEM;
    snprintf(out, outlen, "%s", enc);
    OPENSSL_cleanse(enc, strlen(enc));
    OPENSSL_cleanse(raw, sizeof(raw));
    free(enc);
    return CS_OK;
}

void
cs_free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

bool
cs_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
