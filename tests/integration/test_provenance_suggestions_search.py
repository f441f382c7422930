"""Provenance rows, suggestions (propose / approve / reject) and full-text
search (node-api.md §3 "Provenance", "Suggestions", "Search")."""

from harness import (Shared, content_hash, expect_error, expect_ok, grant, new_actor,
                     run_tests, test, unique)

N = Shared(node_id="psx1", region="eu")


def mk(n, u, content="x", token=None, **kw):
    body = {"uri": u, "content": content}
    body.update(kw)
    args = {} if token is None else {"token": token}
    return expect_ok(n.req("POST", "/artifacts", body, **args), 201)


def prov(n, u, token=None, **q):
    q["uri"] = u
    args = {} if token is None else {"token": token}
    return expect_ok(n.req("GET", "/provenance", query=q, **args))["records"]


@test
def provenance_one_row_per_read_and_write():
    n = N()
    org = unique("pv")
    u = "ctx://%s/docs/a" % org
    down = "ctx://%s/derived/summary" % org
    uid, tok = new_actor(n, "pv", grants=[("ctx://%s/**" % org, ["read", "write"])])
    mk(n, u, "one", token=tok)                                          # write v1
    expect_ok(n.req("GET", "/artifacts", query={"uri": u}, token=tok))  # read v1
    expect_ok(n.req("GET", "/artifacts", query={"uri": u, "downstream_uri": down},
                    token=tok))                                         # read v1 + down
    expect_ok(n.req("PUT", "/artifacts", {"content": "two"}, query={"uri": u},
                    token=tok))                                         # write v2
    expect_ok(n.req("GET", "/artifacts", query={"uri": u, "version": 1},
                    token=tok))                                         # read v1
    expect_ok(n.req("GET", "/artifacts", query={"uri": u}))             # admin read v2
    # failed reads and writes leave no row
    expect_error(n.req("GET", "/artifacts", query={"uri": u, "version": 7}, token=tok),
                 404, "not_found")
    expect_error(n.req("PUT", "/artifacts", {"content": "x", "base_version": 1},
                       query={"uri": u}, token=tok), 409, "version_conflict")
    recs = prov(n, u)
    got = [(r["actor_id"], r["operation"], r["version_touched"], r["downstream_uri"])
           for r in recs]
    assert got == [
        (n.admin_id, "read", 2, None),
        (uid, "read", 1, None),
        (uid, "write", 2, None),
        (uid, "read", 1, down),
        (uid, "read", 1, None),
        (uid, "write", 1, None),
    ], got
    for r in recs:
        assert r["prov_id"] is not None and r["artifact_uri"] == u and r["created_at"], r
    assert len({r["prov_id"] for r in recs}) == len(recs)
    # a non-admin reader sees only their own rows
    mine = prov(n, u, token=tok)
    assert [r["prov_id"] for r in mine] == [r["prov_id"] for r in recs
                                           if r["actor_id"] == uid], mine
    # limit: newest first
    two = prov(n, u, limit=2)
    assert [r["prov_id"] for r in two] == [r["prov_id"] for r in recs[:2]], two
    # filter by actor
    only = prov(n, u, actor_id=n.admin_id)
    assert [r["actor_id"] for r in only] == [n.admin_id], only
    # no read on the URI: forbidden
    _, otok = new_actor(n, "po")
    expect_error(n.req("GET", "/provenance", query={"uri": u}, token=otok), 403, "forbidden")
    # delete is a write touching the tombstone version
    t = expect_ok(n.req("DELETE", "/artifacts", query={"uri": u}, token=tok))
    recs2 = prov(n, u)
    assert (recs2[0]["actor_id"], recs2[0]["operation"], recs2[0]["version_touched"]) == \
        (uid, "write", t["version"]), recs2[0]
    assert len(recs2) == len(recs) + 1, recs2


@test
def provenance_cannot_be_altered_through_api():
    n = N()
    for method in ("PUT", "DELETE", "PATCH"):
        st, h, b = n.req(method, "/provenance", {} if method != "DELETE" else None,
                         query={"uri": "ctx://a/b/c"})
        assert st == 405, (method, st, b)
        assert "GET" in h.get("allow", ""), h
    expect_error(n.req("GET", "/provenance", query={"uri": "not-a-uri"}), 400, "invalid_uri")


def _setup_suggest(n):
    org = unique("sg")
    u = "ctx://%s/docs/a" % org
    a1 = mk(n, u, "original\n")
    sam, stok = new_actor(n, "sam", grants=[("ctx://%s/**" % org, ["read", "suggest"])])
    ann, atok = new_actor(n, "ann", grants=[("ctx://%s/**" % org, ["read", "approve"])])
    return org, u, a1, sam, stok, ann, atok


@test
def suggestion_propose_and_approve():
    n = N()
    org, u, a1, sam, stok, ann, atok = _setup_suggest(n)
    s = expect_ok(n.req("POST", "/suggestions",
                        {"uri": u, "content": "improved\n", "summary": "better",
                         "base_version": 1}, token=stok), 201)
    assert s["id"] and s["status"] == "pending", s
    lst = expect_ok(n.req("GET", "/suggestions", query={"uri": u}, token=atok))
    assert [x["id"] for x in lst["suggestions"]] == [s["id"]], lst
    lst = expect_ok(n.req("GET", "/suggestions", query={"uri": u, "status": "pending"},
                          token=atok))
    assert [x["id"] for x in lst["suggestions"]] == [s["id"]], lst
    lst = expect_ok(n.req("GET", "/suggestions", query={"uri": u, "status": "approved"},
                          token=atok))
    assert lst["suggestions"] == [], lst
    # nothing written yet
    g = expect_ok(n.req("GET", "/artifacts", query={"uri": u}))
    assert g["version"] == 1 and g["content"] == "original\n"
    r = expect_ok(n.req("POST", "/suggestions/%s/approve" % s["id"], {}, token=atok))
    assert r["suggestion"]["status"] == "approved" and r["suggestion"]["id"] == s["id"], r
    v = r["version"]
    assert v["version"] == 2 and v["author_id"] == sam and v["approved_by"] == ann, v
    assert v["parent_id"] == a1["version_id"], v
    g = expect_ok(n.req("GET", "/artifacts", query={"uri": u}))
    assert g["version"] == 2 and g["content"] == "improved\n", g
    assert g["author_id"] == sam and g["approved_by"] == ann, g
    assert g["content_hash"] == content_hash("improved\n") and g["summary"] == "better", g
    h = expect_ok(n.req("GET", "/artifacts/history", query={"uri": u}))
    assert h["versions"][0]["approved_by"] == ann and h["versions"][1]["approved_by"] is None
    lst = expect_ok(n.req("GET", "/suggestions", query={"uri": u, "status": "approved"},
                          token=atok))
    assert [x["id"] for x in lst["suggestions"]] == [s["id"]], lst
    # the change event carries the suggester as author
    ev = expect_ok(n.req("GET", "/changes", query={"since": n.head() - 1}))["events"]
    assert ev[-1]["version_id"] == v["version_id"] and ev[-1]["author_id"] == sam, ev


@test
def suggestion_stale_base_conflicts():
    n = N()
    org, u, a1, sam, stok, ann, atok = _setup_suggest(n)
    s1 = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "A", "summary": "a",
                                                  "base_version": 1}, token=stok), 201)
    s2 = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "B", "summary": "b",
                                                  "base_version": 1}, token=stok), 201)
    expect_ok(n.req("POST", "/suggestions/%s/approve" % s1["id"], {}, token=atok))
    expect_error(n.req("POST", "/suggestions/%s/approve" % s2["id"], {}, token=atok),
                 409, "version_conflict")
    g = expect_ok(n.req("GET", "/artifacts", query={"uri": u}))
    assert g["version"] == 2 and g["content"] == "A", g
    # head moved by a plain write too
    s3 = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "C", "summary": "c",
                                                  "base_version": 2}, token=stok), 201)
    expect_ok(n.req("PUT", "/artifacts", {"content": "D"}, query={"uri": u}))
    expect_error(n.req("POST", "/suggestions/%s/approve" % s3["id"], {}, token=atok),
                 409, "version_conflict")
    assert expect_ok(n.req("GET", "/artifacts", query={"uri": u}))["version"] == 3


@test
def suggestion_reject():
    n = N()
    org, u, a1, sam, stok, ann, atok = _setup_suggest(n)
    s = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "no", "summary": "n",
                                                 "base_version": 1}, token=stok), 201)
    h0 = n.head()
    r = expect_ok(n.req("POST", "/suggestions/%s/reject" % s["id"], {}, token=atok))
    rs = r.get("suggestion", r)
    assert rs["status"] == "rejected" and rs["id"] == s["id"], r
    g = expect_ok(n.req("GET", "/artifacts", query={"uri": u}))
    assert g["version"] == 1 and g["content"] == "original\n", g
    assert n.head() == h0
    lst = expect_ok(n.req("GET", "/suggestions", query={"uri": u, "status": "rejected"},
                          token=atok))
    assert [x["id"] for x in lst["suggestions"]] == [s["id"]], lst


@test
def suggestion_permissions():
    n = N()
    org, u, a1, sam, stok, ann, atok = _setup_suggest(n)
    _, rtok = new_actor(n, "rd", grants=[("ctx://%s/**" % org, ["read", "write"])])
    expect_error(n.req("POST", "/suggestions", {"uri": u, "content": "x", "summary": "x",
                                                "base_version": 1}, token=rtok),
                 403, "forbidden")
    # sam may suggest, not approve; ann may approve, suggesting needs suggest
    s = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "y", "summary": "y",
                                                 "base_version": 1}, token=stok), 201)
    expect_error(n.req("POST", "/suggestions/%s/approve" % s["id"], {}, token=stok),
                 403, "forbidden")
    expect_error(n.req("POST", "/suggestions/%s/reject" % s["id"], {}, token=stok),
                 403, "forbidden")
    expect_error(n.req("POST", "/suggestions/%s/approve" % s["id"], {}, token=rtok),
                 403, "forbidden")
    expect_error(n.req("POST", "/suggestions", {"uri": u, "content": "z", "summary": "z",
                                                "base_version": 1}, token=atok),
                 403, "forbidden")
    # suggest on a URI outside the grant: forbidden, whether or not it exists
    expect_error(n.req("POST", "/suggestions",
                       {"uri": "ctx://%s-x/docs/a" % org, "content": "z", "summary": "z",
                        "base_version": 1}, token=stok), 403, "forbidden")
    assert expect_ok(n.req("GET", "/artifacts", query={"uri": u}))["version"] == 1
    expect_error(n.req("POST", "/suggestions/%s/approve" % "999999999", {}, token=atok),
                 404, "not_found")
    # admin on ** can approve
    r = expect_ok(n.req("POST", "/suggestions/%s/approve" % s["id"], {}))
    assert r["version"]["approved_by"] == n.admin_id, r


def search(n, token=None, **q):
    args = {} if token is None else {"token": token}
    return expect_ok(n.req("GET", "/search", query=q, **args))["results"]


@test
def search_ranked_and_filtered():
    n = N()
    org = unique("se")
    w = unique("zq")  # a word no other test uses
    a_name = mk(n, "ctx://%s/pub/byname" % org, "nothing here", name="About %s" % w)
    a_sum = mk(n, "ctx://%s/pub/bysummary" % org, "nothing either",
               summary="mentions %s once" % w)
    a_txt = mk(n, "ctx://%s/priv/bytext" % org,
               "intro\n" + ("the %s is here. " % w) * 5 + "\nend\n")
    mk(n, "ctx://%s/pub/unrelated" % org, "no match at all", name="Other")
    res = search(n, q=w, org=org)
    uris = [r["uri"] for r in res]
    assert set(uris) == {a_name["uri"], a_sum["uri"], a_txt["uri"]}, res
    for r in res:
        assert isinstance(r["score"], (int, float)), r
        assert r["version"] == 1 and "name" in r, r
        assert isinstance(r["snippet"], str), r
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True) or scores == sorted(scores), scores
    txt = [r for r in res if r["uri"] == a_txt["uri"]][0]
    assert w in txt["snippet"].lower(), txt
    # domain filter and limit
    res = search(n, q=w, org=org, domain="priv")
    assert [r["uri"] for r in res] == [a_txt["uri"]], res
    res = search(n, q=w, org=org, limit=1)
    assert len(res) == 1, res
    # read-filtered
    _, tok = new_actor(n, "se", grants=[("ctx://%s/pub/**" % org, ["read"])])
    res = search(n, token=tok, q=w, org=org)
    assert {r["uri"] for r in res} == {a_name["uri"], a_sum["uri"]}, res
    _, tok0 = new_actor(n, "s0")
    assert search(n, token=tok0, q=w) == []
    expect_error(n.req("GET", "/search"), 400, "bad_request")


@test
def search_uses_latest_versions_only():
    n = N()
    org = unique("sl")
    old, new = unique("old"), unique("new")
    u = "ctx://%s/d/a" % org
    mk(n, u, "first text with %s" % old)
    expect_ok(n.req("PUT", "/artifacts", {"content": "second text with %s" % new},
                    query={"uri": u}))
    assert search(n, q=old, org=org) == []
    res = search(n, q=new, org=org)
    assert [(r["uri"], r["version"]) for r in res] == [(u, 2)], res
    expect_ok(n.req("DELETE", "/artifacts", query={"uri": u}))
    assert search(n, q=new, org=org) == []
    # JSON content is searchable as text too
    gone = unique("js")
    mk(n, "ctx://%s/d/json" % org, {"title": "doc %s" % gone})
    res = search(n, q=gone, org=org)
    assert [r["uri"] for r in res] == ["ctx://%s/d/json" % org], res


if __name__ == "__main__":
    run_tests()
