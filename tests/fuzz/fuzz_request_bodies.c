/* SPDX-License-Identifier: MIT
 * fuzz_request_bodies.c: libFuzzer target for the node's JSON request body
 * handling: the strict parser every body goes through (cs_json_parse:
 * UTF-8, NUL, nesting), the canonical encoding, and the body validation
 * and content rules of node/versions.c that the artifact and suggestion
 * endpoints use (cs_req_body_str, cs_req_body_base, cs_content_type_check,
 * cs_content_encode), plus the URI / pattern checks applied to body fields
 * of the other endpoints (actors, grants, subscriptions, permissions,
 * forks). The ingest body has its own target (fuzz_ingest.c).
 *
 * Choice (issue 8): the route handlers themselves need a database, so this
 * target links the validation code in-process (node/versions.c included,
 * store and HTTP replaced by tests/fuzz/fuzz_node_stubs.h); the full HTTP
 * surface of every endpoint is exercised against a real node by
 * tests/fault/test_body_fuzz.py (mutated bodies, no 5xx, node stays up).
 *
 * Input: byte 0 selects the endpoint shape, the rest is the body.
 * Invariants:
 *   - parse OK implies the text is valid UTF-8 without NUL;
 *   - canonical(parse(canonical(v))) == canonical(v) (idempotent);
 *   - every helper that refuses answers exactly one 400 with a message,
 *     every helper that accepts answers nothing;
 *   - cs_content_encode: hash == SHA-256(bytes); JSON bytes are canonical;
 *     text bytes are the string's bytes, valid UTF-8, no NUL.
 * Seeds: tests/fuzz/corpus/request_bodies. */
#include "../../node/versions.c"
#include "../../fork_detect/fork.c"

#include "fuzz_node_stubs.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void
check_canonical(const json_t *v)
{
    size_t n1 = 0, n2 = 0;
    char *c1 = cs_json_canonical(v, &n1), *c2;
    json_t *v2 = NULL;
    if (c1 == NULL)
        return; /* out of memory */
    CHECK(cs_utf8_valid(c1, n1));
    CHECK(cs_json_parse(c1, n1, &v2, NULL) == CS_OK);
    c2 = cs_json_canonical(v2, &n2);
    CHECK(c2 != NULL && n1 == n2 && memcmp(c1, c2, n1) == 0);
    free(c1);
    free(c2);
    json_decref(v2);
}

/* One body string field through the real helper; returns it or NULL. */
static const char *
field(cs_req *r, const json_t *body, const char *key, bool req, size_t max)
{
    const char *out = NULL;
    int before = r->answers;
    bool ok = cs_req_body_str(r, body, key, req, max, &out);
    CHECK(ok ? r->answers == before : r->answers == before + 1);
    if (!ok) {
        CHECK(r->status == 400);
        return NULL;
    }
    if (out != NULL)
        CHECK(strlen(out) <= max);
    return out;
}

static void
check_content(cs_req *r, const json_t *body)
{
    const char *ct = field(r, body, "content_type", false, CS_CONTENT_TYPE_MAX);
    const json_t *content = json_object_get(body, "content");
    cs_content c;
    cs_errbuf eb = {{0}};
    char h[CS_CONTENT_HASH_LEN + 1];
    int64_t base;
    int before = r->answers;

    if (ct != NULL && cs_content_type_check(ct, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
        return;
    }
    CHECK(cs_req_body_base(r, body, &base) ? r->answers == before
                                             : r->answers == before + 1);
    memset(&c, 0, sizeof(c));
    eb.msg[0] = '\0';
    if (cs_content_encode(content, ct, &c, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
        return;
    }
    CHECK(c.bytes != NULL && c.bytes[c.len] == '\0');
    cs_content_hash(c.bytes, c.len, h);
    CHECK(strcmp(h, c.hash) == 0);
    CHECK(cs_utf8_valid(c.bytes, c.len));
    if (c.json) {
        json_t *back = NULL;
        size_t n = 0;
        char *again;
        CHECK(cs_json_parse(c.bytes, c.len, &back, NULL) == CS_OK);
        again = cs_json_canonical(back, &n);
        CHECK(again != NULL && n == c.len && memcmp(again, c.bytes, n) == 0);
        free(again);
        json_decref(back);
    } else {
        CHECK(json_is_string(content));
        CHECK(c.len == json_string_length(content));
        CHECK(memcmp(c.bytes, json_string_value(content), c.len) == 0);
        CHECK(memchr(c.bytes, '\0', c.len) == NULL);
    }
    cs_content_free(&c);
}

static void
check_uri_field(cs_req *r, const json_t *body, const char *key, bool pattern)
{
    const char *s = field(r, body, key, false, 4096);
    cs_errbuf eb = {{0}};
    if (s == NULL)
        return;
    if (pattern) {
        if (cs_pattern_validate(s, &eb) != CS_OK)
            CHECK(eb.msg[0] != '\0');
    } else if (cs_uri_parse(s, NULL, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
    } else {
        CHECK(cs_pattern_match("**", s));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cs_node node;
    json_t *body = NULL;
    cs_errbuf eb = {{0}};
    cs_req r;
    unsigned sel;

    if (size < 1)
        return 0;
    sel = data[0];
    data++;
    size--;
    if (cs_json_parse((const char *)data, size, &body, &eb) != CS_OK) {
        CHECK(eb.msg[0] != '\0');
        return 0;
    }
    CHECK(body != NULL);
    CHECK(cs_utf8_valid((const char *)data, size));
    CHECK(memchr(data, '\0', size) == NULL);
    check_canonical(body);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    fz_req_init(&r, &node, body);
    switch (sel % 6) {
    case 0: /* POST /artifacts, POST /suggestions */
        check_uri_field(&r, body, "uri", false);
        field(&r, body, "name", false, CS_NAME_MAX);
        field(&r, body, "summary", false, CS_SUMMARY_MAX);
        check_content(&r, body);
        break;
    case 1: /* PUT /artifacts, POST /forks/{id}/resolve */
        field(&r, body, "summary", false, CS_SUMMARY_MAX);
        field(&r, body, "keep", false, 200);
        check_content(&r, body);
        break;
    case 2: /* POST /actors, /actors/{id}/tokens */
        field(&r, body, "actor_id", true, 128);
        field(&r, body, "actor_type", false, 7);
        field(&r, body, "name", false, CS_NAME_MAX);
        field(&r, body, "agent_class", false, 64);
        field(&r, body, "region", false, 64);
        break;
    case 3: /* POST /grants, /permissions/check */
        check_uri_field(&r, body, "pattern", true);
        check_uri_field(&r, body, "uri", false);
        field(&r, body, "actor_id", false, 128);
        field(&r, body, "op", false, 32);
        break;
    case 4: /* POST /subscriptions */
        check_uri_field(&r, body, "pattern", true);
        field(&r, body, "name", false, CS_NAME_MAX);
        break;
    default: { /* any member as a string field, generic */
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v)
        {
            (void)v;
            field(&r, body, k, false, 64);
        }
        break;
    }
    }
    fz_req_done(&r);
    json_decref(body);
    return 0;
}
