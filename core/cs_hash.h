/* SPDX-License-Identifier: MIT
 * cs_hash.h: SHA-256, OS randomness, tokens and constant-time compares
 * (OpenSSL libcrypto behind a small API). */
#ifndef CS_HASH_H
#define CS_HASH_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_err.h"

#define CS_SHA256_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define CS_CONTENT_HASH_LEN (7 + CS_SHA256_HEX_LEN)

/* Lowercase hex SHA-256 of data into out (65 bytes incl. NUL). */
void cs_sha256_hex(const void *data, size_t len, char out[CS_SHA256_HEX_LEN + 1]);
/* "sha256:<hex>" into out (72 bytes incl. NUL). */
void cs_content_hash(const void *data, size_t len, char out[CS_CONTENT_HASH_LEN + 1]);

/* Fills buf with len bytes from the OS CSPRNG. */
cs_err cs_random_bytes(void *buf, size_t len);
/* nbytes random bytes as lowercase hex into out (2*nbytes+1 bytes). */
cs_err cs_random_hex(char *out, size_t nbytes);
/* A new bearer token: base64url (no padding) of 32 random bytes, 43 chars;
 * out must hold at least 44 bytes. */
cs_err cs_token_new(char *out, size_t outlen);

/* Wipes a NUL-terminated secret (a token) and frees it; NULL is fine. */
void cs_free_secret(char *s);

/* Constant-time equality of two equal-length buffers. */
bool cs_ct_equal(const void *a, const void *b, size_t len);

#endif
