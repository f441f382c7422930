/* SPDX-License-Identifier: MIT
 * cs_diff.h: line diff of two texts (Myers O(ND), linear space) and GNU-style
 * unified output.
 *
 * Lines are the text split on '\n'; a final '\n' ends the last line and adds
 * no empty line; an empty text has zero lines. A last line without its '\n'
 * differs from the same bytes followed by '\n' (as in GNU diff), so that the
 * unified output applied with GNU patch rebuilds the new text byte-for-byte.
 *
 * Algorithm: lines are interned into equivalence classes (hash + exact byte
 * compare); lines whose class never occurs on the other side are marked
 * changed up front (they cannot be in any common subsequence); the rest goes
 * through Myers' middle-snake divide and conquer with an explicit work stack
 * (no recursion). The result is minimal unless a subproblem needs more than
 * ~4096 search steps (an edit distance above ~8192 lines); there, as GNU diff
 * does by default, the best diagonal reached so far splits the problem. And
 * once the whole search has visited 10^8 diagonals (about a second), every
 * further subproblem is split after one step. Either way the diff stays
 * correct (it rebuilds both texts) but may not be minimal: time is bounded
 * (two random 1M-line texts over a 2-line alphabet: ~3 s; GNU diff: 25 s).
 *
 * Limits: at most CS_DIFF_MAX_LINES lines in a and b together, else
 * CS_ETOOBIG. Memory is O(N+M), about 55 bytes per line at peak (~110 MB at
 * the limit; an 8 MiB body of ordinary text has far fewer lines). A single
 * line longer than 4 GiB is CS_ETOOBIG. */
#ifndef CS_DIFF_H
#define CS_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_err.h"

#define CS_DIFF_MAX_LINES 2000000

typedef struct cs_diff cs_diff; /* opaque */

typedef struct cs_diff_op {
    char op;          /* ' ' unchanged, '+' added (from b), '-' removed (from a) */
    const char *line; /* points into a or b (borrowed; valid while a/b live);
                         excludes the '\n' */
    size_t len;
    bool no_newline;  /* last line of its file, and that file has no final '\n' */
} cs_diff_op;

/* Diffs a[0..alen) against b[0..blen) (either may be NULL when its length is
 * 0). Borrows a and b: they must outlive the diff. The ops come in text
 * order; within a change, the removed lines come before the added ones; ' '
 * ops point into a. *out is set only on success; the caller frees it with
 * cs_diff_free. Returns CS_OK, CS_EINVAL (NULL out, or NULL text with a
 * non-zero length), CS_ETOOBIG (more than CS_DIFF_MAX_LINES lines in total),
 * or CS_ENOMEM. */
cs_err cs_diff_lines(const char *a, size_t alen, const char *b, size_t blen,
                     cs_diff **out);

/* Number of ops in d (0 for NULL). */
size_t cs_diff_count(const cs_diff *d);

/* The i-th op, borrowed from d; NULL when i >= cs_diff_count(d). */
const cs_diff_op *cs_diff_get(const cs_diff *d, size_t i);

/* Counts of '+', '-' and ' ' ops; each out-pointer may be NULL. */
void cs_diff_stats(const cs_diff *d, size_t *added, size_t *removed,
                   size_t *unchanged);

/* GNU-style unified diff with `context` lines of context (3 normally):
 * "--- a_label\n+++ b_label\n" then hunks "@@ -l,s +l,s @@" formatted as GNU
 * diff -u does (",s" omitted when s == 1, "-0,0" forms for empty files;
 * changes closer than 2*context+1 lines share a hunk) and the line
 * "\ No newline at end of file" after a line that lacks its '\n'. GNU patch
 * applies it to a to get b byte-for-byte. Identical inputs produce an empty
 * string (like diff). A NULL label stands for "a" or "b". *out is malloc'd,
 * NUL-terminated and owned by the caller (free()); *outlen (if not NULL) gets
 * its length without the NUL (lines may contain NUL bytes). Both are set only
 * on success. Returns CS_OK, CS_EINVAL (NULL d or out, negative context, a
 * label containing '\n') or CS_ENOMEM. */
cs_err cs_diff_unified(const cs_diff *d, const char *a_label,
                       const char *b_label, int context, char **out,
                       size_t *outlen);

/* Frees d (NULL is fine). a and b are not touched. */
void cs_diff_free(cs_diff *d);

#endif
