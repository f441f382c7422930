/* SPDX-License-Identifier: MIT
 * fork.c: fork naming, the provisional-head order and automatic policies. */
#include "fork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
cs_fork_id(const char *uri, const char *parent_id,
           char out[CS_FORK_ID_LEN + 1])
{
    size_t ul = strlen(uri), pl = parent_id ? strlen(parent_id) : 0;
    char stackbuf[2048];
    char *buf = ul + pl + 2 <= sizeof(stackbuf) ? stackbuf : malloc(ul + pl + 2);
    if (buf == NULL) { /* cannot happen for valid URIs (<= 1024 bytes) */
        out[0] = '\0';
        return;
    }
    memcpy(buf, uri, ul);
    buf[ul] = '\n';
    if (pl > 0)
        memcpy(buf + ul + 1, parent_id, pl);
    out[0] = 'f';
    out[1] = ':';
    cs_sha256_hex(buf, ul + 1 + pl, out + 2);
    if (buf != stackbuf)
        free(buf);
}

bool
cs_fork_tip_better(const cs_fork_tip *a, const cs_fork_tip *b)
{
    int c;
    if (a->deleted != b->deleted)
        return !a->deleted;
    if (a->version != b->version)
        return a->version > b->version;
    c = strcmp(a->created_at ? a->created_at : "", b->created_at ? b->created_at : "");
    if (c != 0)
        return c > 0;
    return strcmp(a->version_id, b->version_id) > 0;
}

int
cs_fork_pick_head(const cs_fork_tip *tips, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (cs_fork_tip_better(&tips[i], &tips[best]))
            best = i;
    return best;
}

/* Position of region in the comma-separated list, or -1. */
static int
region_rank(const char *list, const char *region)
{
    int rank = 0;
    size_t rl = region ? strlen(region) : 0;
    const char *p = list;
    if (region == NULL || list == NULL)
        return -1;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == rl && strncmp(p, region, n) == 0)
            return rank;
        rank++;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return -1;
}

int
cs_fork_policy_choose(cs_fork_policy_kind kind, const char *regions,
                      const cs_fork_tip *branches, int n)
{
    int best = -1, best_rank = -1;
    if (n < 1)
        return -1;
    switch (kind) {
    case CS_FORK_LWW:
        best = 0;
        for (int i = 1; i < n; i++) {
            int c = strcmp(branches[i].created_at, branches[best].created_at);
            if (c > 0 || (c == 0 && strcmp(branches[i].version_id,
                                           branches[best].version_id) > 0))
                best = i;
        }
        return best;
    case CS_FORK_REGION_PRIORITY:
        for (int i = 0; i < n; i++) {
            int r = region_rank(regions, branches[i].origin_region);
            if (r < 0)
                continue;
            if (best < 0 || r < best_rank ||
                (r == best_rank &&
                 cs_fork_tip_better(&branches[i], &branches[best]))) {
                best = i;
                best_rank = r;
            }
        }
        return best;
    case CS_FORK_MANUAL:
        break;
    }
    return -1;
}
