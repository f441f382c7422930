/* SPDX-License-Identifier: MIT
 * status.h: the bridge's local HTTP status endpoint (libmicrohttpd).
 *
 *   GET /status   {"links": [link status, ...]} (federation.md §6)
 *   GET /metrics  Prometheus text format, per-link series with a link label
 *
 * It only reads link snapshots, so it stays up while links fail. */
#ifndef BR_STATUS_H
#define BR_STATUS_H

#include <stddef.h>

#include "cs_err.h"
#include "link.h"

typedef struct br_status br_status;

/* Listens on "HOST:PORT" (port 0 = any free port). links must outlive it. */
cs_err br_status_start(const char *hostport, br_link *const *links, size_t nlinks,
                       br_status **out, cs_errbuf *eb);
/* The bound port. */
int br_status_port(const br_status *s);
void br_status_stop(br_status *s);

/* The /status document (new reference) and the /metrics text (malloc'd). */
json_t *br_status_json(br_link *const *links, size_t nlinks);
char *br_metrics_text(br_link *const *links, size_t nlinks, size_t *len);

#endif
