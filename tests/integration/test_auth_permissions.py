"""Authentication (token and header modes), actors, tokens and the
default-deny permission model (node-api.md §2)."""

import re

from harness import (Node, Shared, create_actor, expect_error, expect_ok, grant,
                     new_actor, run_tests, test, token_for, unique)

N = Shared(node_id="auth1", region="eu")


def mk(n, u, content="x"):
    expect_ok(n.req("POST", "/artifacts", {"uri": u, "content": content}), 201)


def get(n, u, tok):
    return n.req("GET", "/artifacts", query={"uri": u}, token=tok)


@test
def missing_or_unknown_credentials_are_401():
    n = N()
    u = "ctx://acme/docs/%s" % unique()
    mk(n, u)
    for path, q in (("/artifacts", {"uri": u}), ("/actors", None), ("/changes", None),
                    ("/artifacts/list", None), ("/subscriptions", None)):
        expect_error(n.req("GET", path, query=q, token=None), 401, "unauthenticated")
        expect_error(n.req("GET", path, query=q, token="not-a-real-token"),
                     401, "unauthenticated")
    expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                       headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
                 401, "unauthenticated")
    expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                       headers={"Authorization": "Bearer"}), 401, "unauthenticated")
    # a token-mode node ignores X-Actor-Id
    expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                       headers={"X-Actor-Id": n.admin_id}), 401, "unauthenticated")
    expect_error(n.req("POST", "/artifacts", {"uri": u + "x", "content": "x"},
                       token=None), 401, "unauthenticated")
    st, h, b = n.req("GET", "/health", token=None)
    assert st == 200 and b["node_id"] == "auth1" and b["region"] == "eu", b
    assert b["status"] and isinstance(b["version"], str) and b["version"], b
    assert h.get("x-request-id"), h


@test
def init_identity():
    n = N()
    assert re.match(r"^[0-9a-f]{32}$", n.epoch or ""), n.info
    assert n.info["node_id"] == "auth1" and n.info["region"] == "eu", n.info
    a = expect_ok(n.req("GET", "/actors/%s" % n.admin_id))
    assert a["actor_id"] == n.admin_id, a
    assert re.match(r"^[A-Za-z0-9_-]{43,}={0,2}$", n.admin_token), n.admin_token


@test
def admin_creates_actors():
    n = N()
    hid, aid = unique("h"), unique("ag")
    h = create_actor(n, hid, "human")
    assert h["actor_id"] == hid and h["actor_type"] == "human", h
    assert h.get("agent_class") is None and h["created_at"] and h["name"] == hid, h
    a = create_actor(n, aid, "agent", agent_class="summarizer")
    assert a["actor_type"] == "agent" and a["agent_class"] == "summarizer", a
    expect_error(n.req("POST", "/actors", {"actor_id": hid, "actor_type": "human",
                                           "name": "again"}), 409, "conflict")
    lst = expect_ok(n.req("GET", "/actors"))["actors"]
    ids = {x["actor_id"] for x in lst}
    assert {hid, aid, n.admin_id} <= ids, ids
    one = expect_ok(n.req("GET", "/actors/%s" % aid))
    assert one["actor_id"] == aid and one["agent_class"] == "summarizer", one
    expect_error(n.req("GET", "/actors/%s" % unique("nobody")), 404, "not_found")
    g = expect_ok(n.req("POST", "/actors", {"actor_type": "human", "name": "No Id"}), 201)
    assert isinstance(g["actor_id"], str) and g["actor_id"], g
    expect_ok(n.req("GET", "/actors/%s" % g["actor_id"]))
    expect_error(n.req("POST", "/actors", {"actor_id": unique("r"), "actor_type": "robot",
                                           "name": "r"}), 400, "bad_request")


@test
def non_admin_cannot_manage_actors():
    n = N()
    uid, tok = new_actor(n, "na", grants=[("ctx://acme/**", ["admin"])])
    expect_error(n.req("POST", "/actors", {"actor_id": unique("z"), "actor_type": "human",
                                           "name": "z"}, token=tok), 403, "forbidden")
    expect_error(n.req("POST", "/actors/%s/tokens" % uid, {}, token=tok), 403, "forbidden")
    expect_error(n.req("POST", "/actors/%s/tokens" % n.admin_id, {}, token=tok),
                 403, "forbidden")


@test
def tokens_issue_and_revoke():
    n = N()
    uid = unique("tk")
    create_actor(n, uid)
    b1 = expect_ok(n.req("POST", "/actors/%s/tokens" % uid, {}), 201)
    b2 = expect_ok(n.req("POST", "/actors/%s/tokens" % uid, {}), 201)
    for b in (b1, b2):
        assert b["token_id"] and re.match(r"^[A-Za-z0-9_-]{43,}={0,2}$", b["token"]), b
    assert b1["token"] != b2["token"] and b1["token_id"] != b2["token_id"]
    # both work: GET /changes needs no grant
    expect_ok(n.req("GET", "/changes", token=b1["token"]))
    expect_ok(n.req("GET", "/changes", token=b2["token"]))
    st, _, _ = n.req("DELETE", "/actors/%s/tokens/%s" % (uid, b1["token_id"]))
    assert st == 204, st
    expect_error(n.req("GET", "/changes", token=b1["token"]), 401, "unauthenticated")
    expect_ok(n.req("GET", "/changes", token=b2["token"]))
    expect_error(n.req("DELETE", "/actors/%s/tokens/%s" % (uid, "no-such-token")),
                 404, "not_found")
    expect_error(n.req("POST", "/actors/%s/tokens" % unique("ghost"), {}), 404,
                 "not_found")
    # the token list is not leaked anywhere in the actor record
    a = expect_ok(n.req("GET", "/actors/%s" % uid))
    assert b2["token"] not in str(a), a


@test
def default_deny_without_existence_leak():
    n = N()
    org = unique("dd")
    u = "ctx://%s/docs/exists" % org
    mk(n, u)
    _, tok = new_actor(n, "dd")
    e1 = expect_error(get(n, u, tok), 403, "forbidden")
    e2 = expect_error(get(n, "ctx://%s/docs/missing" % org, tok), 403, "forbidden")
    # same answer whether or not the artifact exists (the message may echo the URI)
    assert e1["message"].replace("exists", "X") == e2["message"].replace("missing", "X"), \
        (e1, e2)
    for method, path, body in (
            ("PUT", "/artifacts", {"content": "y"}),
            ("DELETE", "/artifacts", None)):
        expect_error(n.req(method, path, body, query={"uri": u}, token=tok), 403, "forbidden")
        expect_error(n.req(method, path, body, query={"uri": u + "nope"}, token=tok),
                     403, "forbidden")
    expect_error(n.req("POST", "/artifacts", {"uri": u + "2", "content": "x"}, token=tok),
                 403, "forbidden")
    expect_error(n.req("GET", "/artifacts/history", query={"uri": u}, token=tok),
                 403, "forbidden")
    expect_error(n.req("GET", "/artifacts/diff", query={"uri": u, "from": 1, "to": 1},
                       token=tok), 403, "forbidden")
    expect_error(n.req("GET", "/artifacts/diff",
                       query={"uri": u + "nope", "from": 1, "to": 1}, token=tok),
                 403, "forbidden")
    # nothing was written by the forbidden requests
    h = expect_ok(n.req("GET", "/artifacts/history", query={"uri": u}))
    assert len(h["versions"]) == 1, h
    expect_error(n.req("GET", "/artifacts", query={"uri": u + "2"}), 404, "not_found")


@test
def read_grant_allows_read_not_write():
    n = N()
    org = unique("rg")
    u = "ctx://%s/docs/a" % org
    deep = "ctx://%s/docs/a/b/c" % org
    mk(n, u, "hello")
    mk(n, deep, "deep")
    mk(n, "ctx://%s/other/a" % org)
    uid, tok = new_actor(n, "rg")
    g = grant(n, actor_id=uid, pattern="ctx://%s/docs/**" % org, ops=["read"])
    assert g["id"] and g["actor_id"] == uid and g["artifact_pattern"] == \
        "ctx://%s/docs/**" % org, g
    assert g["operations"] == ["read"] and g["granted_by"] == n.admin_id, g
    assert g["created_at"] and g.get("agent_class") is None, g
    assert expect_ok(get(n, u, tok))["content"] == "hello"
    assert expect_ok(get(n, deep, tok))["content"] == "deep"
    expect_ok(n.req("GET", "/artifacts/history", query={"uri": u}, token=tok))
    expect_error(get(n, "ctx://%s/docs/zzz" % org, tok), 404, "not_found")
    expect_error(get(n, "ctx://%s/other/a" % org, tok), 403, "forbidden")
    expect_error(n.req("PUT", "/artifacts", {"content": "w"}, query={"uri": u}, token=tok),
                 403, "forbidden")
    expect_error(n.req("POST", "/artifacts", {"uri": "ctx://%s/docs/new" % org,
                                              "content": "w"}, token=tok), 403, "forbidden")
    expect_error(n.req("DELETE", "/artifacts", query={"uri": u}, token=tok), 403, "forbidden")
    # write grant added: now allowed and authored by the actor
    grant(n, actor_id=uid, pattern="ctx://%s/docs/*" % org, ops=["write"])
    a = expect_ok(n.req("PUT", "/artifacts", {"content": "w"}, query={"uri": u}, token=tok))
    assert a["version"] == 2 and a["author_id"] == uid, a
    # `*` does not cross '/': deep stays read-only
    expect_error(n.req("PUT", "/artifacts", {"content": "w"}, query={"uri": deep},
                       token=tok), 403, "forbidden")
    # admin implies every operation
    uid2, tok2 = new_actor(n, "ad", grants=[("ctx://%s/docs/**" % org, ["admin"])])
    expect_ok(n.req("PUT", "/artifacts", {"content": "w2"}, query={"uri": deep}, token=tok2))


@test
def agent_class_grants():
    n = N()
    org = unique("ac")
    cls = unique("cls")
    u = "ctx://%s/docs/a" % org
    mk(n, u, "for agents")
    a1, a2, h1 = unique("a1"), unique("a2"), unique("h1")
    create_actor(n, a1, "agent", agent_class=cls)
    create_actor(n, a2, "agent", agent_class=cls + "other")
    create_actor(n, h1, "human")
    t1, t2, t3 = token_for(n, a1), token_for(n, a2), token_for(n, h1)
    g = grant(n, agent_class=cls, pattern="ctx://%s/**" % org, ops=["read"])
    assert g["agent_class"] == cls and g.get("actor_id") is None, g
    assert expect_ok(get(n, u, t1))["content"] == "for agents"
    expect_error(get(n, u, t2), 403, "forbidden")
    expect_error(get(n, u, t3), 403, "forbidden")
    # a new agent of the class is covered too
    a3 = unique("a3")
    create_actor(n, a3, "agent", agent_class=cls)
    expect_ok(get(n, u, token_for(n, a3)))
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": a1, "uri": u, "op": "read"}, token=t1))
    assert c["allowed"] is True and c["matched_grant"]["id"] == g["id"], c
    lst = expect_ok(n.req("GET", "/permissions", query={"agent_class": cls}))
    assert [p["id"] for p in lst["permissions"]] == [g["id"]], lst


@test
def glob_star_and_double_star():
    n = N()
    org = unique("gl")
    uid, tok = new_actor(n, "gl")
    grant(n, actor_id=uid, pattern="ctx://%s/one/*" % org, ops=["read"])
    grant(n, actor_id=uid, pattern="ctx://%s/w*/x" % org, ops=["read"])
    grant(n, actor_id=uid, pattern="ctx://%s/a.b/*" % org, ops=["read"])
    grant(n, actor_id=uid, pattern="ctx://%s/deep/**" % org, ops=["read"])
    grant(n, actor_id=uid, pattern="ctx://%s/pre*fix/q" % org, ops=["read"])
    allowed = [
        "ctx://%s/one/x" % org,
        "ctx://%s/wa/x" % org, "ctx://%s/wxyz/x" % org,
        "ctx://%s/a.b/c" % org,
        "ctx://%s/deep/x" % org, "ctx://%s/deep/x/y/z" % org,
        "ctx://%s/prefix/q" % org, "ctx://%s/pre-middle-fix/q" % org,
    ]
    denied = [
        "ctx://%s/one/x/y" % org,            # * does not cross /
        "ctx://%s/wa/b/x" % org,
        "ctx://%s/wa/x/y" % org,             # anchored at the end
        "ctx://%s/aXb/c" % org,              # . is literal
        "ctx://%s/deeper/x" % org,
        "ctx://%s/pre/fix/q" % org,
        "ctx://%s/one" % org + "x/y",
        "ctx://x%s/one/x" % org,             # anchored at the start
    ]
    for u in allowed:
        expect_error(get(n, u, tok), 404, "not_found")  # allowed, just missing
        c = expect_ok(n.req("GET", "/permissions/check",
                            query={"actor_id": uid, "uri": u, "op": "read"}, token=tok))
        assert c["allowed"] is True, (u, c)
    for u in denied:
        expect_error(get(n, u, tok), 403, "forbidden")
        c = expect_ok(n.req("GET", "/permissions/check",
                            query={"actor_id": uid, "uri": u, "op": "read"}, token=tok))
        assert c["allowed"] is False, (u, c)
    # bare ** matches everything
    uid2, tok2 = new_actor(n, "all", grants=[("**", ["read"])])
    for u in allowed + denied:
        expect_error(get(n, u, tok2), 404, "not_found")


@test
def permissions_check():
    n = N()
    org = unique("pc")
    u = "ctx://%s/docs/a" % org
    uid, tok = new_actor(n, "pc")
    other, otok = new_actor(n, "po")
    g = grant(n, actor_id=uid, pattern="ctx://%s/docs/**" % org, ops=["read", "suggest"])
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": uid, "uri": u, "op": "read"}, token=tok))
    assert c["allowed"] is True and c["reason"] == "matched grant", c
    assert c["matched_grant"]["id"] == g["id"], c
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": uid, "uri": u, "op": "write"}, token=tok))
    assert c["allowed"] is False and c["reason"] == "no matching grant (default-deny)", c
    assert c["matched_grant"] is None, c
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": uid, "uri": "ctx://%s/x/y" % org, "op": "read"},
                        token=tok))
    assert c["allowed"] is False, c
    # another actor without admin cannot check uid
    expect_error(n.req("GET", "/permissions/check",
                       query={"actor_id": uid, "uri": u, "op": "read"}, token=otok),
                 403, "forbidden")
    # admin can
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": uid, "uri": u, "op": "read"}))
    assert c["allowed"] is True, c
    # admin's own check: admin on ** implies read
    c = expect_ok(n.req("GET", "/permissions/check",
                        query={"actor_id": n.admin_id, "uri": u, "op": "write"}))
    assert c["allowed"] is True and c["reason"] == "matched grant", c
    expect_error(n.req("GET", "/permissions/check",
                       query={"actor_id": uid, "uri": "not a uri", "op": "read"},
                       token=tok), 400, "invalid_uri")
    expect_error(n.req("GET", "/permissions/check",
                       query={"actor_id": uid, "op": "read"}, token=tok), 400, "bad_request")


@test
def granting_needs_admin_on_a_covering_pattern():
    n = N()
    org = unique("ga")
    target, _ = new_actor(n, "tg")
    plain, ptok = new_actor(n, "pl", grants=[("ctx://%s/**" % org, ["read", "write"])])
    expect_error(n.req("POST", "/permissions",
                       {"actor_id": target, "artifact_pattern": "ctx://%s/docs/x" % org,
                        "operations": ["read"]}, token=ptok), 403, "forbidden")
    sub, stok = new_actor(n, "sa", grants=[("ctx://%s/docs/**" % org, ["admin"])])
    expect_error(n.req("POST", "/permissions",
                       {"actor_id": target, "artifact_pattern": "ctx://%s/**" % org,
                        "operations": ["read"]}, token=stok), 403, "forbidden")
    expect_error(n.req("POST", "/permissions",
                       {"actor_id": target, "artifact_pattern": "**",
                        "operations": ["read"]}, token=stok), 403, "forbidden")
    g1 = expect_ok(n.req("POST", "/permissions",
                         {"actor_id": target, "artifact_pattern": "ctx://%s/docs/x" % org,
                          "operations": ["read"]}, token=stok), 201)
    assert g1["granted_by"] == sub, g1
    g2 = expect_ok(n.req("POST", "/permissions",
                         {"actor_id": target, "artifact_pattern": "ctx://%s/docs/**" % org,
                          "operations": ["write"]}, token=stok), 201)
    # revoking: same rule
    wide = grant(n, actor_id=target, pattern="ctx://%s/**" % org, ops=["read"])
    st, _, b = n.req("DELETE", "/permissions/%s" % wide["id"], token=stok)
    expect_error((st, _, b), 403, "forbidden")
    st, _, b = n.req("DELETE", "/permissions/%s" % g2["id"], token=stok)
    assert st == 204, (st, b)
    st, _, b = n.req("DELETE", "/permissions/%s" % g1["id"], token=ptok)
    expect_error((st, _, b), 403, "forbidden")


@test
def revoke_grant_removes_access():
    n = N()
    org = unique("rv")
    u = "ctx://%s/docs/a" % org
    mk(n, u)
    uid, tok = new_actor(n, "rv")
    g = grant(n, actor_id=uid, pattern="ctx://%s/**" % org, ops=["read"])
    expect_ok(get(n, u, tok))
    lst = expect_ok(n.req("GET", "/permissions", query={"actor_id": uid}))["permissions"]
    assert [p["id"] for p in lst] == [g["id"]], lst
    st, h, b = n.req("DELETE", "/permissions/%s" % g["id"])
    assert st == 204 and h.get("x-request-id"), (st, b)
    expect_error(get(n, u, tok), 403, "forbidden")
    lst = expect_ok(n.req("GET", "/permissions", query={"actor_id": uid}))["permissions"]
    assert lst == [], lst
    expect_error(n.req("DELETE", "/permissions/%s" % g["id"]), 404, "not_found")


@test
def lists_and_feeds_leave_out_unreadable():
    n = N()
    org = unique("lf")
    h0 = n.head()
    pub = ["ctx://%s/pub/a%d" % (org, i) for i in range(3)]
    priv = ["ctx://%s/priv/a%d" % (org, i) for i in range(3)]
    for u in pub + priv:
        mk(n, u)
    uid, tok = new_actor(n, "lf", grants=[("ctx://%s/pub/**" % org, ["read"])])
    b = expect_ok(n.req("GET", "/artifacts/list", query={"org": org}, token=tok))
    assert [a["uri"] for a in b["artifacts"]] == sorted(pub), b
    b = expect_ok(n.req("GET", "/artifacts/list", query={"org": org, "domain": "priv"},
                        token=tok))
    assert b["artifacts"] == [], b
    b = expect_ok(n.req("GET", "/changes", query={"since": h0}, token=tok))
    assert [e["artifact_uri"] for e in b["events"]] == pub, b
    b = expect_ok(n.req("GET", "/domains/priv/changes", query={"since": h0, "org": org},
                        token=tok))
    assert b["events"] == [], b
    b = expect_ok(n.req("GET", "/domains/pub/changes", query={"since": h0, "org": org},
                        token=tok))
    assert [e["artifact_uri"] for e in b["events"]] == pub, b
    # admin sees all six
    b = expect_ok(n.req("GET", "/changes", query={"since": h0}))
    assert [e["artifact_uri"] for e in b["events"]] == pub + priv, b


@test
def header_auth_mode():
    with Node(node_id="hdr1", region="eu", auth="header") as n:
        u = "ctx://acme/docs/%s" % unique()
        a = expect_ok(n.req("POST", "/artifacts", {"uri": u, "content": "h"},
                            headers={"X-Actor-Id": n.admin_id}, token=None), 201)
        assert a["author_id"] == n.admin_id, a
        expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                           headers={"X-Actor-Id": "nobody-" + unique()}),
                     401, "unauthenticated")
        expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None),
                     401, "unauthenticated")
        uid = unique("hd")
        create_actor(n, uid)
        expect_error(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                           headers={"X-Actor-Id": uid}), 403, "forbidden")
        grant(n, actor_id=uid, pattern="ctx://acme/**", ops=["read"])
        g = expect_ok(n.req("GET", "/artifacts", query={"uri": u}, token=None,
                            headers={"X-Actor-Id": uid}))
        assert g["content"] == "h"


if __name__ == "__main__":
    run_tests()
