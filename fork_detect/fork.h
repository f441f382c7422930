/* SPDX-License-Identifier: MIT
 * fork.h: fork naming and the provisional-head rule (federation.md §4).
 *
 * Pure logic, no I/O: every node must name a fork and choose the
 * provisional head identically, from the version records alone, without
 * looking at clocks or arrival order. The node's store (node/forks.c)
 * keeps the fork records; this module only decides. */
#ifndef CS_FORK_H
#define CS_FORK_H

#include <stdbool.h>
#include <stdint.h>

#include "cs_hash.h"

#define CS_FORK_ID_LEN (2 + CS_SHA256_HEX_LEN)

/* fork_id = "f:" + hex(SHA-256(uri + "\n" + (parent_id or ""))) into out
 * (CS_FORK_ID_LEN + 1 bytes). parent_id NULL for two creations. */
void cs_fork_id(const char *uri, const char *parent_id,
                char out[CS_FORK_ID_LEN + 1]);

/* A tip of a version graph, as the head rule needs it (strings borrowed). */
typedef struct cs_fork_tip {
    const char *version_id;
    int64_t version;
    bool deleted;
    const char *created_at; /* RFC 3339 UTC with microseconds */
    const char *origin_region;
} cs_fork_tip;

/* True when a is a better provisional head than b: a non-deleted tip beats
 * a tombstone, then the highest version number, then the latest created_at
 * (fixed-width UTC text compares in time order), then the greatest
 * version_id. A total order: exactly one of a<b, b<a holds for a != b. */
bool cs_fork_tip_better(const cs_fork_tip *a, const cs_fork_tip *b);

/* Index of the provisional head among n >= 1 tips. */
int cs_fork_pick_head(const cs_fork_tip *tips, int n);

/* Automatic resolution policies (flag --fork-policy PATTERN=POLICY). */
typedef enum {
    CS_FORK_MANUAL = 0,
    CS_FORK_LWW,             /* keep the latest created_at */
    CS_FORK_REGION_PRIORITY, /* keep the branch from the first listed region */
} cs_fork_policy_kind;

/* The branch an automatic policy keeps, or -1 when none applies (manual,
 * or region-priority naming none of the branches' regions). regions is
 * the comma-separated priority list for CS_FORK_REGION_PRIORITY. */
int cs_fork_policy_choose(cs_fork_policy_kind kind, const char *regions,
                          const cs_fork_tip *branches, int n);

#endif
