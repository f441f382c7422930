/* SPDX-License-Identifier: MIT
 * cs_base64.h: RFC 4648 base64, standard (§4, padded) and URL-safe (§5,
 * unpadded), on OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock. */
#ifndef CS_BASE64_H
#define CS_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Encodes len bytes; url selects the URL-safe alphabet without padding.
 * Returns a malloc'd NUL-terminated string (caller frees), NULL on OOM. */
char *cs_base64_encode(const void *data, size_t len, bool url);

/* Decodes standard or URL-safe base64, padded or not (no whitespace).
 * Returns malloc'd bytes with a NUL after them (caller frees) and their
 * length in *outlen, or NULL when the input is not base64 (or on OOM). */
char *cs_base64_decode(const char *in, size_t inlen, size_t *outlen);

#endif
