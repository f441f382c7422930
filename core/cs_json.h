/* SPDX-License-Identifier: MIT
 * cs_json.h: JSON helpers on top of jansson: canonical encoding, strict
 * UTF-8 validation, typed getters with clear errors, and RFC 3339 times. */
#ifndef CS_JSON_H
#define CS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"

/* Canonical form used for stored content and hashing: compact, keys sorted,
 * non-ASCII kept as UTF-8, no trailing newline. Caller frees with free(). */
char *cs_json_canonical(const json_t *v, size_t *len);

/* True when buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * max U+10FFFF). */
bool cs_utf8_valid(const char *buf, size_t len);

/* Parses a strict JSON document (any value at the top) from buf; rejects
 * invalid UTF-8 and NUL bytes. New reference in *out on success. */
cs_err cs_json_parse(const char *buf, size_t len, json_t **out, cs_errbuf *eb);

/* Typed member getters for request bodies. Return CS_ENOTFOUND when the key
 * is absent (or null when allow_null), CS_EINVAL with a message naming the
 * field when the type is wrong. *out borrows from obj. */
cs_err cs_json_get_str(const json_t *obj, const char *key, const char **out, cs_errbuf *eb);
cs_err cs_json_get_int(const json_t *obj, const char *key, int64_t *out, cs_errbuf *eb);

/* Current UTC time as RFC 3339 with microseconds ("2026-11-25T13:00:00.123456Z")
 * into out (28 bytes incl. NUL), and as microseconds since the epoch. */
#define CS_TIME_LEN 28
int64_t cs_now_us(void);
void cs_time_format(int64_t us, char out[CS_TIME_LEN]);
/* Parses RFC 3339 (with 'Z' or a ±hh:mm offset, optional fraction) into
 * microseconds since the epoch. */
cs_err cs_time_parse(const char *s, int64_t *us);

#endif
