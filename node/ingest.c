/* SPDX-License-Identifier: MIT
 * ingest.c: applying federation events (see ingest.h). */
#include "ingest.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cs_base64.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "node.h"
#include "residency_node.h"
#include "versions.h"

typedef enum {
    ING_APPLIED = 0,
    ING_DUPLICATE,
    ING_DEFERRED,
    ING_FORK,
    ING_REJECTED,
} ing_status;

static const char *const status_names[] = {"applied", "duplicate",
                                           "deferred", "fork", "rejected"};

static _Atomic unsigned long long g_counts[5], g_batches;

typedef struct ing_event {
    json_t *ev;          /* borrowed from the request body */
    ing_status status;
    bool prechecked_bad; /* rejected before the transaction */
    char reason[256];
    char *payload;       /* decoded payload (owned) or NULL */
    size_t payload_len;
    bool has_payload;
} ing_event;

typedef struct ing_batch {
    const char *self_node; /* this node's node_id */
    const char *source_node, *source_epoch;
    const char *caller;
    int64_t checkpoint; /* -1: none */
    ing_event *evs;
    size_t n;
    int64_t stored_cp;
    char stored_epoch[40];
    unsigned counts[5];
} ing_batch;

/* ---- helpers ---- */

/* Decodes a federation payload {encoding: utf8|base64, data}: *out gets
 * malloc'd bytes (NUL-terminated), *len their size. CS_EINVAL with a
 * reason in eb when the object is malformed. */
static cs_err
decode_payload(const json_t *payload, char **out, size_t *len, cs_errbuf *eb)
{
    const char *enc = json_string_value(json_object_get(payload, "encoding"));
    const json_t *d = json_object_get(payload, "data");
    const char *data = json_string_value(d);
    char *p;
    if (enc == NULL || data == NULL)
        return cs_errf(eb, CS_EINVAL, "payload must be {encoding, data}");
    if (strcmp(enc, "utf8") == 0) {
        *len = json_string_length(d);
        p = malloc(*len + 1);
        if (p == NULL)
            return cs_errf(eb, CS_ENOMEM, "out of memory");
        memcpy(p, data, *len);
        p[*len] = '\0';
    } else if (strcmp(enc, "base64") == 0) {
        p = cs_base64_decode(data, json_string_length(d), len);
        if (p == NULL)
            return cs_errf(eb, CS_EINVAL, "payload data is not valid base64");
    } else {
        return cs_errf(eb, CS_EINVAL, "payload encoding must be utf8 or base64");
    }
    *out = p;
    return CS_OK;
}

static const char *
jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Fills rec from an event object (borrowing its strings). */
static void
record_from_event(const json_t *ev, const ing_event *ie, const char *caller,
                  cs_version_record *rec)
{
    const json_t *origin = json_object_get(ev, "origin");
    memset(rec, 0, sizeof(*rec));
    rec->uri = jstr(ev, "artifact_uri");
    rec->name = jstr(ev, "name");
    rec->version_id = jstr(ev, "version_id");
    rec->parent_id = jstr(ev, "parent_id");
    rec->merged_from = json_object_get(ev, "merged_from");
    rec->version = json_integer_value(json_object_get(ev, "version"));
    rec->deleted = json_is_true(json_object_get(ev, "deleted"));
    rec->content_hash = rec->deleted ? NULL : jstr(ev, "content_hash");
    rec->size = json_integer_value(json_object_get(ev, "size"));
    rec->content_type = jstr(ev, "content_type");
    rec->author_id = jstr(ev, "author_id");
    rec->actor_type = jstr(ev, "actor_type");
    rec->agent_class = jstr(ev, "agent_class");
    rec->approved_by = jstr(ev, "approved_by");
    rec->summary = jstr(ev, "summary");
    rec->created_at = jstr(ev, "created_at");
    rec->origin_node = jstr(origin, "node_id");
    rec->origin_region = jstr(origin, "region");
    rec->origin_seq = json_integer_value(json_object_get(origin, "seq"));
    rec->home_region = jstr(ev, "home_region");
    if (ie != NULL && ie->has_payload) {
        rec->payload = ie->payload;
        rec->payload_len = ie->payload_len;
    }
    rec->prov_actor_id = caller;
}

/* Structural and cryptographic checks that need no database. Fills
 * ie->reason and returns false when the event must be rejected. */
static bool
precheck(cs_req *r, ing_event *ie)
{
    const json_t *ev = ie->ev, *origin, *payload, *mf;
    const char *uri, *vid, *hash, *created;
    cs_errbuf eb = {{0}};
    cs_version_record rec;
    char computed[CS_VERSION_ID_LEN + 1];
    int64_t us;
    bool deleted;

#define REJECT(...)                                                       \
    do {                                                                  \
        snprintf(ie->reason, sizeof(ie->reason), __VA_ARGS__);            \
        return false;                                                     \
    } while (0)

    if (!json_is_object(ev))
        REJECT("event is not a JSON object");
    uri = jstr(ev, "artifact_uri");
    vid = jstr(ev, "version_id");
    if (uri == NULL || vid == NULL)
        REJECT("artifact_uri and version_id must be strings");
    if (cs_uri_parse(uri, NULL, &eb) != CS_OK)
        REJECT("invalid artifact_uri: %s", eb.msg);
    if (!cs_authz_check(cs_req_node(r)->authz, cs_req_db(r), cs_req_actor(r),
                        uri, CS_OP_REPLICATE, NULL))
        REJECT("forbidden: no replicate permission on %s", uri);
    if (!json_is_integer(json_object_get(ev, "version")) ||
        json_integer_value(json_object_get(ev, "version")) < 1)
        REJECT("version must be an integer >= 1");
    if (json_object_get(ev, "parent_id") != NULL &&
        !json_is_null(json_object_get(ev, "parent_id")) &&
        !json_is_string(json_object_get(ev, "parent_id")))
        REJECT("parent_id must be a string or null");
    mf = json_object_get(ev, "merged_from");
    if (mf != NULL && !json_is_null(mf)) {
        size_t i;
        json_t *x;
        if (!json_is_array(mf))
            REJECT("merged_from must be an array");
        json_array_foreach(mf, i, x) if (!json_is_string(x))
            REJECT("merged_from must hold version_id strings");
    }
    origin = json_object_get(ev, "origin");
    if (!json_is_object(origin) || jstr(origin, "node_id") == NULL ||
        jstr(origin, "region") == NULL ||
        !json_is_integer(json_object_get(origin, "seq")))
        REJECT("origin must be {node_id, region, seq}");
    if (jstr(ev, "author_id") == NULL)
        REJECT("author_id must be a string");
    {
        char expect[300];
        snprintf(expect, sizeof(expect), "%s:%lld", jstr(origin, "node_id"),
                 (long long)json_integer_value(json_object_get(origin, "seq")));
        if (jstr(ev, "event_id") == NULL || strcmp(jstr(ev, "event_id"), expect) != 0)
            REJECT("event_id must be origin node_id:seq (%.200s)", expect);
    }
    created = jstr(ev, "created_at");
    if (created == NULL || cs_time_parse(created, &us) != CS_OK)
        REJECT("created_at must be an RFC 3339 time");
    deleted = json_is_true(json_object_get(ev, "deleted"));
    if (json_object_get(ev, "deleted") != NULL &&
        !json_is_boolean(json_object_get(ev, "deleted")))
        REJECT("deleted must be a boolean");
    hash = jstr(ev, "content_hash");
    if (!deleted) {
        if (hash == NULL || strncmp(hash, "sha256:", 7) != 0 ||
            strlen(hash) != 71)
            REJECT("content_hash must be sha256:<64 hex>");
        if (!json_is_integer(json_object_get(ev, "size")) ||
            json_integer_value(json_object_get(ev, "size")) < 0)
            REJECT("size must be a non-negative integer");
        if (jstr(ev, "content_type") == NULL)
            REJECT("content_type must be a string");
    }
    /* The record must hash to its version_id. */
    record_from_event(ev, NULL, NULL, &rec);
    if (cs_version_id(rec.uri, rec.version, rec.parent_id, rec.merged_from,
                      rec.content_hash, rec.author_id, rec.created_at,
                      rec.origin_node, computed) != CS_OK ||
        strcmp(computed, vid) != 0)
        REJECT("version_id does not match the record (expected %s)", computed);
    payload = json_object_get(ev, "payload");
    /* residency: an inline payload this node's region may not hold */
    if (payload != NULL && !json_is_null(payload) && !deleted &&
        cs_res_ingest_refuses(cs_req_node(r), uri, ie->reason,
                              sizeof(ie->reason)))
        return false;
    if (payload != NULL && !json_is_null(payload) && !deleted) {
        char got[CS_CONTENT_HASH_LEN + 1];
        cs_errbuf peb = {{0}};
        if (decode_payload(payload, &ie->payload, &ie->payload_len, &peb) !=
            CS_OK)
            REJECT("%s", peb.msg);
        ie->has_payload = true;
        cs_content_hash(ie->payload, ie->payload_len, got);
        if (strcmp(got, hash) != 0)
            REJECT("payload hash mismatch: content_hash %s, payload hashes "
                   "to %s",
                   hash, got);
        if ((int64_t)ie->payload_len !=
            json_integer_value(json_object_get(ev, "size")))
            REJECT("payload size %zu does not match size %lld",
                   ie->payload_len,
                   (long long)json_integer_value(json_object_get(ev, "size")));
    }
    return true;
#undef REJECT
}

/* ---- inside the transaction ---- */

/* True when `sql` (one text parameter) finds a row for key. */
static bool
row_exists(cs_db *db, const char *sql, const char *key)
{
    cs_dbst *st;
    bool found;
    if (key == NULL || (st = cs_stmt(db, sql)) == NULL)
        return false;
    cs_db_bind_text(st, 1, key, -1, CS_DB_STATIC);
    found = cs_db_step(st) == CS_DB_ROW;
    cs_db_reset(st);
    return found;
}

static bool
version_exists(cs_db *db, const char *vid)
{
    return row_exists(db, "SELECT 1 FROM artifact_versions WHERE"
                          " version_id = ?1", vid);
}

static bool
pending_exists(cs_db *db, const char *vid)
{
    return row_exists(db, "SELECT 1 FROM fed_pending WHERE version_id = ?1",
                      vid);
}

static bool
event_id_taken(cs_db *db, const char *event_id)
{
    return row_exists(db, "SELECT 1 FROM change_events WHERE event_id = ?1",
                      event_id);
}

/* First ancestor (parent, then merged_from) not present, or NULL. */
static const char *
missing_ancestor(cs_db *db, const json_t *ev)
{
    const char *p = jstr(ev, "parent_id");
    const json_t *mf = json_object_get(ev, "merged_from");
    size_t i;
    json_t *x;
    if (p != NULL && !version_exists(db, p))
        return p;
    if (json_is_array(mf))
        json_array_foreach(mf, i, x) if (!version_exists(db, json_string_value(x)))
            return json_string_value(x);
    return NULL;
}

static cs_err
dead_letter(cs_db *db, const ing_batch *b, const json_t *ev,
            const char *reason, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(
        db, "INSERT INTO fed_deadletters(event_id, version_id, uri, source,"
            " reason, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    char now[CS_TIME_LEN];
    char *txt = NULL;
    json_t *copy = NULL;
    int rc;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    if (json_is_object(ev)) {
        /* keep the record, not the payload bytes */
        copy = json_copy((json_t *)ev);
        json_object_del(copy, "payload");
        txt = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
    }
    cs_time_format(cs_now_us(), now);
    cs_db_bind_text(st, 1, json_is_object(ev) ? jstr(ev, "event_id") : NULL,
                      -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, json_is_object(ev) ? jstr(ev, "version_id") : NULL,
                      -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, json_is_object(ev) ? jstr(ev, "artifact_uri")
                                                : NULL,
                      -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, b->source_node, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 5, reason, -1, CS_DB_STATIC);
    if (txt)
        cs_db_bind_text(st, 6, txt, -1, CS_DB_TRANSIENT);
    cs_db_bind_text(st, 7, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    free(txt);
    return rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
}

static cs_err
pending_put(cs_db *db, const ing_batch *b, const json_t *ev,
            const char *missing, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(
        db, "INSERT OR IGNORE INTO fed_pending(version_id, uri, missing,"
            " source, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    char now[CS_TIME_LEN];
    char *txt = json_dumps(ev, JSON_COMPACT);
    int rc;
    if (st == NULL || txt == NULL) {
        free(txt);
        return st == NULL ? cs_db_err(db, CS_DB_ERROR, eb) : CS_ENOMEM;
    }
    cs_time_format(cs_now_us(), now);
    cs_db_bind_text(st, 1, jstr(ev, "version_id"), -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, jstr(ev, "artifact_uri"), -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, missing, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, b->source_node, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 5, txt, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 6, now, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    cs_db_reset(st);
    free(txt);
    return rc == CS_DB_DONE ? CS_OK : cs_db_err(db, rc, eb);
}

/* Applies one event whose ancestry is complete; then drains the pending
 * events that were waiting for it (iteratively, in a work list). */
static cs_err apply_and_drain(cs_tx *tx, ing_batch *b, const json_t *ev,
                              const ing_event *ie, ing_status *st_out,
                              char *reason, size_t rlen, cs_errbuf *eb);

static cs_err
classify_apply(cs_tx *tx, ing_batch *b, const json_t *ev, const ing_event *ie,
               ing_status *out, char *reason, size_t rlen, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    const char *vid = jstr(ev, "version_id");
    const char *miss;
    if (version_exists(db, vid) || pending_exists(db, vid)) {
        *out = ING_DUPLICATE;
        return CS_OK;
    }

    miss = missing_ancestor(db, ev);
    if (miss != NULL) {
        /* A payload-carrying event keeps its payload in the pending row. */
        json_t *keep = json_incref((json_t *)ev);
        cs_err rv = pending_put(db, b, keep, miss, eb);
        json_decref(keep);
        if (rv == CS_OK)
            *out = ING_DEFERRED;
        return rv;
    }
    return apply_and_drain(tx, b, ev, ie, out, reason, rlen, eb);
}

static cs_err
apply_one(cs_tx *tx, ing_batch *b, const json_t *ev, const ing_event *ie,
          ing_status *out, char *reason, size_t rlen, cs_errbuf *eb)
{
    cs_version_record rec;
    cs_errbuf aeb = {{0}};
    bool forked = false;
    cs_err rv;
    record_from_event(ev, ie, b->caller, &rec);
    if (event_id_taken(cs_tx_db(tx), jstr(ev, "event_id"))) {
        /* Same event_id, different version: the origin node was rebuilt
         * with the same node_id and reuses its seqs. */
        snprintf(reason, rlen,
                 "event_id %s is already used by another version: the "
                 "origin node was re-initialised with the same node_id "
                 "(give it a new node_id)",
                 jstr(ev, "event_id"));
        *out = ING_REJECTED;
        return dead_letter(cs_tx_db(tx), b, ev, reason, eb);
    }
    rv = cs_version_apply_tx(tx, &rec, &forked, &aeb);
    if (rv == CS_EINVAL) {
        /* a record that cannot be applied (e.g. version != parent + 1) */
        snprintf(reason, rlen, "%s", aeb.msg);
        *out = ING_REJECTED;
        return dead_letter(cs_tx_db(tx), b, ev, reason, eb);
    }
    if (rv != CS_OK) {
        if (eb)
            *eb = aeb;
        return rv;
    }
    *out = forked ? ING_FORK : ING_APPLIED;
    if (strcmp(rec.origin_node, b->self_node) == 0) {
        /* One of this node's own versions coming back (lost by a restore,
         * held by a peer). Never give its seq out again, even when
         * new-epoch was not told a high enough --seq-floor. */
        cs_dbst *st = cs_stmt_pg(cs_tx_db(tx),
            "UPDATE sqlite_sequence SET seq = ?1"
            " WHERE name = 'change_events' AND seq < ?1",
            "UPDATE seq_floor SET seq = $1 WHERE seq < $1");
        if (st == NULL)
            return cs_db_err(cs_tx_db(tx), CS_DB_ERROR, eb);
        cs_db_bind_int64(st, 1, rec.origin_seq);
        if (cs_db_step(st) != CS_DB_DONE)
            return cs_db_err(cs_tx_db(tx), cs_db_errcode(cs_tx_db(tx)), eb);
    }
    return CS_OK;
}

static cs_err
apply_and_drain(cs_tx *tx, ing_batch *b, const json_t *ev,
                const ing_event *ie, ing_status *st_out, char *reason,
                size_t rlen, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    json_t *work = json_array(); /* version_ids newly applied */
    cs_err rv = apply_one(tx, b, ev, ie, st_out, reason, rlen, eb);
    if (rv != CS_OK || *st_out == ING_REJECTED)
        goto out;
    json_array_append_new(work, json_string(jstr(ev, "version_id")));
    while (json_array_size(work) > 0) {
        char *vid = strdup(json_string_value(json_array_get(work, 0)));
        json_t *waiting = json_array();
        cs_dbst *st;
        size_t i;
        json_t *x;
        json_array_remove(work, 0);
        st = cs_stmt(db, "SELECT event FROM fed_pending WHERE missing = ?1");
        if (st == NULL || vid == NULL) {
            free(vid);
            json_decref(waiting);
            rv = cs_db_err(db, CS_DB_ERROR, eb);
            goto out;
        }
        cs_db_bind_text(st, 1, vid, -1, CS_DB_STATIC);
        while (cs_db_step(st) == CS_DB_ROW) {
            json_t *pe = NULL;
            const char *t = (const char *)cs_db_column_text(st, 0);
            if (cs_json_parse(t, strlen(t), &pe, NULL) == CS_OK)
                json_array_append_new(waiting, pe);
        }
        cs_db_reset(st);
        st = cs_stmt(db, "DELETE FROM fed_pending WHERE missing = ?1");
        if (st != NULL) {
            cs_db_bind_text(st, 1, vid, -1, CS_DB_STATIC);
            cs_db_step(st);
            cs_db_reset(st);
        }
        free(vid);
        json_array_foreach(waiting, i, x)
        {
            ing_event pie;
            ing_status ps = ING_REJECTED;
            char preason[256] = "";
            const char *miss = missing_ancestor(db, x);
            memset(&pie, 0, sizeof(pie));
            if (miss != NULL) {
                rv = pending_put(db, b, x, miss, eb);
                if (rv != CS_OK)
                    break;
                continue;
            }
            /* Payload of a pending event (checked when it was received):
             * decode it again from its JSON. */
            if (json_object_get(x, "payload") != NULL)
                pie.has_payload =
                    decode_payload(json_object_get(x, "payload"),
                                   &pie.payload, &pie.payload_len,
                                   NULL) == CS_OK;
            rv = apply_one(tx, b, x, &pie, &ps, preason, sizeof(preason), eb);
            free(pie.payload);
            if (rv != CS_OK)
                break;
            if (ps != ING_REJECTED) {
                b->counts[ps]++;
                json_array_append_new(work, json_string(jstr(x, "version_id")));
            }
        }
        json_decref(waiting);
        if (rv != CS_OK)
            goto out;
    }
out:
    json_decref(work);
    return rv;
}

static cs_err
store_checkpoint(cs_db *db, ing_batch *b, cs_errbuf *eb)
{
    cs_dbst *st;
    char now[CS_TIME_LEN];
    int rc;
    if (b->checkpoint >= 0) {
        cs_time_format(cs_now_us(), now);
        /* Forward only within one epoch; a new epoch replaces it. */
        st = cs_stmt(db, "INSERT INTO fed_checkpoints(source, epoch, seq,"
                         " updated_at) VALUES (?1, ?2, ?3, ?4)"
                         " ON CONFLICT(source) DO UPDATE SET"
                         " epoch = excluded.epoch, seq = excluded.seq,"
                         " updated_at = excluded.updated_at"
                         " WHERE excluded.epoch <> fed_checkpoints.epoch OR"
                         " excluded.seq > fed_checkpoints.seq");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, b->source_node, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, b->source_epoch, -1, CS_DB_STATIC);
        cs_db_bind_int64(st, 3, b->checkpoint);
        cs_db_bind_text(st, 4, now, -1, CS_DB_STATIC);
        rc = cs_db_step(st);
        cs_db_reset(st);
        if (rc != CS_DB_DONE)
            return cs_db_err(db, rc, eb);
    }
    st = cs_stmt(db, "SELECT epoch, seq FROM fed_checkpoints WHERE"
                     " source = ?1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, b->source_node, -1, CS_DB_STATIC);
    b->stored_cp = -1;
    if (cs_db_step(st) == CS_DB_ROW) {
        snprintf(b->stored_epoch, sizeof(b->stored_epoch), "%s",
                 cs_db_column_text(st, 0));
        b->stored_cp = cs_db_column_int64(st, 1);
    }
    cs_db_reset(st);
    return CS_OK;
}

static cs_err
ingest_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    ing_batch *b = arg;
    cs_db *db = cs_tx_db(tx);
    cs_err rv = CS_OK;
    memset(b->counts, 0, sizeof(b->counts));
    for (size_t i = 0; i < b->n; i++) {
        ing_event *ie = &b->evs[i];
        if (ie->prechecked_bad) {
            ie->status = ING_REJECTED;
            rv = dead_letter(db, b, ie->ev, ie->reason, eb);
        } else {
            ie->reason[0] = '\0';
            rv = classify_apply(tx, b, ie->ev, ie, &ie->status, ie->reason,
                                sizeof(ie->reason), eb);
        }
        if (rv != CS_OK)
            return rv;
        b->counts[ie->status]++;
    }
    return store_checkpoint(db, b, eb);
}

/* ---- the handler ---- */

void
cs_ingest_handle(cs_req *r)
{
    json_t *body = cs_req_body(r), *source, *target, *events, *cp;
    json_t *results = NULL;
    cs_errbuf eb = {{0}};
    ing_batch b;
    cs_err rv;
    size_t i;

    memset(&b, 0, sizeof(b));
    b.checkpoint = -1;
    source = json_object_get(body, "source");
    events = json_object_get(body, "events");
    cp = json_object_get(body, "checkpoint");
    if (!json_is_object(body) || !json_is_object(source) ||
        jstr(source, "node_id") == NULL || jstr(source, "epoch") == NULL) {
        cs_res_error(r, 400, "bad_request",
                     "body must be {source: {node_id, epoch}, events: [...], "
                     "checkpoint: {seq}}");
        return;
    }
    if (!json_is_array(events)) {
        cs_res_error(r, 400, "bad_request", "field 'events' must be an array");
        return;
    }
    if (json_array_size(events) > CS_INGEST_MAX_EVENTS) {
        cs_res_error(r, 413, "payload_too_large",
                     "a batch holds at most %d events, got %zu",
                     CS_INGEST_MAX_EVENTS, json_array_size(events));
        return;
    }
    if (cp != NULL && !json_is_null(cp)) {
        json_t *s = json_object_get(cp, "seq");
        if (!json_is_object(cp) || !json_is_integer(s) ||
            json_integer_value(s) < 0) {
            cs_res_error(r, 400, "bad_request",
                         "checkpoint must be {seq: integer >= 0}");
            return;
        }
        b.checkpoint = json_integer_value(s);
    }
    if (strcmp(jstr(source, "node_id"), cs_store_node_id(cs_req_node(r)->store)) == 0) {
        cs_res_error(r, 400, "bad_request",
                     "source node_id '%s' is this node: a link must not "
                     "replicate a node into itself",
                     jstr(source, "node_id"));
        return;
    }
    target = json_object_get(body, "target");
    if (target != NULL && !json_is_null(target)) {
        const char *te = jstr(target, "epoch");
        if (!json_is_object(target) || te == NULL) {
            cs_res_error(r, 400, "bad_request", "target must be {epoch}");
            return;
        }
        if (strcmp(te, cs_store_epoch(cs_req_node(r)->store)) != 0) {
            /* The bridge's session was set up against another incarnation
             * of this node (restored, re-initialised): its position is
             * not this database's checkpoint. */
            cs_res_error(r, 409, "target_epoch_changed",
                         "this node's epoch is %s, not %.40s: it was restored "
                         "or re-initialised; read /federation/info and the "
                         "checkpoint again",
                         cs_store_epoch(cs_req_node(r)->store), te);
            return;
        }
    }
    b.self_node = cs_store_node_id(cs_req_node(r)->store);
    b.source_node = jstr(source, "node_id");
    b.source_epoch = jstr(source, "epoch");
    b.caller = cs_req_actor(r)->actor_id;
    b.n = json_array_size(events);
    b.evs = calloc(b.n ? b.n : 1, sizeof(*b.evs));
    if (b.evs == NULL) {
        cs_res_error(r, 503, "unavailable", "out of memory");
        return;
    }
    for (i = 0; i < b.n; i++) {
        b.evs[i].ev = json_array_get(events, i);
        b.evs[i].prechecked_bad = !precheck(r, &b.evs[i]);
    }
    rv = cs_store_write(cs_req_node(r)->store, ingest_fn, &b, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    atomic_fetch_add(&g_batches, 1);
    for (int k = 0; k < 5; k++)
        atomic_fetch_add(&g_counts[k], b.counts[k]);
    results = json_array();
    for (i = 0; i < b.n; i++) {
        const json_t *ev = b.evs[i].ev;
        json_t *o = json_pack("{s:O?,s:O?,s:s}", "event_id",
                              json_is_object(ev) ? json_object_get(ev, "event_id") : NULL,
                              "version_id",
                              json_is_object(ev) ? json_object_get(ev, "version_id") : NULL,
                              "status", status_names[b.evs[i].status]);
        if (o != NULL && b.evs[i].reason[0])
            json_object_set_new(o, "reason", json_string(b.evs[i].reason));
        json_array_append_new(results, o);
    }
    if (b.counts[ING_REJECTED] > 0)
        cs_log(CS_LOG_WARN, "FED-INGEST-REJECT",
               "source=%s rejected %u of %zu events (see "
               "/federation/deadletters)",
               b.source_node, b.counts[ING_REJECTED], b.n);
    cs_res_json(r, 200,
                json_pack("{s:o,s:{s:s,s:s,s:I}}", "results", results,
                          "checkpoint", "node_id", b.source_node, "epoch",
                          b.stored_cp >= 0 ? b.stored_epoch : b.source_epoch,
                          "seq", (json_int_t)(b.stored_cp >= 0 ? b.stored_cp : 0)));
out:
    for (i = 0; i < b.n; i++)
        free(b.evs[i].payload);
    free(b.evs);
}

void
cs_ingest_metrics(char **buf, size_t *len, size_t *cap)
{
    cs_buf_appendf(buf, len, cap,
                   "# HELP ctxsync_federation_ingested_events_total Ingested "
                   "federation events by result.\n"
                   "# TYPE ctxsync_federation_ingested_events_total counter\n");
    for (int k = 0; k < 5; k++)
        cs_buf_appendf(buf, len, cap,
                       "ctxsync_federation_ingested_events_total{status=\"%s\"}"
                       " %llu\n",
                       status_names[k], atomic_load(&g_counts[k]));
    cs_buf_appendf(buf, len, cap,
                   "# TYPE ctxsync_federation_ingest_batches_total counter\n"
                   "ctxsync_federation_ingest_batches_total %llu\n",
                   atomic_load(&g_batches));
}
