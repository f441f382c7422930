"""Node side of federation (docs/federation-protocol.md): info, changes in
metadata and full modes, ingest classification (applied / duplicate /
deferred / fork / rejected), checkpoints, dead letters, versions, payload,
and the least-privilege federation agent."""
import base64
import hashlib
import json
import os
import shutil
import subprocess

from harness import (Node, Shared, bin_path, create_actor, expect_error, expect_ok,
                     grant, run_tests, sqlite_only, test, token_for, unique)

EU = Shared(node_id="eu-1", region="eu")
US = Shared(node_id="us-1", region="us")


def fed_agent(node, region, pattern="**"):
    aid = unique("fed")
    st, _, b = node.req("POST", "/actors", {"actor_id": aid, "actor_type": "agent",
                                            "name": aid, "agent_class": "federation",
                                            "region": region})
    assert st == 201, b
    grant(node, actor_id=aid, pattern=pattern, ops=("replicate",))
    return token_for(node, aid)


def pull(src, since=0, mode="full", token=None, pattern=None):
    q = {"since": since, "mode": mode, "limit": 5000}
    if pattern:
        q["pattern"] = pattern
    st, _, page = src.req("GET", "/federation/changes", query=q,
                          **({"token": token} if token else {}))
    assert st == 200, page
    return page


def push(dst, src_info, events, cp, token=None):
    body = {"source": {"node_id": src_info["node_id"], "epoch": src_info["epoch"]},
            "events": events, "checkpoint": {"seq": cp}}
    st, _, res = dst.req("POST", "/federation/ingest", body,
                         **({"token": token} if token else {}))
    assert st == 200, res
    return res


def info(node):
    return expect_ok(node.req("GET", "/federation/info"))


def put(node, uri, content, base=None):
    st, _, b = node.req("GET", "/artifacts", query={"uri": uri})
    if st == 404:
        return expect_ok(node.req("POST", "/artifacts", {"uri": uri, "content": content}), 201)
    body = {"content": content}
    if base is not None:
        body["base_version"] = base
    return expect_ok(node.req("PUT", "/artifacts", body, query={"uri": uri}))


@test
def info_and_changes_shape():
    eu = EU()
    i = info(eu)
    assert i["node_id"] == "eu-1" and i["region"] == "eu" and i["proto"] == 1
    assert len(i["epoch"]) == 32 and all(c in "0123456789abcdef" for c in i["epoch"])
    uri = "ctx://acme/fed/%s" % unique()
    put(eu, uri, "hello\n")
    page = pull(eu, mode="full")
    ev = [e for e in page["events"] if e["artifact_uri"] == uri][-1]
    assert ev["payload"] == {"encoding": "utf8", "data": "hello\n"}, ev
    assert ev["content_hash"] == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert ev["event_id"] == "eu-1:%d" % ev["origin"]["seq"]
    assert ev["payload_state"] == "inline" and ev["name"]
    meta = pull(eu, mode="metadata")
    assert all("payload" not in e for e in meta["events"])
    assert meta["head"] >= ev["seq"] and meta["node_id"] == "eu-1"
    expect_error(eu.req("GET", "/federation/changes", query={"mode": "bogus"}), 400, "bad_request")
    expect_error(eu.req("GET", "/federation/changes", query={"pattern": "ctx://a/b**"}), 400, "bad_request")


@test
def byte_budget_ends_page_on_whole_payloads():
    eu = EU()
    base = "ctx://acme/budget/%s" % unique()
    start = info(eu)["head_seq"]
    for i in range(5):
        put(eu, "%s-%d" % (base, i), "x" * 3000)
    q = {"since": start, "mode": "full", "max_bytes": 7000, "pattern": base.replace("ctx://acme/budget/", "ctx://acme/budget/") + "-*"}
    st, _, page = eu.req("GET", "/federation/changes", query=q)
    assert st == 200, page
    assert len(page["events"]) == 2 and page["has_more"], [e["artifact_uri"] for e in page["events"]]
    assert all(len(e["payload"]["data"]) == 3000 for e in page["events"])


@test
def ingest_applies_then_duplicates_and_checkpoints():
    eu, us = EU(), US()
    i = info(eu)
    uri = "ctx://acme/fed/%s" % unique()
    put(eu, uri, "one\n")
    put(eu, uri, {"k": [1, 2]})
    page = pull(eu)
    evs = [e for e in page["events"] if e["artifact_uri"] == uri]
    res = push(us, i, evs, page["next_since"])
    assert [r["status"] for r in res["results"]] == ["applied", "applied"], res
    assert res["checkpoint"]["seq"] == page["next_since"]
    again = push(us, i, evs, page["next_since"])
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    a_eu = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
    a_us = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
    for k in ("version_id", "parent_id", "content", "content_hash", "version", "origin", "author_id"):
        assert a_eu[k] == a_us[k], (k, a_eu[k], a_us[k])
    cp = expect_ok(us.req("GET", "/federation/checkpoints/eu-1"))
    assert cp["epoch"] == i["epoch"] and cp["seq"] == page["next_since"]
    # a lower checkpoint never moves it back
    push(us, i, [], 1)
    assert expect_ok(us.req("GET", "/federation/checkpoints/eu-1"))["seq"] == page["next_since"]
    # ingested events enter the target feed with a new seq, same event_id
    feed = expect_ok(us.req("GET", "/changes", query={"since": 0, "limit": 1000}))["events"]
    mine = [e for e in feed if e["artifact_uri"] == uri]
    assert [e["event_id"] for e in mine] == [e["event_id"] for e in evs]
    # replicate provenance on the target
    prov = expect_ok(us.req("GET", "/provenance", query={"uri": uri}))["records"]
    assert sum(1 for p in prov if p["operation"] == "replicate") == 2, prov


@test
def deferred_children_apply_when_parent_arrives():
    eu = EU()
    i = info(eu)
    uri = "ctx://acme/fed/%s" % unique()
    for n in range(4):
        put(eu, uri, "v%d\n" % n)
    evs = [e for e in pull(eu)["events"] if e["artifact_uri"] == uri]
    with Node(node_id="ap-1", region="ap") as ap:
        r1 = push(ap, i, evs[2:], 0)
        assert [r["status"] for r in r1["results"]] == ["deferred", "deferred"]
        expect_error(ap.req("GET", "/artifacts", query={"uri": uri}), 404)
        r2 = push(ap, i, evs[1:2], 0)
        assert [r["status"] for r in r2["results"]] == ["deferred"]
        r3 = push(ap, i, evs[:1], 0)
        assert [r["status"] for r in r3["results"]] == ["applied"]
        a = expect_ok(ap.req("GET", "/artifacts", query={"uri": uri}))
        assert a["version"] == 4 and a["content"] == "v3\n", a
        feed = expect_ok(ap.req("GET", "/changes", query={"since": 0}))["events"]
        versions = [e["version"] for e in feed if e["artifact_uri"] == uri]
        assert versions == [1, 2, 3, 4], "parents before children in the feed: %r" % versions


@test
def concurrent_writes_form_a_fork_and_keep_both():
    eu, us = EU(), US()
    i_eu, i_us = info(eu), info(us)
    uri = "ctx://acme/fork/%s" % unique()
    put(eu, uri, "base\n")
    page = pull(eu)
    push(us, i_eu, [e for e in page["events"] if e["artifact_uri"] == uri], 0)
    a = put(eu, uri, "eu edit\n")
    b = put(us, uri, "us edit\n")
    assert a["version"] == b["version"] == 2 and a["parent_id"] == b["parent_id"]
    ev_eu = [e for e in pull(eu)["events"] if e["version_id"] == a["version_id"]]
    ev_us = [e for e in pull(us)["events"] if e["version_id"] == b["version_id"]]
    r_us = push(us, i_eu, ev_eu, 0)
    r_eu = push(eu, i_us, ev_us, 0)
    assert r_us["results"][0]["status"] == "fork" and r_eu["results"][0]["status"] == "fork"
    h_eu = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
    h_us = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
    # the same provisional head and fork id on both nodes
    assert h_eu["version_id"] == h_us["version_id"], (h_eu["version_id"], h_us["version_id"])
    assert h_eu["forked"] and h_us["forked"] and h_eu["fork_id"] == h_us["fork_id"]
    expected = "f:" + hashlib.sha256((uri + "\n" + a["parent_id"]).encode()).hexdigest()
    assert h_eu["fork_id"] == expected
    for n in (eu, us):
        for v in (a, b):
            got = expect_ok(n.req("GET", "/artifacts", query={"uri": uri, "version_id": v["version_id"]}))
            assert got["content"] == v["content"]
        hist = expect_ok(n.req("GET", "/artifacts/history", query={"uri": uri}))["versions"]
        assert sorted(x["version_id"] for x in hist if x["version"] == 2) == sorted([a["version_id"], b["version_id"]])


@test
def hostile_batches_are_answered_per_event():
    eu, us = EU(), US()
    i = info(eu)
    uri = "ctx://acme/hostile/%s" % unique()
    put(eu, uri, "good\n")
    good = [e for e in pull(eu)["events"] if e["artifact_uri"] == uri][0]
    bad_hash = dict(good, payload={"encoding": "utf8", "data": "evil\n"})
    bad_vid = dict(good, version_id="v:" + "0" * 64)
    bad_types = dict(good, version="3")
    bad_uri = dict(good, artifact_uri="http://x")
    b64 = dict(good, payload={"encoding": "base64", "data": base64.b64encode(b"good\n").decode()})
    res = push(us, i, [bad_hash, bad_vid, bad_types, bad_uri, 42, None, {"unknown": True}, b64, b64], 0)
    st = [(r["status"], r.get("reason", "")) for r in res["results"]]
    assert [s for s, _ in st] == ["rejected"] * 7 + ["applied", "duplicate"], st
    assert "hash mismatch" in st[0][1] and "version_id" in st[1][1]
    dl = expect_ok(us.req("GET", "/federation/deadletters", query={"limit": 100}))["deadletters"]
    assert len(dl) >= 7 and all(d["source"] == "eu-1" and d["reason"] for d in dl)
    a = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
    assert a["content"] == "good\n"
    # batch limits and shapes
    expect_error(us.req("POST", "/federation/ingest", {"events": []}), 400, "bad_request")
    expect_error(us.req("POST", "/federation/ingest",
                        {"source": {"node_id": "eu-1", "epoch": i["epoch"]}, "events": [{}] * 10001}), 413)
    expect_error(us.req("POST", "/federation/ingest",
                        {"source": {"node_id": "us-1", "epoch": "x"}, "events": []}), 400, "bad_request")


@test
def metadata_mode_stores_remote_payload_state():
    eu = EU()
    i = info(eu)
    uri = "ctx://acme/meta/%s" % unique()
    put(eu, uri, "secret payload %s\n" % unique())
    evs = [e for e in pull(eu, mode="metadata")["events"] if e["artifact_uri"] == uri]
    with Node(node_id="mirror-1", region="us") as m:
        push(m, i, evs, 0)
        a = expect_ok(m.req("GET", "/artifacts", query={"uri": uri, "metadata_only": "1"}))
        assert a["payload_state"] == "remote" and a["content"] is None, a
        hist = expect_ok(m.req("GET", "/artifacts/history", query={"uri": uri}))["versions"]
        assert hist[0]["payload_state"] == "remote"
        # the payload is fetchable from its home node by version_id
        st, h, raw = eu.req("GET", "/federation/payload", query={"version_id": a["version_id"]})
        assert st == 200 and h["x-content-hash"] == a["content_hash"], (st, h)


@test
def federation_agent_is_least_privilege():
    eu = EU()
    tok = fed_agent(eu, "us", pattern="ctx://acme/scoped/**")
    uri_in = "ctx://acme/scoped/%s" % unique()
    uri_out = "ctx://acme/other/%s" % unique()
    put(eu, uri_in, "in\n")
    put(eu, uri_out, "out\n")
    expect_ok(eu.req("GET", "/federation/info", token=tok))
    page = pull(eu, token=tok)
    uris = {e["artifact_uri"] for e in page["events"]}
    assert uri_in in uris and uri_out not in uris
    # no normal reads, no grants, no actors
    expect_error(eu.req("GET", "/artifacts", query={"uri": uri_in}, token=tok), 403, "forbidden")
    expect_error(eu.req("POST", "/actors", {"actor_type": "human", "name": "x"}, token=tok), 403)
    expect_error(eu.req("POST", "/permissions", {"actor_id": "admin", "artifact_pattern": "**",
                                                  "operations": ["admin"]}, token=tok), 403)
    # an actor without any replicate grant cannot federate at all
    aid = unique("plain")
    create_actor(eu, aid)
    expect_error(eu.req("GET", "/federation/info", token=token_for(eu, aid)), 403, "forbidden")
    # ingest of an event outside the agent's patterns is rejected, not applied
    with Node(node_id="t-1", region="us") as t:
        ttok = fed_agent(t, "eu", pattern="ctx://acme/scoped/**")
        evs = [e for e in pull(eu)["events"] if e["artifact_uri"] in (uri_in, uri_out)]
        res = push(t, info(eu), evs, 0, token=ttok)
        got = {r["event_id"]: r["status"] for r in res["results"]}
        assert sorted(got.values()) == ["applied", "rejected"], got


@test
def versions_endpoint_lists_parents_first():
    eu = EU()
    uri = "ctx://acme/vers/%s" % unique()
    for n in range(3):
        put(eu, uri, "n%d\n" % n)
    vs = expect_ok(eu.req("GET", "/federation/versions", query={"uri": uri, "mode": "full"}))["versions"]
    assert [v["version"] for v in vs] == [1, 2, 3]
    assert vs[1]["parent_id"] == vs[0]["version_id"] and vs[2]["payload"]["data"] == "n2\n"


@test
def checkpoint_reset_by_the_link_agent_only():
    eu, us = EU(), US()
    push(us, info(eu), [], 7)
    # an actor without any replicate grant may not reset
    aid = unique("plain")
    create_actor(us, aid)
    expect_error(us.req("DELETE", "/federation/checkpoints/eu-1",
                        token=token_for(us, aid)), 403)
    # the link's replicate-only agent may (ctxsync-bridge reset-link)
    tok = fed_agent(us, "eu")
    st, _, _ = us.req("DELETE", "/federation/checkpoints/eu-1", token=tok)
    assert st == 204
    expect_error(us.req("GET", "/federation/checkpoints/eu-1"), 404, "not_found")
    expect_error(us.req("DELETE", "/federation/checkpoints/eu-1"), 404, "not_found")


@test
def reused_event_id_from_a_rebuilt_source_is_rejected_per_event():
    eu, us = EU(), US()
    i = info(eu)
    uri = "ctx://acme/reinit/%s" % unique()
    put(eu, uri, "old\n")
    ev = [e for e in pull(eu)["events"] if e["artifact_uri"] == uri][0]
    push(us, i, [ev], 0)
    with Node(node_id="eu-1", region="eu") as eu2:
        # the rebuilt node reuses seqs: its first write is "eu-1:1" again
        put(eu2, "ctx://acme/reinit/%s" % unique(), "new\n")
        ev2 = pull(eu2)["events"][0]
        assert ev2["event_id"] == "eu-1:1"
        other = [e for e in pull(eu)["events"] if e["event_id"] == "eu-1:1"]
        if other:   # the shared EU node used eu-1:1 for some other version
            res = push(us, info(eu2), [other[0]], 0)
        res = push(us, info(eu2), [ev2], 0)
        r = res["results"][0]
        assert r["status"] == "rejected" and "same node_id" in r["reason"], r


def new_epoch(node, *args):
    r = subprocess.run([bin_path("ctxsync-node"), "new-epoch", "--data", node.data_dir]
                       + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    out = r.stdout.decode().strip().splitlines()
    return r.returncode, (json.loads(out[-1]) if r.returncode == 0 else r.stderr.decode())


@test
def restore_support_origins_target_epoch_and_seq_floor():
    """What a restore relies on (docs/operations-node.md section 5): peers
    say the highest seq they hold from a node; ingest refuses a bridge
    session set up against another incarnation of the target; new-epoch
    needs to be told where seqs resume and publishes the lost range; an own
    event coming back moves the seq counter past it."""
    eu, us = EU(), US()
    ie = info(eu)
    assert ie["lost_seqs"] == [] and "origins" in ie["capabilities"], ie
    uri = "ctx://acme/origins/%s" % unique()
    put(eu, uri, "a\n")
    put(eu, uri, "b\n")
    evs = [e for e in pull(eu)["events"] if e["artifact_uri"] == uri]
    top = max(e["origin"]["seq"] for e in evs)
    push(us, ie, evs, 0)
    o = expect_ok(us.req("GET", "/federation/origins/eu-1"))
    assert o["node_id"] == "eu-1" and o["max_seq"] >= top and o["versions"] >= 2, o
    assert expect_ok(us.req("GET", "/federation/origins/nobody"))["max_seq"] == 0
    # the same permission as /federation/info
    aid = unique("plain")
    create_actor(us, aid)
    expect_error(us.req("GET", "/federation/origins/eu-1", token=token_for(us, aid)), 403)

    # ingest with the target's epoch: ok; with another one: 409, nothing stored
    iu = info(us)
    body = {"source": {"node_id": "eu-1", "epoch": ie["epoch"]}, "target": {"epoch": iu["epoch"]},
            "events": [], "checkpoint": {"seq": 1}}
    expect_ok(us.req("POST", "/federation/ingest", body))
    body["target"] = {"epoch": "0" * 32}
    e = expect_error(us.req("POST", "/federation/ingest", body), 409)
    assert e["error"] == "target_epoch_changed" and iu["epoch"] in e["message"], e
    body["target"] = {"nope": 1}
    expect_error(us.req("POST", "/federation/ingest", body), 400)

    if not sqlite_only("restores a file copy of the SQLite data dir as the "
                       "backup, then runs new-epoch on it"):
        return
    with Node(node_id="ap-1", region="ap") as ap:
        put(ap, "ctx://acme/origins/%s" % unique(), "x\n")
        head = info(ap)["head_seq"]
        ap.stop()
        backup = os.path.join(ap.tmp, "backup")
        shutil.copytree(ap.data_dir, backup)
        ap.start()
        for i in range(5):    # written after the backup, then lost
            put(ap, "ctx://acme/origins/%s" % unique(), "lost %d\n" % i)
        lost = pull(ap)["events"][-1]
        assert lost["origin"]["seq"] == head + 5, lost
        ap.stop()
        shutil.rmtree(ap.data_dir)
        shutil.copytree(backup, ap.data_dir)
        rc, err = new_epoch(ap)
        assert rc == 2 and "--peers FILE" in err and "--standalone" in err, (rc, err)
        rc, err = new_epoch(ap, "--seq-floor", "0")
        assert rc == 2 and "--seq-floor" in err, (rc, err)
        pf = os.path.join(ap.tmp, "peers.json")
        with open(pf, "w") as f:
            json.dump({"peers": [{"node_id": "us-1", "region": "us",
                                  "url": "http://127.0.0.1:9", "token": "x"}]}, f)
        rc, err = new_epoch(ap, "--peers", pf)
        assert rc == 1 and "us-1" in err and "unreachable" in err and "--seq-floor" in err, err
        # wrongly told it never replicated: the seqs resume right after the
        # backup's ...
        rc, ep = new_epoch(ap, "--standalone")
        assert rc == 0 and ep["next_seq"] == head + 1 and ep["lost_seqs"] is None, ep
        ap.start()
        assert info(ap)["lost_seqs"] == []
        # ... but one of its own lost events coming back from a peer moves
        # the counter past it: no later write reuses ap-1:<head + 5>
        res = push(ap, iu, [lost], 0)
        assert res["results"][0]["status"] == "applied", res
        u2 = "ctx://acme/origins/%s" % unique()
        v = put(ap, u2, "after\n")
        ev = [e for e in pull(ap)["events"] if e["version_id"] == v["version_id"]][0]
        assert ev["seq"] == head + 6 and ev["event_id"] == "ap-1:%d" % (head + 6), ev
        # --seq-floor: the next seq is the floor, the gap is published
        ap.stop()
        rc, ep = new_epoch(ap, "--seq-floor", str(head + 100))
        assert rc == 0 and ep["lost_seqs"] == [head + 7, head + 99], ep
        ap.start()
        assert info(ap)["lost_seqs"] == [[head + 7, head + 99]]
        v = put(ap, u2, "floor\n")
        ev = [e for e in pull(ap)["events"] if e["version_id"] == v["version_id"]][0]
        assert ev["seq"] == head + 100 and ev["event_id"] == "ap-1:%d" % (head + 100), ev

if __name__ == "__main__":
    run_tests()
