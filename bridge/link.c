/* SPDX-License-Identifier: MIT
 * link.c: one replication link: state machine, catch-up, live stream,
 * ingest lanes, low-watermark checkpoints, backfill of deferred events,
 * stall detection and operator commands (see link.h, docs/bridge.md). */
#include "link.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "http_client.h"
#include "sse_parse.h"

#define FLUSH_MS 20              /* a non-full batch waits at most this long */
#define TICK_MS 10               /* stream loop tick */
#define LANE_QUEUE_MAX 2         /* queued batches per lane (plus in flight) */
#define DRAIN_TIMEOUT_MS 10000   /* in-flight ingests at the end of a session */
#define SSE_MAX_EVENT ((size_t)64 * 1024 * 1024)
#define BACKOFF_BASE_MS 500
#define BR_LOST_MAX 32           /* lost seq ranges kept per target */
#define BACKOFF_MIN_MS 50

static const char *const state_names[BR_ST_COUNT] = {
    "starting", "catching_up", "live", "backing_off", "stalled", "paused", "failed",
};

const char *
br_state_name(br_state s)
{
    return s < BR_ST_COUNT ? state_names[s] : "unknown";
}

/* ---- time --------------------------------------------------------------- */

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
abs_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- the low-watermark tracker ------------------------------------------ */

/* Every event (and page end) received in this session, in seq order, until
 * it and everything before it has been answered by the target. */
typedef struct trk_ent {
    int64_t seq;
    int64_t created_us; /* origin created_at, 0 for markers */
    bool done;
} trk_ent;

typedef struct tracker {
    trk_ent *a;
    size_t cap, head, n;
    int64_t wm; /* every seq <= wm has been answered */
} tracker;

static trk_ent *
trk_at(tracker *t, size_t i)
{
    return &t->a[(t->head + i) % t->cap];
}

static cs_err
trk_push(tracker *t, int64_t seq, int64_t created_us, bool done)
{
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024, i;
        trk_ent *na = malloc(ncap * sizeof(*na));
        if (na == NULL)
            return CS_ENOMEM;
        for (i = 0; i < t->n; i++)
            na[i] = *trk_at(t, i);
        free(t->a);
        t->a = na;
        t->cap = ncap;
        t->head = 0;
    }
    t->a[(t->head + t->n) % t->cap] = (trk_ent){seq, created_us, done};
    t->n++;
    return CS_OK;
}

static void
trk_pop(tracker *t)
{
    while (t->n > 0 && trk_at(t, 0)->done) {
        t->wm = trk_at(t, 0)->seq;
        t->head = (t->head + 1) % t->cap;
        t->n--;
    }
}

static void
trk_mark(tracker *t, int64_t seq)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t s = trk_at(t, mid)->seq;
        if (s == seq) {
            trk_at(t, mid)->done = true;
            return;
        }
        if (s < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* The watermark the target may store with an ingest of the (sorted) seqs:
 * the batch commits atomically with the checkpoint, so its own events count
 * as answered. */
static int64_t
trk_cp_with(tracker *t, const int64_t *seqs, size_t k)
{
    int64_t cp = t->wm;
    size_t i, j = 0;
    for (i = 0; i < t->n; i++) {
        trk_ent *e = trk_at(t, i);
        while (j < k && seqs[j] < e->seq)
            j++;
        if (e->done || (j < k && seqs[j] == e->seq))
            cp = e->seq;
        else
            break;
    }
    return cp;
}

static void
trk_clear(tracker *t, int64_t wm)
{
    t->head = 0;
    t->n = 0;
    t->wm = wm;
}

/* ---- batches and lanes -------------------------------------------------- */

typedef struct batch {
    struct batch *next;
    json_t *events;   /* array of federation events */
    int64_t *seqs;    /* their source seqs, ascending */
    size_t n, cap;
    int64_t payload_bytes;
    int64_t first_ms; /* when the first event was added */
} batch;

typedef struct lane {
    struct br_link *l;
    int idx;
    pthread_t th;
    bool running;
    br_http *tgt;   /* ingest */
    br_http *src;   /* backfill (/federation/versions) */
    batch *q_head, *q_tail;
    int depth;
    bool busy;
    batch *open;    /* being filled by the link thread */
} lane;

typedef struct counters {
    int64_t applied, duplicate, deferred, fork, rejected;
} counters;

struct br_link {
    const br_link_config *cfg;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* commands (under mu) */
    atomic_int stop;
    atomic_int interrupt;   /* the source side must stop (command, lane error) */
    atomic_int lane_abort;  /* in-flight ingests must stop */
    bool cmd_pause, cmd_resume, cmd_retry, cmd_reset;
    bool paused;

    /* session (under mu where lanes touch it) */
    bool session_stop;
    bool lane_failed;
    br_fail_class lane_cls;
    char lane_reason[256];
    char lane_detail[320];
    lane *lanes;
    int nlanes;
    tracker trk;
    int64_t last_pushed;    /* highest seq pushed into the tracker */
    int64_t last_cp_sent;   /* highest checkpoint sent by an idle flush */
    bool empty_ingest_ok;
    int64_t last_idle_flush_ms;

    /* identities (link thread writes under mu) */
    char src_node[128], src_epoch[80], tgt_node[128], tgt_epoch[80];
    /* seqs of the target's own events it lost in restores (its
     * /federation/info lost_seqs): events of those are sent back to it
     * instead of being skipped by loop prevention */
    int64_t tgt_lost[BR_LOST_MAX][2];
    int ntgt_lost;
    char tgt_region[80];    /* residency: "" = unknown (withholds all) */
    int64_t withheld;       /* residency: payloads held back (under mu) */
    bool res_off;           /* residency: CS_RESIDENCY_DISABLE=bridge */
    char src_seg[400];      /* escaped source node id for checkpoint paths */
    int64_t head;           /* -1 unknown */
    int64_t acked;          /* checkpoint acknowledged by the target */

    /* status (under mu) */
    br_state phase;         /* underlying state */
    bool stalled;
    br_state shown;         /* what /status says */
    char reason[256];
    char last_error[320];
    counters cnt;
    int64_t reconnects;
    int64_t pending_bytes;
    int64_t progress_ms;    /* last ingest answer or watermark move */
    int64_t alive_ms;       /* last byte from the stream */
    bool streaming;

    /* link-thread only */
    br_http *src, *src_stream, *tgt;
    br_sse *sse;
    uint64_t rng;
    int attempt;
    br_fail_class s_cls;    /* first error of the session */
    char s_reason[256];
    char s_detail[320];
    char *stream_path;
};

/* ---- state and errors --------------------------------------------------- */

/* Recomputes the shown state; logs a change. Caller holds mu. */
static void
update_shown(br_link *l)
{
    br_state s = l->phase;
    if (l->stalled && (s == BR_ST_CATCHING_UP || s == BR_ST_LIVE))
        s = BR_ST_STALLED;
    if (s != l->shown) {
        if (l->reason[0] != '\0' &&
            (s == BR_ST_FAILED || s == BR_ST_BACKING_OFF || s == BR_ST_STALLED ||
             s == BR_ST_PAUSED))
            cs_log(s == BR_ST_FAILED ? CS_LOG_ERROR : CS_LOG_NOTICE, "BRIDGE-STATE",
                   "link=%s from=%s to=%s reason=\"%s\"", l->cfg->name,
                   br_state_name(l->shown), br_state_name(s), l->reason);
        else
            cs_log(CS_LOG_NOTICE, "BRIDGE-STATE", "link=%s from=%s to=%s",
                   l->cfg->name, br_state_name(l->shown), br_state_name(s));
        l->shown = s;
    }
}

static void
set_phase(br_link *l, br_state s, const char *reason)
{
    pthread_mutex_lock(&l->mu);
    /* %.*s: reasons are bounded text; truncation is acceptable */
    snprintf(l->reason, sizeof(l->reason), "%.*s", (int)sizeof(l->reason) - 1,
             reason != NULL ? reason : "");
    l->phase = s;
    if (s != BR_ST_CATCHING_UP && s != BR_ST_LIVE)
        l->stalled = false;
    update_shown(l);
    pthread_mutex_unlock(&l->mu);
}

/* Records the first error of the session (link thread). */
static void
session_fail(br_link *l, br_fail_class cls, const char *reason, const char *detail)
{
    if (l->s_cls != BR_FAIL_NONE && l->s_cls != BR_FAIL_ABORTED)
        return;
    if (l->s_cls == BR_FAIL_ABORTED && cls == BR_FAIL_ABORTED)
        return;
    l->s_cls = cls;
    snprintf(l->s_reason, sizeof(l->s_reason), "%s", reason);
    snprintf(l->s_detail, sizeof(l->s_detail), "%s", detail);
}

static void
log_http_error(br_link *l, const char *end, const char *method, const char *path,
               const br_http_err *e, char *detail, size_t dsz)
{
    char p[200];
    const char *q = strchr(path, '?');
    size_t n = q != NULL ? (size_t)(q - path) : strlen(path);
    if (n >= sizeof(p))
        n = sizeof(p) - 1;
    memcpy(p, path, n);
    p[n] = '\0';
    /* Truncation is fine here: the detail is for humans and its head (end,
     * method, path) is what matters. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
    snprintf(detail, dsz, "%s %s %s: %s", end, method, p, e->reason);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    if (e->cls == BR_FAIL_ABORTED)
        return;
    cs_log(CS_LOG_WARN, "BRIDGE-ERROR", "link=%s end=%s op=\"%s %s\" class=%s error=\"%s\"",
           l->cfg->name, end, method, p,
           e->cls == BR_FAIL_TERMINAL ? "terminal" : "transient", e->reason);
    pthread_mutex_lock(&l->mu);
    snprintf(l->last_error, sizeof(l->last_error), "%s", detail);
    pthread_mutex_unlock(&l->mu);
}

/* Session error from an HTTP failure of the link thread. */
static void
http_fail(br_link *l, const char *end, const char *method, const char *path,
          const br_http_err *e)
{
    char detail[320];
    log_http_error(l, end, method, path, e, detail, sizeof(detail));
    session_fail(l, e->cls == BR_FAIL_TERMINAL ? BR_FAIL_TERMINAL
                    : e->cls == BR_FAIL_ABORTED ? BR_FAIL_ABORTED
                                                : BR_FAIL_TRANSIENT,
                 e->reason, detail);
}

static void
proto_fail(br_link *l, const char *reason, const char *detail)
{
    cs_log(CS_LOG_ERROR, "BRIDGE-ERROR", "link=%s class=terminal error=\"%s\" detail=\"%s\"",
           l->cfg->name, reason, detail);
    pthread_mutex_lock(&l->mu);
    snprintf(l->last_error, sizeof(l->last_error), "%s: %s", reason, detail);
    pthread_mutex_unlock(&l->mu);
    session_fail(l, BR_FAIL_TERMINAL, reason, detail);
}

static int
abort_source(void *ud)
{
    br_link *l = ud;
    return atomic_load(&l->interrupt) || atomic_load(&l->stop);
}

static int
abort_lane(void *ud)
{
    br_link *l = ud;
    return atomic_load(&l->lane_abort);
}

/* ---- events ------------------------------------------------------------- */

static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Applies the mode and residency to an event before it is sent: never sends
 * a payload in metadata mode or one the source marked withheld, and (the
 * bridge's own residency check) never a home-only payload to a target of
 * another region: that one goes as payload_state "withheld". Returns the
 * payload bytes kept. Caller holds mu. */
static int64_t
prepare_event(br_link *l, json_t *ev)
{
    const char *ps = json_string_value(json_object_get(ev, "payload_state"));
    json_t *p = json_object_get(ev, "payload");
    if (p == NULL)
        return 0;
    if (l->cfg->residency != NULL && !l->res_off) {
        const cs_res_rule *rule = cs_residency_match(
            l->cfg->residency,
            json_string_value(json_object_get(ev, "artifact_uri")), NULL);
        if (!cs_res_payload_allowed(rule, l->tgt_region)) {
            json_object_del(ev, "payload");
            json_object_set_new(ev, "payload_state", json_string("withheld"));
            l->withheld++;
            return 0;
        }
    }
    if (l->cfg->mode == BR_MODE_METADATA || (ps != NULL && strcmp(ps, "inline") != 0)) {
        json_object_del(ev, "payload");
        return 0;
    }
    return (int64_t)json_string_length(json_object_get(p, "data"));
}

/* Loop prevention: true when the target wrote ev itself and still holds
 * it (its origin is the target, and its origin seq is not one the target
 * lost in a restore). Caller holds mu or is the link thread. */
static bool
skip_to_target(const br_link *l, const json_t *ev)
{
    const json_t *origin = json_object_get(ev, "origin");
    const char *o = json_string_value(json_object_get(origin, "node_id"));
    int64_t seq = json_integer_value(json_object_get(origin, "seq"));
    int i;
    if (o == NULL || l->tgt_node[0] == '\0' || strcmp(o, l->tgt_node) != 0)
        return false;
    for (i = 0; i < l->ntgt_lost; i++)
        if (seq >= l->tgt_lost[i][0] && seq <= l->tgt_lost[i][1])
            return false;
    return true;
}

static void
batch_free(batch *b)
{
    if (b == NULL)
        return;
    json_decref(b->events);
    free(b->seqs);
    free(b);
}

static batch *
batch_new(void)
{
    batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->events = json_array();
    if (b->events == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

/* Hands the open batch of lane to its worker, waiting for queue space
 * (link thread, mu held). Returns CS_ESHUTDOWN when interrupted. */
static void check_stall_locked(br_link *l);

static cs_err
dispatch_locked(br_link *l, lane *ln)
{
    batch *b = ln->open;
    if (b == NULL || b->n == 0)
        return CS_OK;
    while (ln->depth >= LANE_QUEUE_MAX) {
        struct timespec ts;
        if (atomic_load(&l->interrupt) || atomic_load(&l->stop) || l->lane_failed)
            return CS_ESHUTDOWN;
        abs_deadline(&ts, 50);
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        check_stall_locked(l); /* a target that hangs shows as stalled */
    }
    ln->open = NULL;
    b->next = NULL;
    if (ln->q_tail != NULL)
        ln->q_tail->next = b;
    else
        ln->q_head = b;
    ln->q_tail = b;
    ln->depth++;
    pthread_cond_broadcast(&l->cv);
    return CS_OK;
}

/* Dispatches open batches that are old enough, or whose lane is idle. */
static cs_err
flush_lanes(br_link *l, bool force)
{
    int64_t now = mono_ms();
    cs_err rc = CS_OK;
    int i;
    pthread_mutex_lock(&l->mu);
    for (i = 0; i < l->nlanes && rc == CS_OK; i++) {
        lane *ln = &l->lanes[i];
        if (ln->open == NULL || ln->open->n == 0)
            continue;
        if (force || now - ln->open->first_ms >= FLUSH_MS ||
            (ln->depth == 0 && !ln->busy))
            rc = dispatch_locked(l, ln);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Takes one event (stolen reference) from the source in seq order. */
static cs_err
handle_event(br_link *l, json_t *ev)
{
    json_t *jseq = json_object_get(ev, "seq");
    const char *uri = json_string_value(json_object_get(ev, "artifact_uri"));
    const char *created = json_string_value(json_object_get(ev, "created_at"));
    int64_t seq, created_us = 0, bytes;
    lane *ln;
    cs_err rc = CS_OK;
    bool skip;

    if (!json_is_object(ev) || !json_is_integer(jseq) || uri == NULL) {
        proto_fail(l, "protocol: bad event",
                   "source sent an event without integer seq or artifact_uri");
        rc = CS_EPROTO;
        goto out;
    }
    seq = json_integer_value(jseq);
    if (created == NULL || cs_time_parse(created, &created_us) != CS_OK)
        created_us = 0;
    skip = skip_to_target(l, ev);

    pthread_mutex_lock(&l->mu);
    if (seq <= l->last_pushed) { /* replayed by the stream: already handled */
        pthread_mutex_unlock(&l->mu);
        goto out;
    }
    if (seq > l->head)
        l->head = seq;
    rc = trk_push(&l->trk, seq, created_us, skip);
    if (rc != CS_OK) {
        pthread_mutex_unlock(&l->mu);
        session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "tracker");
        goto out;
    }
    l->last_pushed = seq;
    if (skip) {
        /* loop prevention: the target wrote it; only the checkpoint moves */
        int64_t before = l->trk.wm;
        trk_pop(&l->trk);
        if (l->trk.wm != before)
            l->progress_ms = mono_ms();
        pthread_mutex_unlock(&l->mu);
        goto out;
    }
    bytes = prepare_event(l, ev);
    ln = &l->lanes[fnv1a(uri) % (uint64_t)l->nlanes];
    if (ln->open != NULL &&
        ((int64_t)ln->open->n >= l->cfg->max_events ||
         (ln->open->payload_bytes > 0 &&
          ln->open->payload_bytes + bytes > l->cfg->max_bytes))) {
        rc = dispatch_locked(l, ln);
        if (rc != CS_OK) {
            pthread_mutex_unlock(&l->mu);
            goto out;
        }
    }
    if (ln->open == NULL) {
        ln->open = batch_new();
        if (ln->open == NULL) {
            pthread_mutex_unlock(&l->mu);
            session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "batch");
            rc = CS_ENOMEM;
            goto out;
        }
        ln->open->first_ms = mono_ms();
    }
    if (ln->open->n == ln->open->cap) {
        size_t nc = ln->open->cap ? ln->open->cap * 2 : 64;
        int64_t *ns = realloc(ln->open->seqs, nc * sizeof(int64_t));
        if (ns == NULL) {
            pthread_mutex_unlock(&l->mu);
            session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "batch");
            rc = CS_ENOMEM;
            goto out;
        }
        ln->open->seqs = ns;
        ln->open->cap = nc;
    }
    json_array_append(ln->open->events, ev);
    ln->open->seqs[ln->open->n++] = seq;
    ln->open->payload_bytes += bytes;
    l->pending_bytes += bytes;
    pthread_mutex_unlock(&l->mu);
out:
    json_decref(ev);
    return rc;
}

/* A page end: every seq up to next_since was scanned. */
static cs_err
handle_marker(br_link *l, int64_t next_since)
{
    cs_err rc = CS_OK;
    pthread_mutex_lock(&l->mu);
    if (next_since > l->last_pushed) {
        int64_t before = l->trk.wm;
        rc = trk_push(&l->trk, next_since, 0, true);
        if (rc == CS_OK) {
            l->last_pushed = next_since;
            trk_pop(&l->trk);
            if (l->trk.wm != before)
                l->progress_ms = mono_ms();
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---- ingest (lanes) ----------------------------------------------------- */

static char *
ingest_body(const br_link *l, json_t *events, int64_t cp, size_t *len)
{
    json_t *b = json_pack("{s:{s:s,s:s},s:{s:s},s:O,s:{s:I}}", "source", "node_id",
                          l->src_node, "epoch", l->src_epoch, "target", "epoch",
                          l->tgt_epoch, "events", events, "checkpoint", "seq",
                          (json_int_t)cp);
    char *s = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (s != NULL)
        *len = strlen(s);
    return s;
}

static void
count_results(br_link *l, json_t *events, json_t *results, json_t *deferred_uris)
{
    size_t i, n = json_array_size(results);
    counters c = {0, 0, 0, 0, 0};

    for (i = 0; i < n; i++) {
        json_t *r = json_array_get(results, i);
        const char *st = json_string_value(json_object_get(r, "status"));
        const char *eid = json_string_value(json_object_get(r, "event_id"));
        json_t *ev = NULL;
        if (st == NULL)
            continue;
        /* results normally follow the events' order */
        if (i < json_array_size(events)) {
            json_t *cand = json_array_get(events, i);
            const char *ce = json_string_value(json_object_get(cand, "event_id"));
            if (eid != NULL && ce != NULL && strcmp(ce, eid) == 0)
                ev = cand;
        }
        if (ev == NULL && eid != NULL) {
            size_t k;
            for (k = 0; k < json_array_size(events); k++) {
                json_t *cand = json_array_get(events, k);
                const char *ce = json_string_value(json_object_get(cand, "event_id"));
                if (ce != NULL && strcmp(ce, eid) == 0) {
                    ev = cand;
                    break;
                }
            }
        }
        if (strcmp(st, "applied") == 0) {
            c.applied++;
        } else if (strcmp(st, "duplicate") == 0) {
            c.duplicate++;
        } else if (strcmp(st, "deferred") == 0) {
            const char *uri = json_string_value(json_object_get(ev, "artifact_uri"));
            c.deferred++;
            if (uri != NULL && deferred_uris != NULL)
                json_object_set_new(deferred_uris, uri, json_true());
        } else if (strcmp(st, "fork") == 0) {
            c.fork++;
            cs_log(CS_LOG_NOTICE, "BRIDGE-FORK", "link=%s event_id=%s uri=%s",
                   l->cfg->name, eid != NULL ? eid : "?",
                   ev != NULL ? json_string_value(json_object_get(ev, "artifact_uri"))
                              : "?");
        } else if (strcmp(st, "rejected") == 0) {
            const char *why = json_string_value(json_object_get(r, "reason"));
            c.rejected++;
            cs_log(CS_LOG_WARN, "BRIDGE-REJECTED", "link=%s event_id=%s reason=\"%s\"",
                   l->cfg->name, eid != NULL ? eid : "?", why != NULL ? why : "");
        }
    }
    pthread_mutex_lock(&l->mu);
    l->cnt.applied += c.applied;
    l->cnt.duplicate += c.duplicate;
    l->cnt.deferred += c.deferred;
    l->cnt.fork += c.fork;
    l->cnt.rejected += c.rejected;
    pthread_mutex_unlock(&l->mu);
}

static void
lane_fail(lane *ln, const br_http_err *e, const char *end, const char *method,
          const char *path)
{
    br_link *l = ln->l;
    char detail[320];
    log_http_error(l, end, method, path, e, detail, sizeof(detail));
    pthread_mutex_lock(&l->mu);
    if (!l->lane_failed && e->cls != BR_FAIL_ABORTED) {
        l->lane_failed = true;
        l->lane_cls = e->cls == BR_FAIL_TERMINAL ? BR_FAIL_TERMINAL : BR_FAIL_TRANSIENT;
        snprintf(l->lane_reason, sizeof(l->lane_reason), "%s", e->reason);
        snprintf(l->lane_detail, sizeof(l->lane_detail), "%s", detail);
        atomic_store(&l->interrupt, 1);
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* POSTs events with checkpoint cp; splits on 413. Results are appended to
 * all_results. */
static cs_err
ingest(lane *ln, json_t *events, int64_t cp, json_t *all_results, int64_t *acked)
{
    br_link *l = ln->l;
    static const long pass413[] = {413, 0};
    br_http_err e;
    json_t *resp = NULL;
    char *body = NULL;
    size_t blen = 0;
    cs_err rc;

    body = ingest_body(l, events, cp, &blen);
    if (body == NULL) {
        rc = CS_ENOMEM;
        memset(&e, 0, sizeof(e));
        e.cls = BR_FAIL_TRANSIENT;
        snprintf(e.reason, sizeof(e.reason), "out of memory");
        lane_fail(ln, &e, "bridge", "POST", "/federation/ingest");
        goto out;
    }
    rc = br_http_json_raw(ln->tgt, "POST", "/federation/ingest", body, blen, pass413,
                          &resp, &e);
    free(body);
    body = NULL;
    if (rc == CS_ENOTFOUND) { /* 413: halve */
        size_t n = json_array_size(events), half = n / 2, i;
        json_t *a, *b;
        if (n <= 1) {
            e.cls = BR_FAIL_TERMINAL;
            lane_fail(ln, &e, "target", "POST", "/federation/ingest");
            rc = CS_ETOOBIG;
            goto out;
        }
        a = json_array();
        b = json_array();
        for (i = 0; i < n && a != NULL && b != NULL; i++)
            json_array_append(i < half ? a : b, json_array_get(events, i));
        pthread_mutex_lock(&l->mu);
        cp = l->trk.wm; /* conservative for partial batches */
        pthread_mutex_unlock(&l->mu);
        rc = (a == NULL || b == NULL) ? CS_ENOMEM : ingest(ln, a, cp, all_results, acked);
        if (rc == CS_OK)
            rc = ingest(ln, b, cp, all_results, acked);
        json_decref(a);
        json_decref(b);
        goto out;
    }
    if (rc != CS_OK) {
        lane_fail(ln, &e, "target", "POST", "/federation/ingest");
        goto out;
    }
    {
        json_t *results = json_object_get(resp, "results");
        json_t *jcp = json_object_get(json_object_get(resp, "checkpoint"), "seq");
        if (!json_is_array(results)) {
            memset(&e, 0, sizeof(e));
            e.cls = BR_FAIL_TERMINAL;
            snprintf(e.reason, sizeof(e.reason),
                     "protocol: ingest answer without results");
            lane_fail(ln, &e, "target", "POST", "/federation/ingest");
            rc = CS_EPROTO;
            goto out;
        }
        json_array_extend(all_results, results);
        if (json_is_integer(jcp) && json_integer_value(jcp) > *acked)
            *acked = json_integer_value(jcp);
    }
out:
    free(body);
    json_decref(resp);
    return rc;
}

/* Fetches every version of the URIs with deferred events from the source
 * and ingests them (parents first); the target then applies the pending
 * children itself. */
static cs_err
backfill(lane *ln, json_t *uris)
{
    br_link *l = ln->l;
    const char *uri;
    json_t *dummy;
    cs_err rc = CS_OK;

    json_object_foreach(uris, uri, dummy) {
        char *esc = br_http_escape(uri);
        char path[4400];
        json_t *resp = NULL, *versions, *chunk = NULL, *results = NULL;
        br_http_err e;
        size_t i, n;
        int64_t acked = 0, cp;
        (void)dummy;

        if (esc == NULL)
            return CS_ENOMEM;
        snprintf(path, sizeof(path), "/federation/versions?uri=%s&mode=%s", esc,
                 br_mode_name(l->cfg->mode));
        free(esc);
        rc = br_http_json(ln->src, "GET", path, NULL, NULL, &resp, &e);
        if (rc != CS_OK) {
            lane_fail(ln, &e, "source", "GET", path);
            return rc;
        }
        versions = json_object_get(resp, "versions");
        n = json_array_size(versions);
        cs_log(CS_LOG_INFO, "BRIDGE-BACKFILL", "link=%s uri=%s versions=%zu",
               l->cfg->name, uri, n);
        results = json_array();
        chunk = json_array();
        for (i = 0; i < n && rc == CS_OK; i++) {
            json_t *v = json_array_get(versions, i);
            if (!json_is_object(v) || skip_to_target(l, v))
                continue;
            pthread_mutex_lock(&l->mu);
            prepare_event(l, v);
            pthread_mutex_unlock(&l->mu);
            json_array_append(chunk, v);
            if ((int64_t)json_array_size(chunk) >= l->cfg->max_events || i + 1 == n) {
                pthread_mutex_lock(&l->mu);
                cp = l->trk.wm;
                pthread_mutex_unlock(&l->mu);
                rc = ingest(ln, chunk, cp, results, &acked);
                json_array_clear(chunk);
            }
        }
        if (rc == CS_OK && json_array_size(chunk) > 0) {
            pthread_mutex_lock(&l->mu);
            cp = l->trk.wm;
            pthread_mutex_unlock(&l->mu);
            rc = ingest(ln, chunk, cp, results, &acked);
        }
        if (rc == CS_OK)
            count_results(l, versions, results, NULL);
        json_decref(chunk);
        json_decref(results);
        json_decref(resp);
        if (rc != CS_OK)
            return rc;
    }
    return rc;
}

static void
process_batch(lane *ln, batch *b)
{
    br_link *l = ln->l;
    json_t *results = json_array(), *deferred = json_object();
    int64_t cp, acked = 0;
    size_t i;
    cs_err rc;

    if (results == NULL || deferred == NULL)
        goto out;
    pthread_mutex_lock(&l->mu);
    cp = trk_cp_with(&l->trk, b->seqs, b->n);
    pthread_mutex_unlock(&l->mu);
    rc = ingest(ln, b->events, cp, results, &acked);
    if (rc != CS_OK)
        goto out;
    count_results(l, b->events, results, deferred);
    pthread_mutex_lock(&l->mu);
    for (i = 0; i < b->n; i++)
        trk_mark(&l->trk, b->seqs[i]);
    trk_pop(&l->trk);
    if (acked > l->acked)
        l->acked = acked;
    l->progress_ms = mono_ms();
    pthread_mutex_unlock(&l->mu);
    if (json_object_size(deferred) > 0)
        backfill(ln, deferred);
out:
    json_decref(results);
    json_decref(deferred);
}

static void *
lane_main(void *arg)
{
    lane *ln = arg;
    br_link *l = ln->l;

    pthread_mutex_lock(&l->mu);
    for (;;) {
        batch *b;
        bool skip;
        while (ln->q_head == NULL && !l->session_stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->session_stop || ln->q_head == NULL)
            break;
        b = ln->q_head;
        ln->q_head = b->next;
        if (ln->q_head == NULL)
            ln->q_tail = NULL;
        ln->depth--;
        ln->busy = true;
        skip = l->lane_failed; /* the session ends: do not send more */
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        if (!skip)
            process_batch(ln, b);
        pthread_mutex_lock(&l->mu);
        l->pending_bytes -= b->payload_bytes;
        ln->busy = false;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        batch_free(b);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static cs_err
lanes_start(br_link *l)
{
    int i;
    pthread_mutex_lock(&l->mu);
    l->session_stop = false;
    l->lane_failed = false;
    l->lane_reason[0] = '\0';
    pthread_mutex_unlock(&l->mu);
    atomic_store(&l->lane_abort, 0);
    for (i = 0; i < l->nlanes; i++) {
        lane *ln = &l->lanes[i];
        if (pthread_create(&ln->th, NULL, lane_main, ln) != 0)
            return CS_EIO;
        ln->running = true;
    }
    return CS_OK;
}

/* Ends a session: drops batches not yet sent, lets in-flight ingests finish
 * (aborting them after DRAIN_TIMEOUT_MS) and joins the lane threads. */
static void
lanes_stop(br_link *l)
{
    int64_t deadline = mono_ms() + (atomic_load(&l->stop) ? 3000 : DRAIN_TIMEOUT_MS);
    int i;

    pthread_mutex_lock(&l->mu);
    l->session_stop = true;
    if (l->lane_failed) /* the others' answers would only be replayed */
        atomic_store(&l->lane_abort, 1);
    for (i = 0; i < l->nlanes; i++) {
        lane *ln = &l->lanes[i];
        while (ln->q_head != NULL) {
            batch *b = ln->q_head;
            ln->q_head = b->next;
            l->pending_bytes -= b->payload_bytes;
            batch_free(b);
        }
        ln->q_tail = NULL;
        ln->depth = 0;
        if (ln->open != NULL) {
            l->pending_bytes -= ln->open->payload_bytes;
            batch_free(ln->open);
            ln->open = NULL;
        }
    }
    pthread_cond_broadcast(&l->cv);
    for (;;) {
        bool busy = false;
        struct timespec ts;
        for (i = 0; i < l->nlanes; i++)
            busy = busy || l->lanes[i].busy;
        if (!busy)
            break;
        if (mono_ms() > deadline)
            atomic_store(&l->lane_abort, 1);
        abs_deadline(&ts, 20);
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    for (i = 0; i < l->nlanes; i++) {
        if (l->lanes[i].running) {
            pthread_join(l->lanes[i].th, NULL);
            l->lanes[i].running = false;
        }
    }
    pthread_mutex_lock(&l->mu);
    l->pending_bytes = 0;
    pthread_mutex_unlock(&l->mu);
}

/* ---- link-thread helpers ------------------------------------------------ */

/* Lane failure -> session error. Returns true when the session must end. */
static bool
check_lanes(br_link *l)
{
    bool failed;
    pthread_mutex_lock(&l->mu);
    failed = l->lane_failed;
    if (failed)
        session_fail(l, l->lane_cls, l->lane_reason, l->lane_detail);
    pthread_mutex_unlock(&l->mu);
    return failed;
}

static bool
pipeline_idle_locked(br_link *l)
{
    int i;
    for (i = 0; i < l->nlanes; i++) {
        lane *ln = &l->lanes[i];
        if (ln->busy || ln->depth > 0 || (ln->open != NULL && ln->open->n > 0))
            return false;
    }
    return true;
}

/* When nothing is in flight but the watermark moved past what the target
 * stored (skipped events, page ends), store it with an empty ingest. */
static void
idle_checkpoint(br_link *l)
{
    static const long pass[] = {400, 404, 405, 413, 422, 0};
    int64_t wm, now = mono_ms();
    json_t *resp = NULL, *events = NULL;
    char *body = NULL;
    size_t blen = 0;
    br_http_err e;
    cs_err rc;

    pthread_mutex_lock(&l->mu);
    wm = l->trk.wm;
    if (!l->empty_ingest_ok || wm <= l->acked || wm <= l->last_cp_sent ||
        !pipeline_idle_locked(l) || now - l->last_idle_flush_ms < FLUSH_MS) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    l->last_idle_flush_ms = now;
    pthread_mutex_unlock(&l->mu);
    events = json_array();
    body = events != NULL ? ingest_body(l, events, wm, &blen) : NULL;
    if (body == NULL)
        goto out;
    rc = br_http_json_raw(l->tgt, "POST", "/federation/ingest", body, blen, pass,
                          &resp, &e);
    if (rc == CS_ENOTFOUND) {
        cs_log(CS_LOG_NOTICE, "BRIDGE-CHECKPOINT",
               "link=%s target refuses a checkpoint-only ingest (%s); the "
               "checkpoint moves with the next batch", l->cfg->name, e.reason);
        pthread_mutex_lock(&l->mu);
        l->empty_ingest_ok = false;
        pthread_mutex_unlock(&l->mu);
        goto out;
    }
    if (rc != CS_OK) {
        http_fail(l, "target", "POST", "/federation/ingest", &e);
        goto out;
    }
    {
        json_t *jcp = json_object_get(json_object_get(resp, "checkpoint"), "seq");
        pthread_mutex_lock(&l->mu);
        l->last_cp_sent = wm;
        if (json_is_integer(jcp) && json_integer_value(jcp) > l->acked)
            l->acked = json_integer_value(jcp);
        l->progress_ms = mono_ms();
        pthread_mutex_unlock(&l->mu);
    }
out:
    free(body);
    json_decref(events);
    json_decref(resp);
}

/* Stall detection: work to do (unanswered events, a source head ahead, or a
 * silent stream) but nothing answered for 2 x keepalive. */
/* Stall rule (federation.md §6): stalled when the source is silent (no
 * data, no keepalive) for 2 x keepalive, or when events are pending or the
 * source is ahead but nothing was applied for 2 x keepalive. Caller holds
 * l->mu (it also runs while the link thread waits for a lane). */
static void
check_stall_locked(br_link *l)
{
    int64_t now = mono_ms(), limit = 2000LL * l->cfg->keepalive_s;
    bool silent, behind, stalled;

    silent = l->streaming && now - l->alive_ms > limit;
    behind = (l->trk.n > 0) ||
             (l->phase == BR_ST_CATCHING_UP && l->head > l->trk.wm);
    stalled = silent || (behind && now - l->progress_ms > limit);
    if (stalled != l->stalled) {
        l->stalled = stalled;
        if (stalled)
            snprintf(l->reason, sizeof(l->reason), "%s",
                     silent ? "no data or keepalive from the source"
                            : "no progress although the source is ahead");
        else
            l->reason[0] = '\0';
        update_shown(l);
    }
    if (!behind)
        l->progress_ms = now; /* idle is not a stall */
}

static void
check_stall(br_link *l)
{
    pthread_mutex_lock(&l->mu);
    check_stall_locked(l);
    pthread_mutex_unlock(&l->mu);
}

/* ---- session ------------------------------------------------------------ */

static bool
info_ok(br_link *l, const char *end, json_t *info, char *node, size_t nodesz,
        char *epoch, size_t epochsz, int64_t *head)
{
    const char *nid = json_string_value(json_object_get(info, "node_id"));
    const char *ep = json_string_value(json_object_get(info, "epoch"));
    json_t *proto = json_object_get(info, "proto");
    json_t *caps = json_object_get(info, "capabilities");
    json_t *hs = json_object_get(info, "head_seq");
    char detail[200];
    size_t i;

    if (!json_is_integer(proto) || json_integer_value(proto) != 1) {
        snprintf(detail, sizeof(detail), "%s /federation/info proto is %lld, not 1",
                 end, json_is_integer(proto) ? (long long)json_integer_value(proto) : -1LL);
        proto_fail(l, "protocol_mismatch", detail);
        return false;
    }
    if (nid == NULL || nid[0] == '\0' || strlen(nid) >= nodesz || ep == NULL ||
        strlen(ep) >= epochsz) {
        snprintf(detail, sizeof(detail), "%s /federation/info lacks node_id or epoch", end);
        proto_fail(l, "protocol_mismatch", detail);
        return false;
    }
    if (json_is_array(caps)) {
        static const char *const need_src[] = {"changes", "stream", "versions", NULL};
        static const char *const need_tgt[] = {"ingest", NULL};
        const char *const *need = strcmp(end, "source") == 0 ? need_src : need_tgt;
        for (i = 0; need[i] != NULL; i++) {
            size_t k;
            bool found = false;
            for (k = 0; k < json_array_size(caps); k++) {
                const char *c = json_string_value(json_array_get(caps, k));
                if (c != NULL && strcmp(c, need[i]) == 0)
                    found = true;
            }
            if (!found) {
                snprintf(detail, sizeof(detail), "%s lacks capability \"%s\"", end,
                         need[i]);
                proto_fail(l, "protocol_mismatch", detail);
                return false;
            }
        }
    }
    snprintf(node, nodesz, "%s", nid);
    snprintf(epoch, epochsz, "%s", ep);
    if (head != NULL)
        *head = json_is_integer(hs) ? json_integer_value(hs) : -1;
    return true;
}

/* Reads /federation/info lost_seqs [[from, to], ...] into out; returns the
 * number of ranges (malformed entries are ignored: an old node has none). */
static int
parse_lost(const json_t *a, int64_t out[][2])
{
    size_t i;
    int n = 0;
    for (i = 0; i < json_array_size(a) && n < BR_LOST_MAX; i++) {
        const json_t *r = json_array_get(a, i);
        const json_t *f = json_array_get(r, 0), *t = json_array_get(r, 1);
        if (json_array_size(r) != 2 || !json_is_integer(f) || !json_is_integer(t) ||
            json_integer_value(f) > json_integer_value(t))
            continue;
        out[n][0] = json_integer_value(f);
        out[n][1] = json_integer_value(t);
        n++;
    }
    return n;
}

static bool
fetch_info(br_link *l)
{
    static const char path[] = "/federation/info";
    json_t *si = NULL, *ti = NULL;
    char snode[128], sepoch[80], tnode[128], tepoch[80];
    int64_t head = -1;
    br_http_err e;
    bool ok = false;
    char *seg = NULL;

    if (br_http_json(l->src, "GET", path, NULL, NULL, &si, &e) != CS_OK) {
        http_fail(l, "source", "GET", path, &e);
        goto out;
    }
    if (!info_ok(l, "source", si, snode, sizeof(snode), sepoch, sizeof(sepoch), &head))
        goto out;
    if (br_http_json(l->tgt, "GET", path, NULL, NULL, &ti, &e) != CS_OK) {
        http_fail(l, "target", "GET", path, &e);
        goto out;
    }
    if (!info_ok(l, "target", ti, tnode, sizeof(tnode), tepoch, sizeof(tepoch), NULL))
        goto out;
    if (strcmp(snode, tnode) == 0) {
        proto_fail(l, "source_is_target", "source and target have the same node_id");
        goto out;
    }
    seg = br_http_escape(snode);
    if (seg == NULL || strlen(seg) >= sizeof(l->src_seg)) {
        proto_fail(l, "protocol_mismatch", "source node_id too long");
        goto out;
    }
    pthread_mutex_lock(&l->mu);
    if (l->src_epoch[0] != '\0' && strcmp(l->src_node, snode) == 0 &&
        strcmp(l->src_epoch, sepoch) != 0)
        cs_log(CS_LOG_WARN, "BRIDGE-EPOCH", "link=%s source %s has a new epoch %s "
               "(was %s)", l->cfg->name, snode, sepoch, l->src_epoch);
    snprintf(l->src_node, sizeof(l->src_node), "%s", snode);
    snprintf(l->src_epoch, sizeof(l->src_epoch), "%s", sepoch);
    snprintf(l->tgt_node, sizeof(l->tgt_node), "%s", tnode);
    snprintf(l->tgt_epoch, sizeof(l->tgt_epoch), "%s", tepoch);
    l->ntgt_lost = parse_lost(json_object_get(ti, "lost_seqs"), l->tgt_lost);
    /* residency: the region the target's payloads must be allowed in */
    snprintf(l->tgt_region, sizeof(l->tgt_region), "%s",
             json_string_value(json_object_get(ti, "region")) != NULL
                 ? json_string_value(json_object_get(ti, "region"))
                 : "");
    snprintf(l->src_seg, sizeof(l->src_seg), "%s", seg);
    l->head = head;
    pthread_mutex_unlock(&l->mu);
    ok = true;
out:
    free(seg);
    json_decref(si);
    json_decref(ti);
    return ok;
}

/* Reads the target's checkpoint for the source. */
static bool
fetch_checkpoint(br_link *l, int64_t *cp)
{
    static const long pass404[] = {404, 0};
    char path[512];
    json_t *c = NULL;
    br_http_err e;
    cs_err rc;
    bool ok = false;

    snprintf(path, sizeof(path), "/federation/checkpoints/%s", l->src_seg);
    rc = br_http_json(l->tgt, "GET", path, NULL, pass404, &c, &e);
    if (rc == CS_ENOTFOUND) {
        *cp = 0;
        ok = true;
        goto out;
    }
    if (rc != CS_OK) {
        http_fail(l, "target", "GET", path, &e);
        goto out;
    }
    {
        const char *ep = json_string_value(json_object_get(c, "epoch"));
        json_t *seq = json_object_get(c, "seq");
        char detail[300];
        if (ep == NULL || !json_is_integer(seq)) {
            proto_fail(l, "protocol_mismatch", "checkpoint without epoch or seq");
            goto out;
        }
        if (strcmp(ep, l->src_epoch) != 0) {
            snprintf(detail, sizeof(detail),
                     "target checkpoint for %s has epoch %.40s, source epoch is %.40s "
                     "(run ctxsync-bridge reset-link %s)", l->src_node, ep,
                     l->src_epoch, l->cfg->name);
            proto_fail(l, "source_epoch_changed", detail);
            goto out;
        }
        *cp = json_integer_value(seq);
        if (l->head >= 0 && *cp > l->head) {
            snprintf(detail, sizeof(detail),
                     "target checkpoint %lld is past the source head %lld",
                     (long long)*cp, (long long)l->head);
            proto_fail(l, "source_behind_checkpoint", detail);
            goto out;
        }
    }
    ok = true;
out:
    json_decref(c);
    return ok;
}

static bool
session_should_end(br_link *l)
{
    return l->s_cls != BR_FAIL_NONE || atomic_load(&l->interrupt) ||
           atomic_load(&l->stop) || check_lanes(l);
}

/* Catch-up: pages /federation/changes until has_more is false. *since is
 * the seq the stream continues from. */
static bool
catch_up(br_link *l, int64_t *since)
{
    char path[8192];
    char *pat = br_http_escape(l->cfg->patterns_csv);
    bool done = false;

    if (pat == NULL) {
        session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "catch-up");
        return false;
    }
    while (!session_should_end(l)) {
        json_t *page = NULL, *events, *ev;
        br_http_err e;
        const char *nid, *ep;
        json_t *jnext, *jhead;
        size_t i;
        bool more, page_ok;

        snprintf(path, sizeof(path),
                 "/federation/changes?since=%lld&limit=%lld&pattern=%s&mode=%s"
                 "&max_bytes=%lld", (long long)*since, (long long)l->cfg->max_events,
                 pat, br_mode_name(l->cfg->mode), (long long)l->cfg->max_bytes);
        if (br_http_json(l->src, "GET", path, NULL, NULL, &page, &e) != CS_OK) {
            http_fail(l, "source", "GET", path, &e);
            break;
        }
        nid = json_string_value(json_object_get(page, "node_id"));
        ep = json_string_value(json_object_get(page, "epoch"));
        events = json_object_get(page, "events");
        jnext = json_object_get(page, "next_since");
        jhead = json_object_get(page, "head");
        if (!json_is_array(events) || !json_is_integer(jnext)) {
            proto_fail(l, "protocol_mismatch", "changes page without events or next_since");
            json_decref(page);
            break;
        }
        if ((nid != NULL && strcmp(nid, l->src_node) != 0) ||
            (ep != NULL && strcmp(ep, l->src_epoch) != 0)) {
            proto_fail(l, "source_epoch_changed", "the source changed identity while paging");
            json_decref(page);
            break;
        }
        pthread_mutex_lock(&l->mu);
        if (json_is_integer(jhead) && json_integer_value(jhead) > l->head)
            l->head = json_integer_value(jhead);
        pthread_mutex_unlock(&l->mu);
        page_ok = true;
        json_array_foreach(events, i, ev) {
            if (handle_event(l, json_incref(ev)) != CS_OK) {
                page_ok = false;
                break;
            }
        }
        if (!page_ok) { /* never mark a partly handled page as scanned */
            json_decref(page);
            break;
        }
        more = json_is_true(json_object_get(page, "has_more"));
        if (handle_marker(l, json_integer_value(jnext)) != CS_OK) {
            session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "tracker");
            json_decref(page);
            break;
        }
        if (json_integer_value(jnext) > *since)
            *since = json_integer_value(jnext);
        else if (more) {
            proto_fail(l, "protocol_mismatch", "has_more without progress of next_since");
            json_decref(page);
            break;
        }
        json_decref(page);
        if (flush_lanes(l, false) != CS_OK)
            break;
        idle_checkpoint(l);
        check_stall(l);
        if (!more) {
            done = true;
            break;
        }
    }
    free(pat);
    return done && !session_should_end(l);
}

/* SSE callbacks (link thread, inside the stream transfer). */
static cs_err
on_sse_event(void *ud, const char *id, const char *event, const char *data,
             size_t len)
{
    br_link *l = ud;
    json_t *ev;
    json_error_t jerr;
    (void)id;

    pthread_mutex_lock(&l->mu);
    l->alive_ms = mono_ms();
    pthread_mutex_unlock(&l->mu);
    if (strcmp(event, "overflow") == 0) {
        session_fail(l, BR_FAIL_TRANSIENT, "stream: overflow (the bridge fell behind)",
                     "source GET /federation/stream: overflow");
        return CS_ESHUTDOWN;
    }
    if (strcmp(event, "change") != 0 && strcmp(event, "message") != 0)
        return CS_OK;
    ev = json_loadb(data, len, 0, &jerr);
    if (ev == NULL) {
        /* A cut or corrupted stream, not a protocol change: reconnect and
         * resume from the checkpoint (nothing was applied from it). */
        session_fail(l, BR_FAIL_TRANSIENT,
                     "stream: event data is not JSON (corrupted stream)",
                     "source GET /federation/stream");
        return CS_EPROTO;
    }
    return handle_event(l, ev);
}

static cs_err
on_sse_comment(void *ud, const char *text, size_t len)
{
    br_link *l = ud;
    (void)text;
    (void)len;
    pthread_mutex_lock(&l->mu);
    l->alive_ms = mono_ms();
    pthread_mutex_unlock(&l->mu);
    return CS_OK;
}

static cs_err
on_stream_data(void *ud, const char *buf, size_t len)
{
    br_link *l = ud;
    cs_errbuf eb;
    cs_err rc;

    pthread_mutex_lock(&l->mu);
    l->alive_ms = mono_ms();
    pthread_mutex_unlock(&l->mu);
    eb.msg[0] = '\0';
    rc = br_sse_feed(l->sse, buf, len, &eb);
    if (rc != CS_OK && l->s_cls == BR_FAIL_NONE) {
        if (rc == CS_ETOOBIG)
            proto_fail(l, "protocol_mismatch", eb.msg);
        else
            session_fail(l, BR_FAIL_TRANSIENT, eb.msg[0] ? eb.msg : cs_strerror(rc),
                         "stream");
    }
    return rc;
}

static cs_err
on_stream_tick(void *ud)
{
    br_link *l = ud;
    int64_t now = mono_ms(), silent;

    if (session_should_end(l))
        return CS_ESHUTDOWN;
    if (flush_lanes(l, false) != CS_OK)
        return CS_ESHUTDOWN;
    idle_checkpoint(l);
    check_stall(l);
    pthread_mutex_lock(&l->mu);
    silent = now - l->alive_ms;
    pthread_mutex_unlock(&l->mu);
    if (silent > 3000LL * l->cfg->keepalive_s) {
        char r[128];
        snprintf(r, sizeof(r), "stream: no data or keepalive for %lld s",
                 (long long)(silent / 1000));
        session_fail(l, BR_FAIL_TRANSIENT, r, "source GET /federation/stream");
        return CS_ETIMEDOUT;
    }
    return l->s_cls != BR_FAIL_NONE ? CS_ESHUTDOWN : CS_OK;
}

static void
follow(br_link *l, int64_t since)
{
    char path[8192], last[32];
    char *pat = br_http_escape(l->cfg->patterns_csv);
    br_http_err e;
    cs_err rc;

    if (pat == NULL) {
        session_fail(l, BR_FAIL_TRANSIENT, "out of memory", "stream");
        return;
    }
    snprintf(path, sizeof(path), "/federation/stream?since=%lld&pattern=%s&mode=%s",
             (long long)since, pat, br_mode_name(l->cfg->mode));
    free(pat);
    snprintf(last, sizeof(last), "%lld", (long long)since);
    br_sse_reset(l->sse);
    pthread_mutex_lock(&l->mu);
    l->alive_ms = mono_ms();
    l->streaming = true;
    pthread_mutex_unlock(&l->mu);
    rc = br_http_stream(l->src_stream, path, last, on_stream_data, on_stream_tick, l,
                        TICK_MS, &e);
    pthread_mutex_lock(&l->mu);
    l->streaming = false;
    pthread_mutex_unlock(&l->mu);
    if (l->s_cls != BR_FAIL_NONE || session_should_end(l))
        return;
    if (rc == CS_OK) {
        session_fail(l, BR_FAIL_TRANSIENT, "stream: closed by the source",
                     "source GET /federation/stream: closed");
        return;
    }
    http_fail(l, "source", "GET", path, &e);
}

static void
session(br_link *l)
{
    int64_t cp = 0, since;

    long start_ms = 2000L * l->cfg->keepalive_s;
    bool started;

    l->s_cls = BR_FAIL_NONE;
    l->s_reason[0] = '\0';
    l->s_detail[0] = '\0';
    /* The handshake (info of both ends, checkpoint) is small: a peer that
     * accepts but does not answer must become backing_off within
     * 2 x keepalive (at least 5 s), not after the ingest timeout. */
    if (start_ms < 5000)
        start_ms = 5000;
    set_phase(l, BR_ST_STARTING, NULL);
    br_http_set_timeout_ms(l->src, start_ms);
    br_http_set_timeout_ms(l->tgt, start_ms);
    started = fetch_info(l) && fetch_checkpoint(l, &cp);
    br_http_set_timeout_ms(l->src, 30000L);
    br_http_set_timeout_ms(l->tgt, 30000L);
    if (!started)
        return;
    pthread_mutex_lock(&l->mu);
    trk_clear(&l->trk, cp);
    l->last_pushed = cp;
    l->acked = cp;
    l->last_cp_sent = cp;
    l->progress_ms = mono_ms();
    pthread_mutex_unlock(&l->mu);
    cs_log(CS_LOG_INFO, "BRIDGE-SESSION",
           "link=%s source=%s epoch=%s head=%lld target=%s checkpoint=%lld",
           l->cfg->name, l->src_node, l->src_epoch, (long long)l->head, l->tgt_node,
           (long long)cp);
    if (lanes_start(l) != CS_OK) {
        session_fail(l, BR_FAIL_TRANSIENT, "cannot start lane threads", "pthread_create");
        lanes_stop(l);
        return;
    }
    set_phase(l, BR_ST_CATCHING_UP, NULL);
    since = cp;
    if (catch_up(l, &since)) {
        flush_lanes(l, true);
        set_phase(l, BR_ST_LIVE, NULL);
        l->attempt = 0;
        follow(l, since);
    }
    check_lanes(l);
    lanes_stop(l);
}

/* ---- operator actions ------------------------------------------------------ */

static cs_err
delete_checkpoint(br_http *tgt, const char *seg, br_http_err *e)
{
    static const long pass404[] = {404, 0};
    char path[512];
    json_t *r = NULL;
    cs_err rc;

    snprintf(path, sizeof(path), "/federation/checkpoints/%s", seg);
    rc = br_http_json(tgt, "DELETE", path, NULL, pass404, &r, e);
    json_decref(r);
    return rc == CS_ENOTFOUND ? CS_OK : rc;
}

static void
do_reset(br_link *l)
{
    br_http_err e;
    char seg[400];
    bool have;

    set_phase(l, BR_ST_STARTING, NULL);
    pthread_mutex_lock(&l->mu);
    have = l->src_seg[0] != '\0';
    pthread_mutex_unlock(&l->mu);
    l->s_cls = BR_FAIL_NONE;
    if (!have) {
        json_t *si = NULL;
        char node[128], epoch[80];
        char *s;
        if (br_http_json(l->src, "GET", "/federation/info", NULL, NULL, &si, &e) != CS_OK) {
            http_fail(l, "source", "GET", "/federation/info", &e);
            goto fail;
        }
        if (!info_ok(l, "source", si, node, sizeof(node), epoch, sizeof(epoch), NULL)) {
            json_decref(si);
            goto fail;
        }
        json_decref(si);
        s = br_http_escape(node);
        if (s == NULL)
            goto fail;
        pthread_mutex_lock(&l->mu);
        snprintf(l->src_node, sizeof(l->src_node), "%s", node);
        snprintf(l->src_seg, sizeof(l->src_seg), "%s", s);
        pthread_mutex_unlock(&l->mu);
        free(s);
    }
    pthread_mutex_lock(&l->mu);
    snprintf(seg, sizeof(seg), "%s", l->src_seg);
    pthread_mutex_unlock(&l->mu);
    if (delete_checkpoint(l->tgt, seg, &e) != CS_OK) {
        http_fail(l, "target", "DELETE", "/federation/checkpoints", &e);
        goto fail;
    }
    cs_log(CS_LOG_NOTICE, "BRIDGE-RESET", "link=%s checkpoint for %s deleted on the "
           "target; replicating again from seq 0", l->cfg->name, l->src_node);
    pthread_mutex_lock(&l->mu);
    l->acked = 0;
    pthread_mutex_unlock(&l->mu);
    return;
fail:
    {
        char r[300];
        snprintf(r, sizeof(r), "reset_failed: %s", l->s_reason[0] ? l->s_reason : "error");
        set_phase(l, BR_ST_FAILED, r);
        pthread_mutex_lock(&l->mu);
        while (!atomic_load(&l->stop) && !l->cmd_retry && !l->cmd_resume && !l->cmd_reset &&
               !l->cmd_pause)
            pthread_cond_wait(&l->cv, &l->mu);
        l->cmd_retry = false;
        l->cmd_resume = false;
        pthread_mutex_unlock(&l->mu);
    }
}

static uint64_t
rng_next(br_link *l)
{
    uint64_t x = l->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    l->rng = x;
    return x;
}

/* Waits (mu held) until a command or stop arrives, or until deadline_ms
 * (monotonic, 0 = forever). */
static void
wait_command_locked(br_link *l, int64_t deadline_ms)
{
    while (!atomic_load(&l->stop) && !l->cmd_pause && !l->cmd_resume &&
           !l->cmd_retry && !l->cmd_reset) {
        struct timespec ts;
        int64_t left;
        if (deadline_ms == 0) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        left = deadline_ms - mono_ms();
        if (left <= 0)
            break;
        abs_deadline(&ts, left);
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
}

static void *
link_main(void *arg)
{
    br_link *l = arg;

    cs_log(CS_LOG_INFO, "BRIDGE-LINK", "link=%s source=%s target=%s mode=%s "
           "patterns=%s in_flight=%d max_events=%lld max_bytes=%lld",
           l->cfg->name, l->cfg->source.url, l->cfg->target.url,
           br_mode_name(l->cfg->mode), l->cfg->patterns_csv, l->cfg->in_flight,
           (long long)l->cfg->max_events, (long long)l->cfg->max_bytes);
    for (;;) {
        bool reset = false;

        pthread_mutex_lock(&l->mu);
        if (atomic_load(&l->stop)) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        if (l->cmd_reset) {
            l->cmd_reset = false;
            l->paused = false;
            reset = true;
        }
        if (l->cmd_pause) {
            l->cmd_pause = false;
            l->paused = true;
        }
        if (l->cmd_resume) {
            l->cmd_resume = false;
            l->paused = false;
        }
        l->cmd_retry = false;
        atomic_store(&l->interrupt, 0);
        if (l->paused && !reset) {
            pthread_mutex_unlock(&l->mu);
            set_phase(l, BR_ST_PAUSED, "paused by operator");
            pthread_mutex_lock(&l->mu);
            wait_command_locked(l, 0);
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        if (reset) {
            do_reset(l);
            continue;
        }

        session(l);

        if (atomic_load(&l->stop))
            break;
        pthread_mutex_lock(&l->mu);
        if (l->cmd_pause || l->cmd_reset || l->cmd_resume) {
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        if (l->s_cls == BR_FAIL_TERMINAL) {
            set_phase(l, BR_ST_FAILED, l->s_reason);
            pthread_mutex_lock(&l->mu);
            wait_command_locked(l, 0);
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        {
            /* transient: exponential backoff with full jitter */
            int64_t cap = 1000LL * l->cfg->backoff_max_s, win, delay;
            int sh = l->attempt < 20 ? l->attempt : 20;
            win = (int64_t)BACKOFF_BASE_MS << sh;
            if (win > cap)
                win = cap;
            delay = (int64_t)(rng_next(l) % (uint64_t)(win + 1));
            if (delay < BACKOFF_MIN_MS)
                delay = BACKOFF_MIN_MS;
            l->attempt++;
            pthread_mutex_lock(&l->mu);
            l->reconnects++;
            pthread_mutex_unlock(&l->mu);
            set_phase(l, BR_ST_BACKING_OFF,
                      l->s_reason[0] ? l->s_reason : "transient error");
            cs_log(CS_LOG_INFO, "BRIDGE-BACKOFF", "link=%s attempt=%d delay_ms=%lld",
                   l->cfg->name, l->attempt, (long long)delay);
            pthread_mutex_lock(&l->mu);
            wait_command_locked(l, mono_ms() + delay);
            pthread_mutex_unlock(&l->mu);
        }
    }
    set_phase(l, l->shown == BR_ST_FAILED ? BR_ST_FAILED : BR_ST_PAUSED,
              l->shown == BR_ST_FAILED ? l->reason : "stopped");
    cs_log(CS_LOG_INFO, "BRIDGE-LINK", "link=%s stopped", l->cfg->name);
    return NULL;
}

/* ---- public API ---------------------------------------------------------- */

/* residency: the test-only switch CS_RESIDENCY_DISABLE (a comma list;
 * "bridge" turns the bridge's check off). */
static bool
residency_disabled(void)
{
    const char *p = getenv("CS_RESIDENCY_DISABLE");
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == 6 && strncmp(p, "bridge", 6) == 0)
            return true;
        p = e != NULL ? e + 1 : NULL;
    }
    return false;
}

cs_err
br_link_new(const br_link_config *cfg, br_link **out, cs_errbuf *eb)
{
    static const br_sse_callbacks cb = {on_sse_event, on_sse_comment, NULL};
    br_link *l = calloc(1, sizeof(*l));
    cs_err rc = CS_OK;
    int i;

    if (l == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    l->cfg = cfg;
    pthread_mutex_init(&l->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_cond_init(&l->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    l->head = -1;
    l->phase = l->shown = BR_ST_STARTING;
    l->empty_ingest_ok = true;
    l->res_off = residency_disabled();
    if (l->res_off && cfg->residency != NULL)
        cs_log(CS_LOG_WARN, "BRIDGE-RESIDENCY-DISABLED",
               "link=%s TEST ONLY: CS_RESIDENCY_DISABLE=bridge: this bridge "
               "does NOT withhold home-only payloads", cfg->name);
    if (cs_random_bytes(&l->rng, sizeof(l->rng)) != CS_OK || l->rng == 0)
        l->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)mono_ms();
    if ((rc = br_http_new(&cfg->source, cfg->name, "source", &l->src, eb)) != CS_OK)
        goto out;
    if ((rc = br_http_new(&cfg->target, cfg->name, "target", &l->tgt, eb)) != CS_OK)
        goto out;
    if ((rc = br_http_new(&cfg->source, cfg->name, "source-stream", &l->src_stream,
                          eb)) != CS_OK)
        goto out;
    br_http_set_abort(l->src, abort_source, l);
    br_http_set_abort(l->src_stream, abort_source, l);
    br_http_set_abort(l->tgt, abort_source, l);
    if ((rc = br_sse_new(SSE_MAX_EVENT, &cb, l, &l->sse)) != CS_OK) {
        rc = cs_errf(eb, rc, "out of memory");
        goto out;
    }
    l->nlanes = cfg->in_flight;
    l->lanes = calloc((size_t)l->nlanes, sizeof(lane));
    if (l->lanes == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < l->nlanes; i++) {
        lane *ln = &l->lanes[i];
        ln->l = l;
        ln->idx = i;
        if ((rc = br_http_new(&cfg->target, cfg->name, "target-lane", &ln->tgt, eb)) != CS_OK)
            goto out;
        if ((rc = br_http_new(&cfg->source, cfg->name, "source-lane", &ln->src, eb)) != CS_OK)
            goto out;
        br_http_set_abort(ln->tgt, abort_lane, l);
        br_http_set_abort(ln->src, abort_lane, l);
    }
    *out = l;
    l = NULL;
out:
    br_link_free(l);
    return rc;
}

cs_err
br_link_start(br_link *l, cs_errbuf *eb)
{
    if (pthread_create(&l->th, NULL, link_main, l) != 0)
        return cs_errf(eb, CS_EIO, "link %s: cannot start thread: %s", l->cfg->name,
                       strerror(errno));
    l->started = true;
    return CS_OK;
}

void
br_link_request_stop(br_link *l)
{
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void
br_link_join(br_link *l)
{
    if (l->started) {
        pthread_join(l->th, NULL);
        l->started = false;
    }
}

void
br_link_free(br_link *l)
{
    int i;
    if (l == NULL)
        return;
    br_link_join(l);
    br_http_free(l->src);
    br_http_free(l->src_stream);
    br_http_free(l->tgt);
    br_sse_free(l->sse);
    for (i = 0; l->lanes != NULL && i < l->nlanes; i++) {
        br_http_free(l->lanes[i].tgt);
        br_http_free(l->lanes[i].src);
        batch_free(l->lanes[i].open);
    }
    free(l->lanes);
    free(l->trk.a);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

const char *
br_link_name(const br_link *l)
{
    return l->cfg->name;
}

void
br_link_snapshot(br_link *l, br_link_stats *s)
{
    int64_t now_us = cs_now_us();
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&l->mu);
    snprintf(s->name, sizeof(s->name), "%s", l->cfg->name);
    s->state = l->shown;
    snprintf(s->reason, sizeof(s->reason), "%s", l->reason);
    snprintf(s->src_node, sizeof(s->src_node), "%s", l->src_node);
    snprintf(s->src_epoch, sizeof(s->src_epoch), "%s", l->src_epoch);
    s->src_head = l->head;
    snprintf(s->tgt_node, sizeof(s->tgt_node), "%s", l->tgt_node);
    s->applied_seq = l->acked;
    s->lag_events = l->head > l->acked ? l->head - l->acked : 0;
    s->lag_seconds = 0;
    {
        size_t i;
        for (i = 0; i < l->trk.n; i++) {
            trk_ent *e = trk_at(&l->trk, i);
            if (!e->done && e->created_us > 0) {
                if (now_us > e->created_us)
                    s->lag_seconds = (double)(now_us - e->created_us) / 1e6;
                break;
            }
        }
    }
    s->pending_payload_bytes = l->pending_bytes > 0 ? l->pending_bytes : 0;
    s->applied = l->cnt.applied;
    s->duplicate = l->cnt.duplicate;
    s->deferred = l->cnt.deferred;
    s->fork = l->cnt.fork;
    s->rejected = l->cnt.rejected;
    s->withheld_payloads = l->withheld;
    s->reconnects = l->reconnects;
    snprintf(s->last_error, sizeof(s->last_error), "%s", l->last_error);
    pthread_mutex_unlock(&l->mu);
}

static json_t *
str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

json_t *
br_link_stats_json(const br_link_stats *s)
{
    return json_pack(
        "{s:s,s:s,s:o,s:{s:o,s:o,s:o},s:{s:o},s:I,s:I,s:f,s:I,"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:o,s:I}",
        "name", s->name, "state", br_state_name(s->state), "reason",
        str_or_null(s->reason), "source", "node_id", str_or_null(s->src_node), "epoch",
        str_or_null(s->src_epoch), "head_seq",
        s->src_head >= 0 ? json_integer(s->src_head) : json_null(), "target",
        "node_id", str_or_null(s->tgt_node), "applied_seq", (json_int_t)s->applied_seq,
        "lag_events", (json_int_t)s->lag_events, "lag_seconds", s->lag_seconds,
        "pending_payload_bytes", (json_int_t)s->pending_payload_bytes, "counters",
        "applied", (json_int_t)s->applied, "duplicate", (json_int_t)s->duplicate,
        "deferred", (json_int_t)s->deferred, "fork", (json_int_t)s->fork, "rejected",
        (json_int_t)s->rejected, "withheld_payloads", (json_int_t)s->withheld_payloads,
        "reconnects", (json_int_t)s->reconnects, "last_error",
        str_or_null(s->last_error), "forks_flagged", (json_int_t)s->fork);
}

cs_err
br_link_command(br_link *l, const char *cmd, char *msg, size_t msgsz)
{
    cs_err rc = CS_OK;
    const char *ans = NULL;

    pthread_mutex_lock(&l->mu);
    if (strcmp(cmd, "pause") == 0) {
        l->cmd_pause = true;
        atomic_store(&l->interrupt, 1);
        ans = "pausing";
    } else if (strcmp(cmd, "resume") == 0) {
        l->cmd_resume = true;
        ans = "resuming";
    } else if (strcmp(cmd, "retry-now") == 0) {
        l->cmd_retry = true;
        if (l->paused)
            l->cmd_resume = true;
        ans = "retrying now";
    } else if (strcmp(cmd, "reset-link") == 0) {
        l->cmd_reset = true;
        atomic_store(&l->interrupt, 1);
        ans = "resetting: the target's checkpoint is deleted, then the link "
              "replicates from seq 0";
    } else {
        rc = CS_EINVAL;
        ans = "unknown command";
    }
    if (rc == CS_OK)
        cs_log(CS_LOG_NOTICE, "BRIDGE-CONTROL", "link=%s command=%s state=%s",
               l->cfg->name, cmd, br_state_name(l->shown));
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (msg != NULL && msgsz > 0)
        snprintf(msg, msgsz, "%s", ans);
    return rc;
}

cs_err
br_reset_checkpoint(const br_link_config *cfg, const char *source_node,
                    const char *token_override, char *msg, size_t msgsz,
                    cs_errbuf *eb)
{
    br_http *src = NULL, *tgt = NULL;
    br_endpoint tep = cfg->target;
    json_t *si = NULL;
    char *seg = NULL;
    char node[128];
    br_http_err e;
    cs_err rc;

    if (token_override != NULL)
        tep.token = (char *)token_override;
    if ((rc = br_http_new(&tep, cfg->name, "target", &tgt, eb)) != CS_OK)
        goto out;
    if (source_node == NULL) {
        const char *nid;
        if ((rc = br_http_new(&cfg->source, cfg->name, "source", &src, eb)) != CS_OK)
            goto out;
        rc = br_http_json(src, "GET", "/federation/info", NULL, NULL, &si, &e);
        if (rc != CS_OK) {
            rc = cs_errf(eb, rc, "source GET /federation/info: %s (give --source-node ID "
                         "to skip asking the source)", e.reason);
            goto out;
        }
        nid = json_string_value(json_object_get(si, "node_id"));
        if (nid == NULL || strlen(nid) >= sizeof(node)) {
            rc = cs_errf(eb, CS_EPROTO, "source /federation/info has no node_id");
            goto out;
        }
        snprintf(node, sizeof(node), "%s", nid);
    } else {
        snprintf(node, sizeof(node), "%s", source_node);
    }
    seg = br_http_escape(node);
    if (seg == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    rc = delete_checkpoint(tgt, seg, &e);
    if (rc != CS_OK) {
        rc = cs_errf(eb, rc, "target DELETE /federation/checkpoints/%.100s: %s%s", node,
                     e.reason,
                     e.status == 403 ? " (the target token needs admin; see --token-file)"
                                     : "");
        goto out;
    }
    if (msg != NULL)
        snprintf(msg, msgsz, "link %s: target %s forgot its checkpoint for source %s",
                 cfg->name, cfg->target.url, node);
out:
    json_decref(si);
    free(seg);
    br_http_free(src);
    br_http_free(tgt);
    return rc;
}
