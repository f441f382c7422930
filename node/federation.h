/* SPDX-License-Identifier: MIT
 * federation.h: the node side of federation (docs/federation-protocol.md):
 * exporting the feed as federation events and applying ingested ones. */
#ifndef CS_FEDERATION_H
#define CS_FEDERATION_H

#include <jansson.h>
#include "db.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"
#include "residency.h"
#include "store.h"

#define CS_FED_PROTO 1

/* residency: what the caller of a feed may receive (federation.md §5).
 * policy NULL: no residency; peer_region: the region of the caller's
 * federation actor ("" or NULL: unknown, never a home region); enforce
 * false: withholding off (test-only CS_RESIDENCY_DISABLE=feed). */
typedef struct cs_fed_view {
    const cs_residency *policy;
    const char *peer_region;
    bool enforce;
} cs_fed_view;

/* Builds the federation event of one change_events row (body = the stored
 * event without "seq"): adds seq, name and, when `full` and the payload is
 * stored here, payload {encoding, data}. With a residency view (may be
 * NULL), home_region follows the matching rule and a home-only payload
 * the caller's region may not hold is withheld (payload_state "withheld",
 * no payload). *payload_bytes (may be NULL) gets the payload size that was
 * inlined (0 if none). New reference in *out. */
cs_err cs_fed_event(cs_store *s, cs_db *db, int64_t seq, const char *body,
                    bool full, const cs_fed_view *view,
                    size_t *payload_bytes, json_t **out, cs_errbuf *eb);

/* True when uri matches one of the comma-separated patterns in list. */
bool cs_fed_patterns_match(const char *list, const char *uri);
/* Validates a comma-separated pattern list (each via cs_pattern_validate). */
cs_err cs_fed_patterns_validate(const char *list, cs_errbuf *eb);

#endif
