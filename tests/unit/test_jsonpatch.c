/* SPDX-License-Identifier: MIT
 * test_jsonpatch.c: JSON Patch generation (exact patches for hand cases,
 * randomized round trips) and application (RFC 6902 appendix A, errors). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cs_jsonpatch.h"
#include "cs_test.h"

static json_t *
parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (v == NULL)
        fprintf(stderr, "test bug: cannot parse %s: %s\n", text, err.text);
    return v;
}

/* Shows a value on stderr after a failed check. */
static void
show(const char *what, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    fprintf(stderr, "    %s: %s\n", what, s ? s : "(null)");
    free(s);
}

/* diff(from, to) must be exactly want_patch, and applying it gives to. */
static void
check_diff(const char *from_s, const char *to_s, const char *want_s)
{
    json_t *from = parse(from_s), *to = parse(to_s);
    json_t *want = want_s ? parse(want_s) : NULL;
    json_t *patch = NULL, *res = NULL;
    cs_errbuf eb = {{0}};

    if (!CS_CHECK(from && to))
        goto out;
    if (!CS_CHECK_INT_EQ(cs_jsonpatch_diff(from, to, &patch), CS_OK))
        goto out;
    if (want && !CS_CHECK(json_equal(patch, want))) {
        fprintf(stderr, "    diff(%s, %s)\n", from_s, to_s);
        show("got ", patch);
        show("want", want);
    }
    if (CS_CHECK_INT_EQ(cs_jsonpatch_apply(from, patch, &res, &eb), CS_OK)) {
        if (!CS_CHECK(json_equal(res, to))) {
            show("applied", res);
            show("to", to);
        }
    } else {
        fprintf(stderr, "    apply failed: %s\n", eb.msg);
    }
out:
    json_decref(from);
    json_decref(to);
    json_decref(want);
    json_decref(patch);
    json_decref(res);
}

static void
test_diff_hand(void)
{
    check_diff("{}", "{}", "[]");
    check_diff("[1,2]", "[1,2]", "[]");
    check_diff("{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":3}",
               "[{\"op\":\"remove\",\"path\":\"/b\"},"
               "{\"op\":\"add\",\"path\":\"/c\",\"value\":3}]");
    check_diff("{\"a\":1}", "{\"a\":2}",
               "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
    /* root replace and type changes */
    check_diff("1", "\"x\"", "[{\"op\":\"replace\",\"path\":\"\",\"value\":\"x\"}]");
    check_diff("{\"a\":1}", "[1]", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[1]}]");
    check_diff("null", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]");
    check_diff("{\"a\":[1]}", "{\"a\":{\"0\":1}}",
               "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"0\":1}}]");
    check_diff("{\"a\":1}", "{\"a\":1.0}",
               "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1.0}]");
    check_diff("{\"a\":true}", "{\"a\":false}",
               "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":false}]");
    /* nested objects */
    check_diff("{\"a\":{\"b\":{\"c\":1,\"d\":[1,{\"e\":1}]}}}",
               "{\"a\":{\"b\":{\"c\":1,\"d\":[1,{\"e\":2}]}}}",
               "[{\"op\":\"replace\",\"path\":\"/a/b/d/1/e\",\"value\":2}]");
    check_diff("{\"a\":{\"x\":1}}", "{\"a\":{\"x\":1,\"y\":{\"z\":null}}}",
               "[{\"op\":\"add\",\"path\":\"/a/y\",\"value\":{\"z\":null}}]");
    /* arrays: inserts and removals use the LCS, not index-wise replace */
    check_diff("[1,2,3]", "[1,3]", "[{\"op\":\"remove\",\"path\":\"/1\"}]");
    check_diff("[1,3]", "[1,2,3]", "[{\"op\":\"add\",\"path\":\"/1\",\"value\":2}]");
    check_diff("[1,2,3]", "[0,1,2,3,4]",
               "[{\"op\":\"add\",\"path\":\"/0\",\"value\":0},"
               "{\"op\":\"add\",\"path\":\"/4\",\"value\":4}]");
    check_diff("[1,2,3,4,5]", "[9,1,3,4,8,5]",
               "[{\"op\":\"add\",\"path\":\"/0\",\"value\":9},"
               "{\"op\":\"remove\",\"path\":\"/2\"},"
               "{\"op\":\"add\",\"path\":\"/4\",\"value\":8}]");
    check_diff("[1,2,3]", "[]",
               "[{\"op\":\"remove\",\"path\":\"/0\"},{\"op\":\"remove\",\"path\":\"/0\"},"
               "{\"op\":\"remove\",\"path\":\"/0\"}]");
    check_diff("[]", "[\"a\",\"b\"]",
               "[{\"op\":\"add\",\"path\":\"/0\",\"value\":\"a\"},"
               "{\"op\":\"add\",\"path\":\"/1\",\"value\":\"b\"}]");
    check_diff("[{\"id\":1,\"v\":1},{\"id\":2}]", "[{\"id\":1,\"v\":2},{\"id\":2}]",
               "[{\"op\":\"replace\",\"path\":\"/0/v\",\"value\":2}]");
    check_diff("[[1,2],[3]]", "[[1],[3,4]]",
               "[{\"op\":\"remove\",\"path\":\"/0/1\"},"
               "{\"op\":\"add\",\"path\":\"/1/1\",\"value\":4}]");
    /* keys needing RFC 6901 escapes */
    check_diff("{}", "{\"a/b\":1,\"m~n\":2,\"~1\":3,\"\":4}",
               "[{\"op\":\"add\",\"path\":\"/\",\"value\":4},"
               "{\"op\":\"add\",\"path\":\"/a~1b\",\"value\":1},"
               "{\"op\":\"add\",\"path\":\"/m~0n\",\"value\":2},"
               "{\"op\":\"add\",\"path\":\"/~01\",\"value\":3}]");
    check_diff("{\"a/b\":{\"~\":[0]}}", "{\"a/b\":{\"~\":[1]}}",
               "[{\"op\":\"replace\",\"path\":\"/a~1b/~0/0\",\"value\":1}]");
    /* unicode keys and values */
    check_diff("{\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\":\"\xe2\x82\xac\"}",
               "{\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\":\"\xf0\x9f\x98\x80\"}",
               "[{\"op\":\"replace\",\"path\":\"/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\","
               "\"value\":\"\xf0\x9f\x98\x80\"}]");
    check_diff("\"caf\xc3\xa9\"", "\"cafe\"",
               "[{\"op\":\"replace\",\"path\":\"\",\"value\":\"cafe\"}]");

    /* the generated patch holds copies: changing `to` later changes nothing */
    json_t *from = parse("{}"), *to = parse("{\"a\":{\"b\":1}}"), *patch = NULL;
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(from, to, &patch), CS_OK);
    json_object_set_new(json_object_get(to, "a"), "b", json_integer(2));
    json_t *want = parse("[{\"op\":\"add\",\"path\":\"/a\",\"value\":{\"b\":1}}]");
    CS_CHECK(json_equal(patch, want));
    json_decref(from);
    json_decref(to);
    json_decref(patch);
    json_decref(want);

    json_t *x = json_null();
    patch = NULL;
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(NULL, x, &patch), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(x, NULL, &patch), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(x, x, NULL), CS_EINVAL);
    CS_CHECK(patch == NULL);
}

/* apply(doc, patch) must give want (want_s NULL: must fail with a message
 * containing err_part). doc must be left untouched. */
static void
check_apply(const char *doc_s, const char *patch_s, const char *want_s,
            const char *err_part)
{
    json_t *doc = parse(doc_s), *patch = parse(patch_s);
    json_t *want = want_s ? parse(want_s) : NULL;
    json_t *doc0 = doc ? json_deep_copy(doc) : NULL;
    json_t *res = NULL;
    cs_errbuf eb = {{0}};

    if (!CS_CHECK(doc && patch))
        goto out;
    cs_err rc = cs_jsonpatch_apply(doc, patch, &res, &eb);
    if (want_s) {
        if (!CS_CHECK_INT_EQ(rc, CS_OK))
            fprintf(stderr, "    apply %s to %s: %s\n", patch_s, doc_s, eb.msg);
        else if (!CS_CHECK(json_equal(res, want)))
            show("got", res);
    } else {
        if (!CS_CHECK_INT_EQ(rc, CS_EINVAL))
            fprintf(stderr, "    apply %s to %s should fail\n", patch_s, doc_s);
        CS_CHECK(res == NULL);
        if (!CS_CHECK(strstr(eb.msg, err_part) != NULL))
            fprintf(stderr, "    message \"%s\" lacks \"%s\"\n", eb.msg, err_part);
    }
    CS_CHECK(json_equal(doc, doc0));
out:
    json_decref(doc);
    json_decref(doc0);
    json_decref(patch);
    json_decref(want);
    json_decref(res);
}

static void
test_apply_rfc(void)
{
    /* RFC 6902 appendix A */
    check_apply("{\"foo\":\"bar\"}",
                "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
                "{\"baz\":\"qux\",\"foo\":\"bar\"}", NULL); /* A.1 */
    check_apply("{\"foo\":[\"bar\",\"baz\"]}",
                "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
                "{\"foo\":[\"bar\",\"qux\",\"baz\"]}", NULL); /* A.2 */
    check_apply("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}",
                NULL); /* A.3 */
    check_apply("{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
                "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
                "{\"foo\":[\"bar\",\"baz\"]}", NULL); /* A.4 */
    check_apply("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
                "{\"baz\":\"boo\",\"foo\":\"bar\"}", NULL); /* A.5 */
    check_apply("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},"
                "\"qux\":{\"corge\":\"grault\"}}",
                "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
                "{\"foo\":{\"bar\":\"baz\"},"
                "\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}", NULL); /* A.6 */
    check_apply("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
                "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
                "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}", NULL); /* A.7 */
    check_apply("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
                "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
                "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
                "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}", NULL); /* A.8 */
    check_apply("{\"baz\":\"qux\"}",
                "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", NULL,
                "test failed at \"/baz\""); /* A.9 */
    check_apply("{\"foo\":\"bar\"}",
                "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
                "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}", NULL); /* A.10 */
    check_apply("{\"foo\":\"bar\"}",
                "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]",
                "{\"foo\":\"bar\",\"baz\":\"qux\"}", NULL); /* A.11 */
    check_apply("{\"foo\":\"bar\"}",
                "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", NULL,
                "no member \"baz\""); /* A.12 */
    check_apply("{\"foo\":\"bar\"}",
                "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":\"remove\"}]",
                NULL, "op 0"); /* A.13 (duplicate "op": invalid either way) */
    check_apply("{\"/\":9,\"~1\":10}",
                "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
                "{\"/\":9,\"~1\":10}", NULL); /* A.14 */
    check_apply("{\"/\":9,\"~1\":10}",
                "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL,
                "test failed"); /* A.15 */
    check_apply("{\"foo\":[\"bar\"]}",
                "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
                "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}", NULL); /* A.16 */
}

static void
test_apply_more(void)
{
    /* RFC 6902 section 4 details */
    check_apply("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":[1]}]", "[1]",
                NULL);
    check_apply("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":2}]", "2",
                NULL);
    check_apply("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":2}]",
                "{\"a\":2}", NULL); /* add replaces an existing member */
    check_apply("[1,2]", "[{\"op\":\"add\",\"path\":\"/2\",\"value\":3}]", "[1,2,3]",
                NULL);
    check_apply("[1,2]", "[{\"op\":\"add\",\"path\":\"/-\",\"value\":3}]", "[1,2,3]",
                NULL);
    check_apply("{\"a\":{\"b\":[1,2]}}",
                "[{\"op\":\"copy\",\"from\":\"/a/b\",\"path\":\"/c\"},"
                "{\"op\":\"add\",\"path\":\"/c/-\",\"value\":3}]",
                "{\"a\":{\"b\":[1,2]},\"c\":[1,2,3]}", NULL);
    check_apply("{\"a\":{\"b\":1}}",
                "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
                "{\"a\":{\"b\":1}}", NULL);
    check_apply("{\"a\":{\"b\":1}}",
                "[{\"op\":\"move\",\"from\":\"/a/b\",\"path\":\"\"}]", "1", NULL);
    check_apply("[1,2,3]",
                "[{\"op\":\"move\",\"from\":\"/0\",\"path\":\"/-\"}]", "[2,3,1]",
                NULL);
    check_apply("{\"x\":1}", "[{\"op\":\"test\",\"path\":\"/x\",\"value\":1.0}]",
                "{\"x\":1}", NULL); /* numbers compare by value */
    check_apply("{\"x\":[1,{\"y\":2.5}]}",
                "[{\"op\":\"test\",\"path\":\"\",\"value\":{\"x\":[1.0,{\"y\":2.5}]}}]",
                "{\"x\":[1,{\"y\":2.5}]}", NULL);
    check_apply("{\"x\":null}", "[{\"op\":\"test\",\"path\":\"/x\",\"value\":null}]",
                "{\"x\":null}", NULL);
    check_apply("{\"\":1}", "[{\"op\":\"remove\",\"path\":\"/\"}]", "{}", NULL);
    check_apply("{\"a\":1}", "[]", "{\"a\":1}", NULL);
    /* the inserted value is a copy: later ops do not reach into the patch */
    check_apply("{}",
                "[{\"op\":\"add\",\"path\":\"/a\",\"value\":{}},"
                "{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1},"
                "{\"op\":\"add\",\"path\":\"/c\",\"value\":{}}]",
                "{\"a\":{\"b\":1},\"c\":{}}", NULL);

    /* errors */
    check_apply("{}", "{}", NULL, "must be an array");
    check_apply("{}", "[1]", NULL, "op 0: not an object");
    check_apply("{}", "[{\"path\":\"/a\"}]", NULL, "missing or non-string \"op\"");
    check_apply("{}", "[{\"op\":\"add\",\"value\":1}]", NULL,
                "missing or non-string \"path\"");
    check_apply("{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", NULL, "missing \"value\"");
    check_apply("{}", "[{\"op\":\"frob\",\"path\":\"/a\"}]", NULL,
                "unknown operation");
    check_apply("{}", "[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]", NULL,
                "must be empty or start with '/'");
    check_apply("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", NULL,
                "no member at \"/b\"");
    check_apply("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":1}]",
                NULL, "no member at \"/b\"");
    check_apply("{}", "[{\"op\":\"remove\",\"path\":\"\"}]", NULL,
                "cannot remove the whole document");
    check_apply("[1,2]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":1}]", NULL,
                "out of range");
    check_apply("[1,2]", "[{\"op\":\"remove\",\"path\":\"/2\"}]", NULL,
                "out of range");
    check_apply("[1,2]", "[{\"op\":\"replace\",\"path\":\"/-\",\"value\":0}]", NULL,
                "\"-\"");
    check_apply("[1,2]", "[{\"op\":\"remove\",\"path\":\"/01\"}]", NULL,
                "invalid array index \"01\"");
    check_apply("[1,2]", "[{\"op\":\"remove\",\"path\":\"/-1\"}]", NULL,
                "invalid array index");
    check_apply("[1,2]", "[{\"op\":\"remove\",\"path\":\"/1e0\"}]", NULL,
                "invalid array index");
    check_apply("[1,2]", "[{\"op\":\"remove\",\"path\":\"/\"}]", NULL,
                "invalid array index \"\"");
    check_apply("[1,2]",
                "[{\"op\":\"remove\",\"path\":\"/99999999999999999999999999\"}]",
                NULL, "out of range");
    check_apply("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a~2\",\"value\":1}]",
                NULL, "invalid escape");
    check_apply("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a~\",\"value\":1}]", NULL,
                "invalid escape");
    check_apply("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]", NULL,
                "not a container");
    check_apply("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b/c\",\"value\":1}]",
                NULL, "through a scalar");
    check_apply("{\"a\":{\"b\":1}}",
                "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b\"}]", NULL,
                "into its own child");
    check_apply("{\"a\":{\"b\":1}}",
                "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/x\"}]", NULL,
                "into its own child");
    check_apply("{\"a\":1}", "[{\"op\":\"move\",\"path\":\"/b\"}]", NULL,
                "\"from\"");
    check_apply("{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"/x\",\"path\":\"/b\"}]",
                NULL, "no member");
    check_apply("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":true}]",
                NULL, "test failed");
    check_apply("{\"a\":[1,2]}",
                "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[1,2,3]}]", NULL,
                "test failed");
    check_apply("{\"a\":{\"x\":1}}",
                "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"x\":1,\"y\":2}}]",
                NULL, "test failed");
    /* a failure after successful ops returns nothing and names the op */
    check_apply("{\"a\":1}",
                "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},"
                "{\"op\":\"remove\",\"path\":\"/zz\"}]",
                NULL, "op 1 (remove)");

    json_t *out = NULL, *x = json_null(), *arr = json_array();
    CS_CHECK_INT_EQ(cs_jsonpatch_apply(NULL, arr, &out, NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_jsonpatch_apply(x, NULL, &out, NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(cs_jsonpatch_apply(x, arr, NULL, NULL), CS_EINVAL);
    CS_CHECK(out == NULL);
    json_decref(arr);
}

/* ---- randomized round trips */

static unsigned
rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static const char *const keys[] = {"a", "b", "c", "a/b", "m~n", "~1", "",
                                   "\xc3\xa9", "/", "~", "0"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static json_t *
random_scalar(unsigned *seed)
{
    switch (rnd(seed) % 7) {
    case 0: return json_null();
    case 1: return json_true();
    case 2: return json_false();
    case 3: return json_integer((json_int_t)(rnd(seed) % 5));
    case 4: return json_real((double)(rnd(seed) % 3) + 0.5);
    case 5: return json_string(keys[rnd(seed) % NKEYS]);
    default: return json_string("x");
    }
}

static json_t *
random_value(unsigned *seed, int depth)
{
    unsigned r = rnd(seed) % 10;
    if (depth <= 0 || r < 4)
        return random_scalar(seed);
    if (r < 7) {
        json_t *o = json_object();
        unsigned n = rnd(seed) % 5;
        for (unsigned i = 0; i < n; i++)
            json_object_set_new(o, keys[rnd(seed) % NKEYS],
                                random_value(seed, depth - 1));
        return o;
    }
    json_t *a = json_array();
    unsigned n = rnd(seed) % 6;
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(a, random_value(seed, depth - 1));
    return a;
}

/* Random edits in place: returns the (possibly replaced) value. */
static json_t *
mutate(json_t *v, unsigned *seed, int depth)
{
    unsigned r = rnd(seed) % 12;
    if (r == 0) {
        json_decref(v);
        return random_value(seed, depth);
    }
    if (json_is_object(v)) {
        const char *k = keys[rnd(seed) % NKEYS];
        if (r < 3)
            json_object_del(v, k);
        else if (r < 5)
            json_object_set_new(v, k, random_value(seed, depth - 1));
        const char *key;
        json_t *val;
        void *tmp;
        json_object_foreach_safe(v, tmp, key, val) {
            if (rnd(seed) % 2)
                json_object_set_new(v, key, mutate(json_incref(val), seed,
                                                   depth - 1));
        }
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (r < 3 && n > 0)
            json_array_remove(v, rnd(seed) % n);
        else if (r < 5)
            json_array_insert_new(v, rnd(seed) % (n + 1),
                                  random_value(seed, depth - 1));
        else if (r < 6 && n > 1) { /* swap two */
            size_t i = rnd(seed) % n, j = rnd(seed) % n;
            json_t *x = json_incref(json_array_get(v, i));
            json_array_set(v, i, json_array_get(v, j));
            json_array_set_new(v, j, x);
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (rnd(seed) % 3 == 0)
                json_array_set_new(v, i, mutate(json_incref(json_array_get(v, i)),
                                                seed, depth - 1));
        }
    } else if (r < 4) {
        json_decref(v);
        return random_scalar(seed);
    }
    return v;
}

static void
test_random_roundtrip(void)
{
    unsigned seed = 4242;
    int bad = 0, cases = 0, nonempty = 0, self_nonempty = 0;

    for (int k = 0; k < 1500; k++) {
        json_t *from = random_value(&seed, 4);
        json_t *to = k % 3 == 0 ? random_value(&seed, 4)
                                : mutate(json_deep_copy(from), &seed, 4);
        json_t *from0 = json_deep_copy(from);
        json_t *patch = NULL, *res = NULL, *self = NULL;
        cs_errbuf eb = {{0}};

        cases++;
        if (cs_jsonpatch_diff(from, to, &patch) != CS_OK ||
            cs_jsonpatch_apply(from, patch, &res, &eb) != CS_OK ||
            !json_equal(res, to) || !json_equal(from, from0)) {
            if (bad++ < 5) {
                show("from", from);
                show("to", to);
                show("patch", patch);
                show("result", res);
                fprintf(stderr, "    %s\n", eb.msg);
            }
        }
        nonempty += json_array_size(patch) > 0;
        /* a document diffed against itself gives [] */
        if (cs_jsonpatch_diff(to, to, &self) != CS_OK ||
            json_array_size(self) != 0)
            self_nonempty++;
        json_decref(from);
        json_decref(from0);
        json_decref(to);
        json_decref(patch);
        json_decref(res);
        json_decref(self);
    }
    CS_CHECK_INT_EQ(bad, 0);
    CS_CHECK_INT_EQ(self_nonempty, 0);
    CS_CHECK(cases >= 500);
    CS_CHECK(nonempty > cases / 2);
    printf("random json round trips: %d (%d non-empty patches)\n", cases, nonempty);
}

/* Large arrays: LCS keeps a one-element insertion to one op; beyond the
 * LCS budget the fallback stays correct. */
static void
test_big_arrays(void)
{
    json_t *a = json_array(), *b = json_array();
    json_t *patch = NULL, *res = NULL;

    for (int i = 0; i < 1000; i++) {
        json_array_append_new(a, json_integer(i));
        json_array_append_new(b, json_integer(i == 500 ? -1 : i));
        if (i % 2 == 0)
            json_array_append_new(b, json_integer(100000 + i));
    }
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(a, b, &patch), CS_OK);
    CS_CHECK_INT_EQ(json_array_size(patch), 501); /* 500 adds + 1 replace */
    CS_CHECK_INT_EQ(cs_jsonpatch_apply(a, patch, &res, NULL), CS_OK);
    CS_CHECK(json_equal(res, b));
    json_decref(patch);
    json_decref(res);
    json_decref(a);
    json_decref(b);

    /* 5000 x 5000 middle: above CS_JSONPATCH_LCS_CELLS, index-wise */
    a = json_array();
    b = json_array();
    for (int i = 0; i < 5000; i++) {
        json_array_append_new(a, json_integer(i));
        json_array_append_new(b, json_integer(i + 1));
    }
    json_array_append_new(a, json_string("end"));
    json_array_insert_new(b, 0, json_string("start"));
    patch = res = NULL;
    CS_CHECK_INT_EQ(cs_jsonpatch_diff(a, b, &patch), CS_OK);
    CS_CHECK_INT_EQ(cs_jsonpatch_apply(a, patch, &res, NULL), CS_OK);
    CS_CHECK(json_equal(res, b));
    json_decref(patch);
    json_decref(res);
    json_decref(a);
    json_decref(b);
}

int
main(void)
{
    test_diff_hand();
    test_apply_rfc();
    test_apply_more();
    test_random_roundtrip();
    test_big_arrays();
    return cs_test_summary();
}
