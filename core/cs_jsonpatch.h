/* SPDX-License-Identifier: MIT
 * cs_jsonpatch.h: JSON Patch (RFC 6902) generation and application, with
 * JSON Pointer (RFC 6901) paths, on jansson values.
 *
 * Generation emits add / remove / replace only. Objects are diffed key by key
 * (keys in byte order, removals first), recursively; arrays by a longest
 * common subsequence of equal elements (after trimming the common prefix and
 * suffix; when the remaining middle exceeds CS_JSONPATCH_LCS_CELLS pairs it
 * falls back to index-wise pairing, still correct). Unmatched elements are
 * paired in order and diffed recursively, the surplus removed or added.
 * Values in the generated patch are deep copies. Applying the generated patch
 * to `from` gives a value json_equal() to `to`.
 *
 * Application supports all six operations, "-" for appending to an array,
 * and the RFC 6902 error cases; "test" compares numbers by value (1 equals
 * 1.0), everything else as json_equal() does. Both functions recurse once
 * per nesting level of the documents (jansson's parser caps that at 2048). */
#ifndef CS_JSONPATCH_H
#define CS_JSONPATCH_H

#include <jansson.h>

#include "cs_err.h"

/* Largest (middle of from) x (middle of to) array pair solved by LCS. */
#define CS_JSONPATCH_LCS_CELLS 4000000

/* Generates a patch (a JSON array of add/remove/replace operations) that
 * turns `from` into `to`; equal documents give []. Replacing the whole
 * document is {"op": "replace", "path": "", "value": to}. Paths use RFC 6901
 * escaping (~0 for '~', ~1 for '/'). Neither input is modified or retained.
 * On success *out gets a new reference (caller json_decref). Returns CS_OK,
 * CS_EINVAL (a NULL argument) or CS_ENOMEM. */
cs_err cs_jsonpatch_diff(const json_t *from, const json_t *to, json_t **out);

/* Applies an RFC 6902 patch (add, remove, replace, move, copy, test; "-" as
 * the array index past the end for add, copy and move targets) to a deep
 * copy of doc; doc and patch are not modified. On success *out gets a new
 * reference (caller json_decref). An invalid patch or a failing operation
 * (missing member, index out of range, failed test, move into its own child,
 * removing the root, ...) returns CS_EINVAL with a message in eb naming the
 * operation's index and the problem; nothing is returned then. A NULL
 * argument is CS_EINVAL; CS_ENOMEM on allocation failure. */
cs_err cs_jsonpatch_apply(const json_t *doc, const json_t *patch, json_t **out,
                          cs_errbuf *eb);

#endif
