/* SPDX-License-Identifier: MIT
 * cs_uri.h: artifact URIs and URI patterns.
 *
 * An artifact URI is ctx://{org}/{domain}/{id}; a pattern is the same shape
 * with the wildcards '*' (any run of characters inside one segment) and "**"
 * (zero or more whole segments), or the bare pattern "**". This module
 * validates both, matches a pattern against a URI without backtracking
 * blow-up, and decides whether one pattern covers another (permissions).
 * Every function here is pure: no allocation, no global state. The grammar
 * and the covers() rule are written down in docs/internals/core-parsers.md. */
#ifndef CS_URI_H
#define CS_URI_H

#include <stdbool.h>

#include "cs_err.h"

#define CS_URI_MAX 1024

typedef struct cs_uri_parts {
    char org[CS_URI_MAX + 1];
    char domain[CS_URI_MAX + 1];
    char id[CS_URI_MAX + 1];
} cs_uri_parts;

/* Validates an artifact URI ctx://{org}/{domain}/{id}: org and domain one
 * segment each of [A-Za-z0-9._-]+, id one or more such segments separated by
 * '/', no empty segment, no trailing slash, total length <= 1024 bytes.
 * On success fills *out (if not NULL; id keeps its inner '/') and returns
 * CS_OK. Otherwise returns CS_EINVAL with a message in eb (if not NULL)
 * naming the problem and its 0-based byte offset, e.g. "uri must start with
 * ctx://", "empty segment at byte 14", "invalid character '%' at byte 9",
 * "uri longer than 1024 bytes"; *out is then unspecified. A NULL uri is
 * CS_EINVAL. */
cs_err cs_uri_parse(const char *uri, cs_uri_parts *out, cs_errbuf *eb);

// (The pattern contracts below use // comments: patterns such as ctx://**
// contain the two characters that would open a nested block comment.)

// Validates a pattern: either exactly "**", or "ctx://" followed by one or
// more '/'-separated non-empty segments, each made of [A-Za-z0-9._-] and '*'.
// A segment that contains "**" must be exactly "**" ("a**b", "***" are
// invalid). Max length 1024 bytes. Returns CS_OK, or CS_EINVAL with a
// message in eb (if not NULL) naming the problem and its byte offset.
cs_err cs_pattern_validate(const char *pattern, cs_errbuf *eb);

// Anchored match of a pattern against an artifact URI. A segment "**"
// matches zero or more whole segments; '*' elsewhere matches any run
// (possibly empty) of characters inside one segment, never '/'. The bare
// pattern "**" matches every valid URI. Returns false when the pattern is
// invalid or the URI is not a valid artifact URI (cs_uri_parse), so that a
// malformed string can never widen access. Worst case O(|pattern| * |uri|)
// time, no allocation, no recursion.
bool cs_pattern_match(const char *pattern, const char *uri);

// True when every URI matched by `inner` is also matched by `outer`; false
// when either pattern is invalid. The rule (sound, possibly conservative):
// the bare "**" is read as ctx://** (they match the same URIs). Then inner,
// read as a string whose wildcards are opaque symbols, must be matched by
// outer, where an outer "**" segment absorbs any number of whole inner
// segments (including inner "**" segments), an outer '*' absorbs any run of
// characters of one inner segment (including inner '*'), and any other outer
// character only matches the same inner character. So an inner "**" is only
// covered by an outer "**", and an inner '*' only by an outer '*'.
// Exact for identical patterns, for "**" covering everything, for
// ctx://a/** covering ctx://a/b/**, ctx://a/b/c and ctx://a/*/c, and
// ctx://a/b/** does not cover ctx://a/**. It may answer false for a cover
// that only holds because of the shape of valid URIs (ctx://*/*/** does
// cover ctx://** over valid URIs, yet this returns false).
bool cs_pattern_covers(const char *outer, const char *inner);

#endif
