/* SPDX-License-Identifier: MIT
 * sse.c: the SSE hub (see sse.h for the model and its guarantees).
 *
 * Locking: one hub mutex guards every client's queue and state. MHD
 * connections are resumed only outside that mutex, and only while they are
 * suspended (a suspended connection cannot be closed by MHD, so the pointer
 * stays valid until we resume it). */
#include "sse.h"

#include <microhttpd.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "federation.h"
#include "residency_node.h"
#include "node.h"

/* A client's queue is bounded by events (--sse-max-lag) and by bytes: a
 * federation stream in full mode carries payloads, so a count alone does
 * not bound memory. */
#define SSE_MAX_QUEUED_BYTES (8u << 20)
#define REPLAY_PAGE 500
#define REPLAY_LOW 256 /* refill a replaying client below this many frames */

/* A frame's bytes, shared by every client that queues it: a live event on
 * the plain feed is built once and referenced by each client it goes to
 * (1000 clients cost 1000 queue entries, not 1000 copies). refs is only
 * touched under the hub mutex. */
typedef struct frame {
    int64_t seq; /* 0 for non-event frames */
    int refs;
    size_t len;
    char data[];
} frame;

/* One client's reference to a frame, and how much of it was written. */
typedef struct qent {
    frame *f;
    size_t off;
    struct qent *next;
} qent;

struct sse_client {
    sse_hub *hub;
    cs_actor actor;
    char *pattern;
    char *sub_id;
    int64_t cursor;    /* last seq considered (hub only) */
    int64_t sent_seq;  /* last event seq fully written to the socket */
    int64_t saved_seq; /* last cursor persisted for a subscription */
    bool fed, full;    /* federation stream (and with payloads) */
    bool live;
    bool attached, suspended, closing, dead;
    void *conn;
    qent *q_head, *q_tail;
    size_t q_events;
    size_t q_bytes;    /* bytes queued (bounded: SSE_MAX_QUEUED_BYTES) */
    struct sse_client *next;
};

struct sse_hub {
    cs_node *node;
    cs_db *db;
    nng_socket sub;
    pthread_t thr;
    pthread_mutex_t mu;
    bool stop;
    sse_client *clients;
    unsigned n_clients;
    int64_t last_keepalive_us, last_persist_us;
    _Atomic uint64_t delivered, overflows;
};

/* ---- frames ---- */

static frame *
frame_new(int64_t seq, const char *fmt1, size_t n1, const char *body,
          size_t bl)
{
    frame *f = malloc(sizeof(*f) + n1 + bl + 3);
    if (f == NULL)
        return NULL;
    f->seq = seq;
    f->refs = 0;
    memcpy(f->data, fmt1, n1);
    memcpy(f->data + n1, body, bl);
    memcpy(f->data + n1 + bl, "\n\n", 2);
    f->len = n1 + bl + 2;
    return f;
}

/* Drops one reference (hub mutex held); frees the frame with the last. */
static void
frame_unref(frame *f)
{
    if (f != NULL && --f->refs <= 0)
        free(f);
}

/* Queues a reference to f; false when f is NULL or there is no memory for
 * the entry (the frame is lost for this client: the next event's seq gap
 * makes it refill from the table). Never frees f: see push_own. */
static bool
push(sse_client *c, frame *f)
{
    qent *e;
    if (f == NULL || (e = malloc(sizeof(*e))) == NULL)
        return false;
    f->refs++;
    e->f = f;
    e->off = 0;
    e->next = NULL;
    if (c->q_tail)
        c->q_tail->next = e;
    else
        c->q_head = e;
    c->q_tail = e;
    c->q_bytes += f->len;
    if (f->seq > 0)
        c->q_events++;
    return true;
}

/* Queues a frame made for this client alone (freed if it cannot be). */
static void
push_own(sse_client *c, frame *f)
{
    if (!push(c, f))
        free(f);
}

static void
push_text(sse_client *c, const char *text)
{
    push_own(c, frame_new(0, text, strlen(text), "", 0));
}

/* The frame of a plain-feed event: the same bytes for every client. */
static frame *
plain_frame(int64_t seq, const char *body)
{
    char head[96];
    int n = snprintf(head, sizeof(head),
                     "id: %lld\nevent: change\ndata: {\"seq\":%lld%s",
                     (long long)seq, (long long)seq,
                     (body[0] == '{' && body[1] != '}') ? "," : "");
    return frame_new(seq, head, (size_t)n, body + 1, strlen(body + 1));
}

/* Queues the change frame for one event body (stored without "seq").
 * *shared, when not NULL, caches the plain-feed frame of this event across
 * the clients of one delivery round. */
static void
push_event(sse_client *c, int64_t seq, const char *body, frame **shared)
{
    json_t *ev = NULL;
    char *txt;
    char head[64];
    cs_fed_view view;
    int n;
    if (!c->fed) {
        if (shared == NULL) {
            push_own(c, plain_frame(seq, body));
            return;
        }
        if (*shared == NULL) /* freed by the round if no client took it */
            *shared = plain_frame(seq, body);
        (void)push(c, *shared);
        return;
    }
    cs_res_fed_view(c->hub->node, &c->actor, &view); /* residency: */
    if (cs_fed_event(c->hub->node->store, c->hub->db, seq, body, c->full,
                     &view, NULL, &ev, NULL) != CS_OK)
        return;
    txt = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (txt == NULL)
        return;
    n = snprintf(head, sizeof(head), "id: %lld\nevent: change\ndata: ",
                 (long long)seq);
    push_own(c, frame_new(seq, head, (size_t)n, txt, strlen(txt)));
    free(txt);
}

static void
free_frames(sse_client *c)
{
    while (c->q_head) {
        qent *n = c->q_head->next;
        frame_unref(c->q_head->f);
        free(c->q_head);
        c->q_head = n;
    }
    c->q_tail = NULL;
    c->q_events = 0;
    c->q_bytes = 0;
}

static bool
wants(sse_hub *h, sse_client *c, const char *uri)
{
    if (c->fed ? !cs_fed_patterns_match(c->pattern, uri)
               : !cs_pattern_match(c->pattern, uri))
        return false;
    return cs_authz_check(h->node->authz, h->db, &c->actor, uri,
                          c->fed ? CS_OP_REPLICATE : CS_OP_READ, NULL);
}

/* Live delivery of one committed event to one client (hub mutex held). */
static void
deliver(sse_hub *h, sse_client *c, int64_t seq, const char *uri,
        const char *body, frame **shared)
{
    if (!c->live || c->closing || c->dead || seq <= c->cursor)
        return;
    if (seq > c->cursor + 1) {
        c->live = false; /* missed something: refill from the table */
        return;
    }
    c->cursor = seq;
    if (!wants(h, c, uri))
        return;
    push_event(c, seq, body, shared);
    atomic_fetch_add(&h->delivered, 1);
    /* The overflow frame follows every queued frame, so last_id is the seq
     * of the last change frame the client will have read before it. */
    if (c->q_events > h->node->cfg.sse_max_lag ||
        c->q_bytes > SSE_MAX_QUEUED_BYTES) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "event: overflow\ndata: {\"reason\":\"client fell more "
                 "than %u events behind\",\"last_id\":%lld}\n\n",
                 h->node->cfg.sse_max_lag, (long long)seq);
        push_text(c, msg);
        c->closing = true;
        atomic_fetch_add(&h->overflows, 1);
        cs_log(CS_LOG_NOTICE, "SSE-OVERFLOW",
               "actor=%s pattern=%s disconnected after falling %zu events "
               "behind",
               c->actor.actor_id, c->pattern, c->q_events);
    }
}

/* Fills a replaying client from the change_events table (hub mutex held). */
static void
replay(sse_hub *h, sse_client *c)
{
    cs_dbst *st;
    int rows = 0;
    if (h->db == NULL)
        return;
    st = cs_stmt(h->db, "SELECT seq, artifact_uri, body FROM change_events"
                        " WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (st == NULL)
        return;
    cs_db_bind_int64(st, 1, c->cursor);
    cs_db_bind_int(st, 2, REPLAY_PAGE);
    while (cs_db_step(st) == CS_DB_ROW) {
        int64_t seq = cs_db_column_int64(st, 0);
        const char *uri = (const char *)cs_db_column_text(st, 1);
        const char *body = (const char *)cs_db_column_text(st, 2);
        rows++;
        c->cursor = seq;
        if (wants(h, c, uri)) {
            push_event(c, seq, body, NULL);
            atomic_fetch_add(&h->delivered, 1);
        }
    }
    cs_db_reset(st);
    if (rows < REPLAY_PAGE)
        c->live = true; /* caught up with everything committed */
}

/* ---- subscription cursors ---- */

typedef struct cursor_upd {
    char *id;
    int64_t seq;
} cursor_upd;

static cs_err
cursor_write(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    cursor_upd *u = arg;
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st = cs_stmt(
        db, "UPDATE subscriptions SET cursor = ?2 WHERE id = ?1 AND cursor < ?2");
    int rc;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, u->id, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 2, u->seq);
    rc = cs_db_step(st);
    cs_db_reset(st);
    return rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
}

static void
cursor_done(void *arg, cs_err rv)
{
    cursor_upd *u = arg;
    free(u->id);
    free(u);
}

static void
persist_cursor(sse_hub *h, sse_client *c)
{
    cursor_upd *u;
    if (c->sub_id == NULL || c->sent_seq <= c->saved_seq)
        return;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return;
    u->id = strdup(c->sub_id);
    u->seq = c->sent_seq;
    c->saved_seq = c->sent_seq;
    cs_store_write_async(h->node->store, cursor_write, u, cursor_done);
}

/* ---- the hub thread ---- */

static void
client_free(sse_client *c)
{
    free_frames(c);
    free(c->pattern);
    free(c->sub_id);
    free(c);
}

static void *
hub_main(void *arg)
{
    sse_hub *h = arg;
    /* every client may need a resume per round: a smaller array left
     * the rest for the next round, up to 200 ms later */
    static void *resume[8192];

    for (;;) {
        char *msg = NULL;
        size_t len = 0;
        int rv;
        bool replaying = false;
        size_t nres = 0;
        int64_t now;

        pthread_mutex_lock(&h->mu);
        for (sse_client *c = h->clients; c; c = c->next)
            if (c->attached && !c->live && !c->closing && !c->dead)
                replaying = true;
        if (h->stop) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        pthread_mutex_unlock(&h->mu);

        nng_socket_set_ms(h->sub, NNG_OPT_RECVTIMEO, replaying ? 5 : 200);
        rv = nng_recv(h->sub, &msg, &len, NNG_FLAG_ALLOC);

        pthread_mutex_lock(&h->mu);
        /* Every event already published goes out in this round, so one
         * resume of a client carries them all (under load the events of a
         * group commit arrive together). */
        for (int k = 0; rv == 0 && k < 512; k++) {
            if (len > 9) {
                int64_t seq;
                const char *uri = msg + 8;
                const char *body = uri + strlen(uri) + 1;
                frame *shared = NULL;
                memcpy(&seq, msg, 8);
                for (sse_client *c = h->clients; c; c = c->next)
                    if (c->attached)
                        deliver(h, c, seq, uri, body, &shared);
                if (shared != NULL && shared->refs == 0)
                    free(shared);
            }
            nng_free(msg, len);
            msg = NULL;
            if (k + 1 < 512)
                rv = nng_recv(h->sub, &msg, &len,
                              NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK);
        }
        if (msg != NULL)
            nng_free(msg, len);

        now = cs_now_us();
        for (sse_client *c = h->clients; c; c = c->next) {
            if (!c->attached || c->dead || c->closing)
                continue;
            if (!c->live && c->q_events < REPLAY_LOW &&
                c->q_bytes < SSE_MAX_QUEUED_BYTES / 2)
                replay(h, c);
        }
        if (h->db != NULL)
            cs_store_reader_idle(h->db);
        if (now - h->last_keepalive_us >=
            (int64_t)h->node->cfg.keepalive_s * 1000000) {
            h->last_keepalive_us = now;
            for (sse_client *c = h->clients; c; c = c->next)
                if (c->attached && !c->dead && !c->closing && c->q_head == NULL)
                    push_text(c, ": keepalive");
        }
        if (now - h->last_persist_us >= 500000) {
            h->last_persist_us = now;
            for (sse_client *c = h->clients; c; c = c->next)
                persist_cursor(h, c);
        }
        /* Reap closed clients; collect suspended ones that have work. */
        for (sse_client **pp = &h->clients; *pp;) {
            sse_client *c = *pp;
            if (c->dead) {
                persist_cursor(h, c);
                *pp = c->next;
                h->n_clients--;
                client_free(c);
                continue;
            }
            if (c->suspended && (c->q_head != NULL || c->closing) &&
                nres < sizeof(resume) / sizeof(resume[0])) {
                c->suspended = false;
                resume[nres++] = c->conn;
            }
            pp = &c->next;
        }
        pthread_mutex_unlock(&h->mu);
        for (size_t i = 0; i < nres; i++)
            MHD_resume_connection(resume[i]);
    }
    /* The statements cached on h->db belong to this thread's cache: the
     * connection must be closed here, not by the thread that stops us. */
    cs_store_reader_close(h->db);
    h->db = NULL;
    return NULL;
}

cs_err
sse_hub_start(cs_node *n, sse_hub **out, cs_errbuf *eb)
{
    sse_hub *h = calloc(1, sizeof(*h));
    int rv;
    if (h == NULL)
        return CS_ENOMEM;
    h->node = n;
    pthread_mutex_init(&h->mu, NULL);
    if ((rv = nng_sub0_open(&h->sub)) != 0 ||
        (rv = nng_socket_set(h->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
        (rv = nng_socket_set_int(h->sub, NNG_OPT_RECVBUF, 8192)) != 0 ||
        (rv = nng_dial(h->sub, CS_EVENTS_URL, NULL, 0)) != 0) {
        free(h);
        return cs_errf(eb, CS_EIO, "nng sub %s: %s", CS_EVENTS_URL,
                       nng_strerror(rv));
    }
    if (cs_store_reader(n->store, &h->db) != CS_OK) {
        nng_close(h->sub);
        free(h);
        return cs_errf(eb, CS_EIO, "hub: cannot open a read connection");
    }
    h->last_keepalive_us = cs_now_us();
    if (pthread_create(&h->thr, NULL, hub_main, h) != 0) {
        nng_close(h->sub);
        cs_db_close(h->db);
        free(h);
        return CS_ENOMEM;
    }
    *out = h;
    return CS_OK;
}

void
sse_hub_close_all(sse_hub *h)
{
    void *resume[4096];
    size_t n = 0;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    for (sse_client *c = h->clients; c; c = c->next) {
        /* Drop what is queued: a client that does not read must not hold
         * the shutdown; it resumes from its last id. */
        free_frames(c);
        c->closing = true;
        if (c->suspended && n < sizeof(resume) / sizeof(resume[0])) {
            c->suspended = false;
            resume[n++] = c->conn;
        }
    }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(resume[i]);
}

void
sse_hub_stop(sse_hub *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thr, NULL);
    /* Persist what each client has been sent. */
    for (sse_client *c = h->clients; c;) {
        sse_client *next = c->next;
        persist_cursor(h, c);
        client_free(c);
        c = next;
    }
    nng_close(h->sub);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

unsigned
sse_hub_clients(sse_hub *h)
{
    unsigned n;
    pthread_mutex_lock(&h->mu);
    n = h->n_clients;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void
sse_hub_metrics(sse_hub *h, char **buf, size_t *len, size_t *cap)
{
    cs_buf_appendf(buf, len, cap,
                   "# TYPE ctxsync_sse_clients gauge\nctxsync_sse_clients %u\n"
                   "# TYPE ctxsync_sse_events_delivered_total counter\n"
                   "ctxsync_sse_events_delivered_total %llu\n"
                   "# TYPE ctxsync_sse_overflows_total counter\n"
                   "ctxsync_sse_overflows_total %llu\n",
                   sse_hub_clients(h),
                   (unsigned long long)atomic_load(&h->delivered),
                   (unsigned long long)atomic_load(&h->overflows));
}

/* ---- clients ---- */

cs_err
sse_client_new(sse_hub *h, const cs_actor *actor, const char *pattern,
               int64_t since, const char *sub_id, sse_client **out)
{
    sse_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CS_ENOMEM;
    c->hub = h;
    c->actor = *actor;
    c->pattern = strdup(pattern);
    c->sub_id = sub_id ? strdup(sub_id) : NULL;
    if (c->pattern == NULL || (sub_id && c->sub_id == NULL)) {
        client_free(c);
        return CS_ENOMEM;
    }
    if (since < 0) {
        c->cursor = cs_store_head_seq(h->node->store);
        c->live = true;
    } else {
        c->cursor = since;
        c->live = false;
    }
    c->sent_seq = c->saved_seq = c->cursor;
    push_text(c, "retry: 2000");
    *out = c;
    return CS_OK;
}

cs_err
sse_client_new_fed(sse_hub *h, const cs_actor *actor, const char *patterns,
                   int64_t since, bool full, sse_client **out)
{
    sse_client *c = NULL;
    cs_err rv = sse_client_new(h, actor, patterns, since, NULL, &c);
    if (rv != CS_OK)
        return rv;
    c->fed = true;
    c->full = full;
    *out = c;
    return CS_OK;
}

void
sse_client_free(sse_client *c)
{
    if (c != NULL)
        client_free(c);
}

void
sse_client_attach(sse_client *c, void *conn)
{
    sse_hub *h = c->hub;
    pthread_mutex_lock(&h->mu);
    c->conn = conn;
    c->attached = true;
    c->next = h->clients;
    h->clients = c;
    h->n_clients++;
    if (h->stop)
        c->closing = true;
    pthread_mutex_unlock(&h->mu);
}

ssize_t
sse_client_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse_client *c = cls;
    sse_hub *h = c->hub;
    size_t n = 0;

    pthread_mutex_lock(&h->mu);
    while (c->q_head != NULL && n < max) {
        qent *e = c->q_head;
        frame *f = e->f;
        size_t k = f->len - e->off;
        if (k > max - n)
            k = max - n;
        memcpy(buf + n, f->data + e->off, k);
        n += k;
        e->off += k;
        if (e->off == f->len) {
            c->q_head = e->next;
            if (c->q_head == NULL)
                c->q_tail = NULL;
            if (f->seq > 0) {
                c->q_events--;
                c->sent_seq = f->seq;
            }
            c->q_bytes -= f->len;
            frame_unref(f);
            free(e);
        }
    }
    if (n == 0) {
        if (c->closing) {
            pthread_mutex_unlock(&h->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        c->suspended = true;
        MHD_suspend_connection(c->conn);
    }
    pthread_mutex_unlock(&h->mu);
    return (ssize_t)n;
}

void
sse_client_release(void *cls)
{
    sse_client *c = cls;
    sse_hub *h = c->hub;
    pthread_mutex_lock(&h->mu);
    c->dead = true;
    c->suspended = false;
    pthread_mutex_unlock(&h->mu);
}
