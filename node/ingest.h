/* SPDX-License-Identifier: MIT
 * ingest.h: POST /federation/ingest (federation.md §3,
 * docs/federation-protocol.md "Ingest semantics").
 *
 * Work split: everything that needs no database state (shape and type
 * checks, URI, replicate permission, version_id recomputation, payload
 * decoding and SHA-256 verification) runs on the worker thread; the
 * classification (duplicate / deferred / applied / fork), the writes, the
 * pending-table drain, the dead letters and the checkpoint run in ONE
 * write transaction on the writer thread. */
#ifndef CS_INGEST_H
#define CS_INGEST_H

#include "http.h"

#define CS_INGEST_MAX_EVENTS 10000

void cs_ingest_handle(cs_req *r);

/* Prometheus lines: ingested events by status, batches. */
void cs_ingest_metrics(char **buf, size_t *len, size_t *cap);

#endif
