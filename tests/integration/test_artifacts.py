"""Artifacts: create / get / put / delete / history / diff / list, content
hashing and blob storage (node-api.md §3 "Artifacts")."""

import copy
import hashlib
import os
import re
import subprocess
import tempfile
import threading

from harness import (Shared, content_hash, expect_error, expect_ok, run_tests,
                     sqlite_only, stored_bytes, test, unique)

N = Shared(node_id="art1", region="eu")
VID = re.compile(r"^v:[0-9a-f]{64}$")
HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def uri(org=None, domain="docs", id=None):
    return "ctx://%s/%s/%s" % (org or unique("o"), domain, id or unique("a"))


def create(n, u, content, **extra):
    body = {"uri": u, "content": content}
    body.update(extra)
    return expect_ok(n.req("POST", "/artifacts", body), 201)


def put(n, u, content, **extra):
    body = {"content": content}
    body.update(extra)
    return expect_ok(n.req("PUT", "/artifacts", body, query={"uri": u}))


def get(n, u, **q):
    q["uri"] = u
    return n.req("GET", "/artifacts", query=q)


@test
def create_returns_version_1_with_identity_and_hash():
    n = N()
    u = uri(org="acme")
    a = create(n, u, "hello\nworld\n", name="Hello", summary="first")
    assert a["uri"] == u and a["org"] == "acme" and a["domain"] == "docs", a
    assert a["version"] == 1, a
    assert a["content"] == "hello\nworld\n", a
    assert a["content_hash"] == content_hash("hello\nworld\n"), a
    assert a["size"] == len(b"hello\nworld\n"), a
    assert a["content_type"] == "text/plain; charset=utf-8", a
    assert VID.match(a["version_id"]), a["version_id"]
    assert a["parent_id"] is None, a
    assert a["author_id"] == n.admin_id, a
    assert a["name"] == "Hello" and a["summary"] == "first", a
    assert a.get("deleted_at") is None, a
    assert a["created_at"] and a["updated_at"], a
    g = expect_ok(get(n, u))
    for k in ("uri", "version", "content", "content_hash", "size", "version_id",
              "parent_id", "author_id", "content_type", "name", "summary"):
        assert g[k] == a[k], (k, g[k], a[k])


@test
def json_content_stored_compact_sorted():
    n = N()
    for content in ({"b": 1, "a": [1, 2, {"z": None, "y": True}], "é": "ü"},
                    [3, 1, 2], 42, True, {"nested": {"k": "Grüße 😀"}}):
        u = uri()
        a = create(n, u, content)
        assert a["content_hash"] == content_hash(content), (content, a)
        assert a["size"] == len(stored_bytes(content)), (content, a)
        assert a["content_type"] == "application/json", a
        g = expect_ok(get(n, u))
        assert g["content"] == content, (g["content"], content)
        assert g["content_hash"] == content_hash(content)


@test
def explicit_content_type_kept():
    n = N()
    u = uri()
    a = create(n, u, "# Title\n", content_type="text/markdown")
    assert a["content_type"] == "text/markdown", a


@test
def version_chain_parent_ids():
    n = N()
    u = uri()
    a1 = create(n, u, "v1")
    a2 = put(n, u, "v2", summary="second")
    a3 = put(n, u, {"v": 3})
    assert [a1["version"], a2["version"], a3["version"]] == [1, 2, 3]
    assert a1["parent_id"] is None
    assert a2["parent_id"] == a1["version_id"], (a2, a1)
    assert a3["parent_id"] == a2["version_id"], (a3, a2)
    ids = {a1["version_id"], a2["version_id"], a3["version_id"]}
    assert len(ids) == 3 and all(VID.match(i) for i in ids), ids
    assert a2["summary"] == "second"
    assert a3["content_hash"] == content_hash({"v": 3})


@test
def duplicate_create_conflicts_also_after_delete():
    n = N()
    u = uri()
    create(n, u, "x")
    expect_error(n.req("POST", "/artifacts", {"uri": u, "content": "y"}),
                 409, "conflict")
    expect_ok(n.req("DELETE", "/artifacts", query={"uri": u}))
    expect_error(n.req("POST", "/artifacts", {"uri": u, "content": "z"}),
                 409, "conflict")
    # the failed creates wrote nothing
    h = expect_ok(n.req("GET", "/artifacts/history", query={"uri": u}))
    assert [v["version"] for v in h["versions"]] == [2, 1], h


@test
def get_by_version_and_version_id():
    n = N()
    u = uri()
    a1 = create(n, u, "one")
    a2 = put(n, u, "two")
    g = expect_ok(get(n, u))
    assert g["version"] == 2 and g["content"] == "two"
    g1 = expect_ok(get(n, u, version=1))
    assert g1["version"] == 1 and g1["content"] == "one", g1
    assert g1["version_id"] == a1["version_id"]
    g2 = expect_ok(get(n, u, version_id=a1["version_id"]))
    assert g2["version"] == 1 and g2["content"] == "one", g2
    g3 = expect_ok(get(n, u, version_id=a2["version_id"]))
    assert g3["content"] == "two"
    expect_error(get(n, u, version=3), 404, "not_found")
    expect_error(get(n, u, version_id="v:" + "0" * 64), 404, "not_found")
    b = expect_error(get(n, uri()), 404, "not_found")
    assert not b.get("deleted"), b


@test
def put_with_base_version():
    n = N()
    u = uri()
    create(n, u, "a")
    a2 = put(n, u, "b", base_version=1)
    assert a2["version"] == 2
    b = expect_error(n.req("PUT", "/artifacts", {"content": "c", "base_version": 1},
                           query={"uri": u}), 409, "version_conflict")
    g = expect_ok(get(n, u))
    assert g["version"] == 2 and g["content"] == "b", g
    a3 = put(n, u, "c")  # no base: last writer wins
    assert a3["version"] == 3 and a3["parent_id"] == a2["version_id"]
    assert b["request_id"]


@test
def put_on_missing_is_404():
    n = N()
    expect_error(n.req("PUT", "/artifacts", {"content": "x"},
                       query={"uri": uri()}), 404, "not_found")


@test
def delete_tombstone_and_history():
    n = N()
    u = uri()
    a1 = create(n, u, "one")
    a2 = put(n, u, "two")
    t = expect_ok(n.req("DELETE", "/artifacts", query={"uri": u}))
    assert t["version"] == 3, t
    assert t["deleted"] is True, t
    assert t["parent_id"] == a2["version_id"], t
    assert VID.match(t["version_id"]), t
    b = expect_error(get(n, u), 404, "not_found")
    assert b.get("deleted") is True, b
    h = expect_ok(n.req("GET", "/artifacts/history", query={"uri": u}))
    assert h["uri"] == u
    vs = h["versions"]
    assert [v["version"] for v in vs] == [3, 2, 1], vs
    assert [v["deleted"] for v in vs] == [True, False, False], vs
    assert vs[2]["version_id"] == a1["version_id"]
    assert vs[1]["version_id"] == a2["version_id"]
    assert vs[0]["version_id"] == t["version_id"]
    assert vs[1]["parent_id"] == a1["version_id"]
    assert vs[2]["parent_id"] is None
    assert vs[1]["content_hash"] == content_hash("two")
    for v in vs:
        for k in ("version_id", "parent_id", "author_id", "created_at", "deleted",
                  "content_hash", "size", "summary", "on_head_path"):
            assert k in v, (k, v)
        assert v["on_head_path"] is True, v
    expect_error(n.req("DELETE", "/artifacts", query={"uri": u}), 404, "not_found")
    expect_error(n.req("DELETE", "/artifacts", query={"uri": uri()}), 404,
                 "not_found")
    expect_error(n.req("PUT", "/artifacts", {"content": "x"}, query={"uri": u}),
                 404, "not_found")


def apply_lines(ops, side):
    return [o["line"] for o in ops if o["op"] in (" ", side)]


@test
def diff_lines_default():
    n = N()
    u = uri()
    create(n, u, "a\nb\nc\n")
    put(n, u, "a\nB\nc\nd\n")
    d = expect_ok(n.req("GET", "/artifacts/diff", query={"uri": u, "from": 1, "to": 2}))
    assert d["from"] == 1 and d["to"] == 2, d
    ops = d["ops"]
    assert all(o["op"] in (" ", "+", "-") for o in ops), ops
    assert apply_lines(ops, "-") == ["a", "b", "c"], ops
    assert apply_lines(ops, "+") == ["a", "B", "c", "d"], ops
    assert d["stats"] == {"added": 2, "removed": 1, "unchanged": 2}, d["stats"]
    d2 = expect_ok(n.req("GET", "/artifacts/diff",
                         query={"uri": u, "from": 1, "to": 2, "format": "lines"}))
    assert d2["stats"] == d["stats"]
    # reverse direction
    d3 = expect_ok(n.req("GET", "/artifacts/diff", query={"uri": u, "from": 2, "to": 1}))
    assert d3["stats"] == {"added": 1, "removed": 2, "unchanged": 2}, d3
    expect_error(n.req("GET", "/artifacts/diff", query={"uri": u, "from": 1, "to": 9}),
                 404, "not_found")


def patch_applies(old, new, diff_text):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "file")
        out = os.path.join(d, "out")
        pf = os.path.join(d, "diff")
        with open(src, "wb") as f:
            f.write(old.encode())
        with open(pf, "wb") as f:
            f.write(diff_text.encode())
        r = subprocess.run(["patch", "-s", "-f", "-o", out, src, pf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        assert r.returncode == 0, "patch failed: %s\n--- diff ---\n%s" % (
            r.stdout.decode(), diff_text)
        with open(out, "rb") as f:
            got = f.read().decode()
        assert got == new, (got, new, diff_text)


@test
def diff_unified_applies_with_gnu_patch():
    n = N()
    cases = [
        ("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", "a\nB\nc\nd\ne\nf\ng\nh\nI\nj\nk\n"),
        ("x\ny", "x\nz\n"),           # old has no final newline
        ("x\ny\n", "x\ny"),           # new has no final newline
        ("", "first\nsecond\n"),      # from empty
        ("one\n" * 50, "one\n" * 20 + "two\n" + "one\n" * 30),
    ]
    for old, new in cases:
        u = uri()
        create(n, u, old)
        put(n, u, new)
        st, h, body = n.req("GET", "/artifacts/diff",
                            query={"uri": u, "from": 1, "to": 2, "format": "unified"})
        assert st == 200, (st, body)
        assert h.get("content-type", "").startswith("text/plain"), h
        assert isinstance(body, str) and "@@" in body, body
        if not old.endswith("\n") and old or not new.endswith("\n"):
            assert "\\ No newline at end of file" in body, body
        patch_applies(old, new, body)


# -- RFC 6902 apply -----------------------------------------------------------

def _ptr(path):
    if path == "":
        return []
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, toks):
    cur = doc
    for t in toks[:-1]:
        cur = cur[int(t)] if isinstance(cur, list) else cur[t]
    return cur


def _get(doc, path):
    cur = doc
    for t in _ptr(path):
        cur = cur[int(t)] if isinstance(cur, list) else cur[t]
    return cur


def _remove(doc, path):
    toks = _ptr(path)
    p = _parent(doc, toks)
    if isinstance(p, list):
        return p.pop(int(toks[-1]))
    return p.pop(toks[-1])


def _add(doc, path, value):
    toks = _ptr(path)
    if not toks:
        return value
    p = _parent(doc, toks)
    if isinstance(p, list):
        if toks[-1] == "-":
            p.append(value)
        else:
            i = int(toks[-1])
            assert 0 <= i <= len(p), (path, len(p))
            p.insert(i, value)
    else:
        p[toks[-1]] = value
    return doc


def json_patch_apply(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            assert path != ""
            _remove(doc, path)
        elif kind == "replace":
            if path == "":
                doc = copy.deepcopy(op["value"])
            else:
                _get(doc, path)  # must exist
                toks = _ptr(path)
                p = _parent(doc, toks)
                if isinstance(p, list):
                    p[int(toks[-1])] = copy.deepcopy(op["value"])
                else:
                    p[toks[-1]] = copy.deepcopy(op["value"])
        elif kind == "move":
            v = _remove(doc, op["from"])
            doc = _add(doc, path, v)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            assert _get(doc, path) == op["value"], ("test op failed", op)
        else:
            raise AssertionError("unknown op %r" % op)
    return doc


@test
def diff_json_patch_applies():
    n = N()
    cases = [
        ({"a": 1, "b": [1, 2, 3], "c": {"d": "x"}, "k/~": 1},
         {"a": 2, "b": [1, 3], "c": {"e": "y"}, "f": None, "k/~": 2}),
        ([1, 2, 3, 4], [0, 1, 3, 4, 5]),
        ({"x": [{"id": 1}, {"id": 2}]}, {"x": [{"id": 2, "n": "é"}]}),
        ({"a": 1}, [1, 2]),
        (5, {"a": 5}),
    ]
    for old, new in cases:
        u = uri()
        create(n, u, old)
        put(n, u, new)
        d = expect_ok(n.req("GET", "/artifacts/diff",
                            query={"uri": u, "from": 1, "to": 2, "format": "json-patch"}))
        assert d["from"] == 1 and d["to"] == 2, d
        assert isinstance(d["patch"], list), d
        got = json_patch_apply(old, d["patch"])
        assert got == new, (old, new, d["patch"], got)
    # same content: empty patch
    u = uri()
    create(n, u, {"a": 1})
    put(n, u, {"a": 1})
    d = expect_ok(n.req("GET", "/artifacts/diff",
                        query={"uri": u, "from": 1, "to": 2, "format": "json-patch"}))
    assert json_patch_apply({"a": 1}, d["patch"]) == {"a": 1}


@test
def diff_json_patch_on_text_is_not_json():
    n = N()
    u = uri()
    create(n, u, "hello world")
    put(n, u, "hello there")
    expect_error(n.req("GET", "/artifacts/diff",
                       query={"uri": u, "from": 1, "to": 2, "format": "json-patch"}),
                 400, "not_json")
    u2 = uri()
    create(n, u2, {"a": 1})
    put(n, u2, "not { json")
    expect_error(n.req("GET", "/artifacts/diff",
                       query={"uri": u2, "from": 1, "to": 2, "format": "json-patch"}),
                 400, "not_json")


def _create_many(n, uris, threads=4):
    errs = []

    def work(part):
        for u in part:
            st, _, b = n.req("POST", "/artifacts", {"uri": u, "content": u})
            if st != 201:
                errs.append((u, st, b))
    ts = [threading.Thread(target=work, args=(uris[i::threads],))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs[:3]


def list_all(n, limit, **q):
    seen = []
    cursor = None
    pages = 0
    while True:
        qq = dict(q, limit=limit)
        if cursor:
            qq["cursor"] = cursor
        b = expect_ok(n.req("GET", "/artifacts/list", query=qq))
        assert len(b["artifacts"]) <= limit, (limit, len(b["artifacts"]))
        seen.extend(b["artifacts"])
        pages += 1
        assert pages < 1000
        cursor = b.get("next_cursor")
        if not cursor:
            return seen, pages


@test
def list_filters_and_cursor_paging():
    n = N()
    org = unique("L")
    other = unique("M")
    uris = ["ctx://%s/d1/a%02d" % (org, i) for i in range(12)]
    uris += ["ctx://%s/d1/b/x%02d" % (org, i) for i in range(5)]
    uris += ["ctx://%s/d2/a%02d" % (org, i) for i in range(6)]
    uris += ["ctx://%s/d1/a%02d" % (other, i) for i in range(3)]
    _create_many(n, uris)
    put(n, "ctx://%s/d1/a03" % org, "again")
    gone = "ctx://%s/d1/a05" % org
    expect_ok(n.req("DELETE", "/artifacts", query={"uri": gone}))

    mine = sorted(u for u in uris if u.startswith("ctx://%s/" % org) and u != gone)
    seen, pages = list_all(n, 7, org=org)
    got = [a["uri"] for a in seen]
    assert got == mine, (got, mine)
    assert pages == (len(mine) + 6) // 7 or pages == (len(mine) + 6) // 7 + 1, pages
    for a in seen:
        assert a["org"] == org and a["domain"] in ("d1", "d2"), a
        for k in ("name", "head_version", "created_at", "updated_at"):
            assert k in a, (k, a)
        want = 2 if a["uri"].endswith("/d1/a03") else 1
        assert a["head_version"] == want, a

    seen, _ = list_all(n, 4, org=org, domain="d2")
    assert [a["uri"] for a in seen] == sorted(u for u in mine if "/d2/" in u), seen
    seen, _ = list_all(n, 100, org=org, domain="d1",
                       prefix="ctx://%s/d1/b/" % org)
    assert [a["uri"] for a in seen] == sorted(u for u in mine if "/d1/b/" in u), seen
    seen, _ = list_all(n, 3, prefix="ctx://%s/d1/a0" % org)
    assert [a["uri"] for a in seen] == [u for u in mine
                                        if u.startswith("ctx://%s/d1/a0" % org)], seen
    b = expect_ok(n.req("GET", "/artifacts/list", query={"org": unique("none")}))
    assert b["artifacts"] == [] and not b.get("next_cursor"), b


@test
def list_limit_clamped_to_1000():
    n = N()
    org = unique("C")
    uris = ["ctx://%s/bulk/i%04d" % (org, i) for i in range(1005)]
    _create_many(n, uris, threads=6)
    b = expect_ok(n.req("GET", "/artifacts/list", query={"org": org, "limit": 5000}))
    assert len(b["artifacts"]) == 1000, len(b["artifacts"])
    assert b.get("next_cursor"), b.get("next_cursor")
    b2 = expect_ok(n.req("GET", "/artifacts/list",
                         query={"org": org, "limit": 1000, "cursor": b["next_cursor"]}))
    assert [a["uri"] for a in b["artifacts"] + b2["artifacts"]] == sorted(uris)
    b3 = expect_ok(n.req("GET", "/artifacts/list", query={"org": org}))
    assert len(b3["artifacts"]) == 100, len(b3["artifacts"])  # default limit


def _find_blob(data_dir, raw):
    hexd = hashlib.sha256(raw).hexdigest()
    for root, _, files in os.walk(os.path.join(data_dir, "blobs")):
        for f in files:
            if f in (hexd[2:], hexd):
                with open(os.path.join(root, f), "rb") as fh:
                    if fh.read() == raw:
                        return os.path.relpath(os.path.join(root, f), data_dir)
    return None


@test
def large_content_round_trips_via_blob_file():
    n = N()
    big = "".join("line %06d %s\n" % (i, "é" * (i % 7)) for i in range(9000))
    assert len(big.encode()) > 64 * 1024
    u = uri()
    a = create(n, u, big)
    assert a["content_hash"] == content_hash(big) and a["size"] == len(big.encode()), a
    g = expect_ok(get(n, u))
    assert g["content"] == big
    assert g["content_hash"] == content_hash(big)
    if sqlite_only("looks for the blob file under the SQLite data dir's blobs/"):
        path = _find_blob(n.data_dir, big.encode())
        assert path is not None, "no blob file with the content under blobs/"
        hexd = hashlib.sha256(big.encode()).hexdigest()
        assert path == os.path.join("blobs", hexd[:2], hexd[2:]), path
    # large JSON object
    obj = {"k%05d" % i: ["v" * 20, i] for i in range(4000)}
    u2 = uri()
    a2 = create(n, u2, obj)
    assert a2["content_hash"] == content_hash(obj)
    assert expect_ok(get(n, u2))["content"] == obj
    # same bytes in a second artifact: stored once, still readable
    u3 = uri()
    create(n, u3, big)
    assert expect_ok(get(n, u3))["content"] == big
    # around the 64 KiB threshold
    for size in (65535, 65536, 65537):
        s = "x" * size
        u4 = uri()
        a4 = create(n, u4, s)
        assert a4["size"] == size and a4["content_hash"] == content_hash(s)
        assert expect_ok(get(n, u4))["content"] == s


@test
def small_and_empty_content_round_trip():
    n = N()
    for c in ("", "x", "a\n", " ", {}, [], 0):
        u = uri()
        a = create(n, u, c)
        assert a["size"] == len(stored_bytes(c)), (c, a)
        assert a["content_hash"] == content_hash(c), (c, a)
        assert expect_ok(get(n, u))["content"] == c, c


@test
def unicode_content_round_trips():
    n = N()
    texts = ["Grüße, 世界! 😀\n\ttab \"quote\" \\ back/slash\r\n",
             "\u00e9\u0301 combining, \u202e rtl, \U0001F468\u200D\U0001F469",
             {"ключ": "значение", "emoji": "🎉", "list": ["ä", "ß"]}]
    for c in texts:
        u = uri()
        a = create(n, u, c)
        assert a["content_hash"] == content_hash(c), (c, a)
        assert a["size"] == len(stored_bytes(c)), (c, a)
        g = expect_ok(get(n, u))
        assert g["content"] == c, (g["content"], c)
    # unicode in name and summary
    u = uri()
    a = create(n, u, "x", name="Ñame ✓", summary="résumé 📄")
    g = expect_ok(get(n, u))
    assert g["name"] == "Ñame ✓" and g["summary"] == "résumé 📄", g


@test
def uri_with_multi_segment_id():
    n = N()
    u = "ctx://%s/d.o-c_s/a/b.c/d-e_f" % unique("o")
    a = create(n, u, "deep")
    assert a["domain"] == "d.o-c_s", a
    assert expect_ok(get(n, u))["content"] == "deep"


@test
def json_numbers_are_canonical_rfc8785():
    """Floats are stored in RFC 8785 form, so any client can recompute the
    content_hash; reals beyond int64 printed without exponent read back."""
    n = N()
    u = "ctx://acme/nums/%s" % unique()
    content = {"f": 0.1, "g": 1e-7, "big": 1e20, "one": 1.0, "i": 7, "neg": -2.5e300,
               "s": "tab\there\u0001"}
    a = expect_ok(n.req("POST", "/artifacts", {"uri": u, "content": content}), 201)
    assert a["content_hash"] == content_hash(content), (a["content_hash"], content_hash(content))
    got = expect_ok(n.req("GET", "/artifacts", query={"uri": u}))["content"]
    assert isinstance(got, dict), got
    for k, v in content.items():
        assert got[k] == v, (k, got[k], v)


if __name__ == "__main__":
    run_tests()
