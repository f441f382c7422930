/* SPDX-License-Identifier: MIT
 * fuzz_ingest.c: libFuzzer target for the federation ingest batch parser:
 * POST /federation/ingest's body checks and the per-event precheck of
 * node/ingest.c (shape and types, URI, event_id = origin node_id:seq,
 * RFC 3339 created_at, content_hash form, version_id recomputation,
 * payload decoding (utf8 / base64) and its SHA-256 and size checks).
 *
 * node/ingest.c and node/versions.c are included (precheck() is static);
 * fuzz_node_stubs.h replaces the store, SQLite and the HTTP layer, and the
 * write transaction is not run. The input is the request body (JSON text,
 * as the HTTP layer would pass it after cs_json_parse). Invariants:
 *   - a parsed body gets exactly one answer: 200, 400 or 413 (or 503 when
 *     out of memory), never anything else;
 *   - a 200 answer has one result per event, in order, each with a known
 *     status, and every rejected one has a reason;
 *   - an event that passes the precheck has version_id == the recomputed
 *     one, and a payload it carries hashes to content_hash and has `size`
 *     bytes (checked again here independently of ingest.c).
 * Seeds: tests/fuzz/corpus/ingest (real batches taken from a node). */
#include "../../node/versions.c"
#include "../../node/ingest.c"
#include "../../fork_detect/fork.c"

#include "fuzz_node_stubs.h"

#include <stdint.h>

FZ_WEAK bool
cs_res_ingest_refuses(const cs_node *n, const char *uri, char *reason,
                      size_t rlen)
{
    (void)n;
    if (strstr(uri, "refused") == NULL)
        return false;
    snprintf(reason, rlen, "residency: refused");
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stands in for ingest_fn(): what it decides without the database. */
static cs_err
fake_tx(cs_write_fn fn, void *arg)
{
    ing_batch *b = arg;
    if (fn != ingest_fn)
        abort();
    for (size_t i = 0; i < b->n; i++) {
        b->evs[i].status = b->evs[i].prechecked_bad ? ING_REJECTED : ING_APPLIED;
        if (!b->evs[i].prechecked_bad)
            b->evs[i].reason[0] = '\0';
        b->counts[b->evs[i].status]++;
    }
    b->stored_cp = b->checkpoint;
    snprintf(b->stored_epoch, sizeof(b->stored_epoch), "%.39s", b->source_epoch);
    return CS_OK;
}

static void
check_event(const json_t *ev, const char *status, const char *reason)
{
    char vid[CS_VERSION_ID_LEN + 1];
    cs_version_record rec;
    const json_t *p;

    if (strcmp(status, "rejected") == 0) {
        if (reason == NULL || reason[0] == '\0')
            abort(); /* rejected without a reason */
        return;
    }
    /* accepted by the precheck: the identity must hold */
    if (!json_is_object(ev))
        abort();
    record_from_event(ev, NULL, NULL, &rec);
    if (cs_version_id(rec.uri, rec.version, rec.parent_id, rec.merged_from,
                      rec.content_hash, rec.author_id, rec.created_at,
                      rec.origin_node, vid) != CS_OK)
        return;
    if (strcmp(vid, rec.version_id) != 0)
        abort();
    p = json_object_get(ev, "payload");
    if (json_is_object(p) && !rec.deleted &&
        strcmp(json_string_value(json_object_get(p, "encoding")), "utf8") == 0) {
        const json_t *d = json_object_get(p, "data");
        char h[CS_CONTENT_HASH_LEN + 1];
        cs_content_hash(json_string_value(d), json_string_length(d), h);
        if (strcmp(h, rec.content_hash) != 0 ||
            (int64_t)json_string_length(d) != rec.size)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cs_node node;
    json_t *body = NULL, *results, *events;
    cs_req r;
    size_t i;

    if (size < 1)
        return 0;
    fz_store_hook = fake_tx;
    fz_allow = (data[0] & 1) == 0; /* the first byte: permissions */
    data++;
    size--;
    if (cs_json_parse((const char *)data, size, &body, NULL) != CS_OK)
        return 0;
    fz_req_init(&r, &node, body);
    cs_ingest_handle(&r);
    if (r.answers != 1)
        abort();
    if (r.status != 200 && r.status != 400 && r.status != 413 && r.status != 503)
        abort();
    if (r.status == 200) {
        events = json_object_get(body, "events");
        results = json_object_get(r.resp, "results");
        if (!json_is_array(results) || !json_is_array(events) ||
            json_array_size(results) != json_array_size(events))
            abort();
        for (i = 0; i < json_array_size(results); i++) {
            json_t *res = json_array_get(results, i);
            const char *st = json_string_value(json_object_get(res, "status"));
            if (st == NULL)
                abort();
            check_event(json_array_get(events, i), st,
                        json_string_value(json_object_get(res, "reason")));
        }
        if (!json_is_object(json_object_get(r.resp, "checkpoint")))
            abort();
    }
    fz_req_done(&r);
    json_decref(body);
    return 0;
}
