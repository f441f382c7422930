/* SPDX-License-Identifier: MIT
 * sse.h: the SSE hub: fans committed change events out to stream clients.
 *
 * The database is the source of truth and nng is the wake-up: the writer
 * publishes each committed event (in seq order) on CS_EVENTS_URL; the hub
 * thread receives them and appends frames to the queues of clients that are
 * live. A client that resumes (Last-Event-ID / since) is first filled from
 * the change_events table by the hub itself, in pages, and turns live when
 * its cursor reaches the head, so there is no gap and no duplicate between
 * replay and live: each client has one cursor (last seq considered) that
 * only the hub advances, and an event is queued iff seq == cursor + 1.
 *
 * Each client's queue is bounded: a live client with more than max_lag
 * events queued gets an `event: overflow` frame and is disconnected.
 * Delivery re-checks the pattern and the actor's read permission. */
#ifndef CS_SSE_H
#define CS_SSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cs_err.h"
#include "http.h"

typedef struct sse_hub sse_hub;

cs_err sse_hub_start(cs_node *n, sse_hub **out, cs_errbuf *eb);
/* Closes every stream (clients see the end of the stream) and stops. */
void sse_hub_close_all(sse_hub *h);
void sse_hub_stop(sse_hub *h);
unsigned sse_hub_clients(sse_hub *h);
/* Prometheus lines of the hub (appended with cs_buf_appendf). */
void sse_hub_metrics(sse_hub *h, char **buf, size_t *len, size_t *cap);

/* A stream client: pattern (copied), actor (copied), since = last seq the
 * client has (-1: start live at the current head); sub_id (copied, may be
 * NULL) names a persistent subscription whose cursor the hub advances. */
cs_err sse_client_new(sse_hub *h, const cs_actor *actor, const char *pattern,
                      int64_t since, const char *sub_id, sse_client **out);
/* A federation stream (GET /federation/stream): `patterns` is a
 * comma-separated list, delivery needs `replicate`, and frames carry
 * federation events (with payloads when full). */
cs_err sse_client_new_fed(sse_hub *h, const cs_actor *actor,
                          const char *patterns, int64_t since, bool full,
                          sse_client **out);
/* Called by the HTTP layer on the I/O thread when the response is queued:
 * from now on the hub feeds the client and wakes `mhd_connection`. */
void sse_client_attach(sse_client *c, void *mhd_connection);
/* MHD content reader callback and its free callback. */
ssize_t sse_client_read(void *cls, uint64_t pos, char *buf, size_t max);
void sse_client_release(void *cls);
/* Frees a client that was never attached. */
void sse_client_free(sse_client *c);

#endif
