/* SPDX-License-Identifier: MIT
 * forks.h: the fork review queue of a node (docs/forks.md): fork records
 * kept in step with the version graph, and the review API. */
#ifndef CS_FORKS_H
#define CS_FORKS_H

#include <stdbool.h>

#include "cs_err.h"
#include "cs_uri.h"
#include "store.h"

/* Inside a write, after a version was applied (ingested, or written
 * locally): when has_siblings, opens the fork (uri, parent_id) — or reopens
 * it when it had been resolved by a version that does not cover the new
 * branch; then marks resolved every open fork of uri whose branches are all
 * in the ancestry (parent_id and merged_from, transitively) of version_id,
 * with version_id as resolution and author_id as resolver. */
cs_err cs_forks_after_apply(cs_tx *tx, const char *uri,
                            const cs_uri_parts *parts, const char *version_id,
                            const char *parent_id, bool has_siblings,
                            const char *author_id, const char *detected_by,
                            cs_errbuf *eb);

/* Automatic resolution policies, from --fork-policy PATTERN=POLICY with
 * POLICY manual | lww | region-priority:R1,R2,... (first matching pattern
 * wins). Validates and keeps a copy; CS_EINVAL with a message otherwise.
 * Call once at start, before serving. */
cs_err cs_forks_set_policies(const char *const *specs, unsigned n,
                             cs_errbuf *eb);

/* Prometheus lines: open forks by org/domain, detected/resolved totals. */
void cs_forks_metrics(cs_db *db, char **buf, size_t *len, size_t *cap);

#endif
