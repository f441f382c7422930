/* SPDX-License-Identifier: MIT
 * link.h: one replication link (source node feed -> target node ingest).
 *
 * Each link runs its own thread with the state machine of docs/bridge.md:
 * starting -> catching_up -> live, backing_off on transient errors (then
 * starting again), failed on terminal ones (until an operator acts), stalled
 * while no progress is made although there is work, paused by the operator.
 * Events go to `in_flight` lane threads (lane = hash(uri) % in_flight) that
 * POST /federation/ingest, so that each URI's events stay in order; the
 * checkpoint sent is the low watermark (docs/federation-protocol.md). */
#ifndef BR_LINK_H
#define BR_LINK_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "cs_err.h"

typedef enum {
    BR_ST_STARTING = 0,
    BR_ST_CATCHING_UP,
    BR_ST_LIVE,
    BR_ST_BACKING_OFF,
    BR_ST_STALLED,
    BR_ST_PAUSED,
    BR_ST_FAILED,
    BR_ST_COUNT
} br_state;

/* A consistent copy of one link's status (for /status, /metrics). */
typedef struct br_link_stats {
    char name[BR_NAME_MAX + 1];
    br_state state;
    char reason[256];        /* "" = null */
    char src_node[128];      /* "" = unknown */
    char src_epoch[80];
    int64_t src_head;        /* -1 = unknown */
    char tgt_node[128];
    int64_t applied_seq;     /* checkpoint acknowledged by the target */
    int64_t lag_events;
    double lag_seconds;
    int64_t pending_payload_bytes;
    int64_t applied, duplicate, deferred, fork, rejected;
    int64_t withheld_payloads; /* residency: payloads the bridge held back */
    int64_t reconnects;
    char last_error[320];    /* "" = null */
} br_link_stats;

typedef struct br_link br_link;

/* cfg must outlive the link. */
cs_err br_link_new(const br_link_config *cfg, br_link **out, cs_errbuf *eb);
/* Starts the link's thread. */
cs_err br_link_start(br_link *l, cs_errbuf *eb);
/* Asks the link to stop (returns at once); br_link_join waits for it. */
void br_link_request_stop(br_link *l);
void br_link_join(br_link *l);
void br_link_free(br_link *l);

const char *br_link_name(const br_link *l);
void br_link_snapshot(br_link *l, br_link_stats *out);
/* The status object of spec §6 (plus forks_flagged); new reference. */
json_t *br_link_stats_json(const br_link_stats *s);

/* Operator commands: "pause", "resume", "retry-now", "reset-link". They are
 * queued for the link's thread; msg (may be NULL) gets a one-line answer.
 * CS_EINVAL for an unknown command. */
cs_err br_link_command(br_link *l, const char *cmd, char *msg, size_t msgsz);

const char *br_state_name(br_state s);

/* Deletes the target's checkpoint for the link's source without a running
 * link (ctxsync-bridge reset-link). source_node may be NULL: the source's
 * /federation/info names it. token_override (may be NULL) replaces the
 * target token (DELETE needs admin on the target). */
cs_err br_reset_checkpoint(const br_link_config *cfg, const char *source_node,
                           const char *token_override, char *msg, size_t msgsz,
                           cs_errbuf *eb);

#endif
