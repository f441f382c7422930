"""Fork detection and the review queue (federation.md §4, docs/forks.md):
both branches kept, the same fork_id and provisional head on every node,
review API, resolution by keep or merged content, merges closing the fork
everywhere, concurrent resolutions becoming a new fork, delete-vs-edit and
double-create forks, permissions and metrics."""
import hashlib
import os
import sqlite3

from harness import (Node, create_actor, expect_error, expect_ok, grant,
                     run_tests, sqlite_only_test, test, token_for, unique)


def info(n):
    return expect_ok(n.req("GET", "/federation/info"))


def sync(src, dst):
    """Everything src has that dst lacks (full mode, one page)."""
    i = info(src)
    page = expect_ok(src.req("GET", "/federation/changes",
                             query={"since": 0, "mode": "full", "limit": 5000}))
    body = {"source": {"node_id": i["node_id"], "epoch": i["epoch"]},
            "events": page["events"], "checkpoint": {"seq": page["next_since"]}}
    res = expect_ok(dst.req("POST", "/federation/ingest", body))
    return [r["status"] for r in res["results"]]


def fork_pair(eu, us, uri, base, a, b):
    expect_ok(eu.req("POST", "/artifacts", {"uri": uri, "content": base}), 201)
    sync(eu, us)
    va = expect_ok(eu.req("PUT", "/artifacts", {"content": a, "summary": "eu edit"}, query={"uri": uri}))
    vb = expect_ok(us.req("PUT", "/artifacts", {"content": b, "summary": "us edit"}, query={"uri": uri}))
    assert "fork" in sync(us, eu) and "fork" in sync(eu, us)
    return va, vb


def fork_of(n, uri):
    forks = expect_ok(n.req("GET", "/forks", query={"status": "all", "limit": 500}))["forks"]
    mine = [f for f in forks if f["uri"] == uri]
    assert mine, forks
    return mine


@test
def fork_detected_identically_on_both_nodes():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        va, vb = fork_pair(eu, us, uri, "a\nb\nc\n", "a\nEU\nc\n", "a\nUS\nc\n")
        fe, fu = fork_of(eu, uri), fork_of(us, uri)
        assert len(fe) == len(fu) == 1
        fe, fu = fe[0], fu[0]
        expected = "f:" + hashlib.sha256((uri + "\n" + va["parent_id"]).encode()).hexdigest()
        assert fe["fork_id"] == fu["fork_id"] == expected
        assert fe["status"] == fu["status"] == "open"
        assert fe["provisional_head"] == fu["provisional_head"]
        assert sorted(b["version_id"] for b in fe["branches"]) == sorted([va["version_id"], vb["version_id"]])
        assert {b["origin"]["region"] for b in fe["branches"]} == {"eu", "us"}
        for n in (eu, us):
            a = expect_ok(n.req("GET", "/artifacts", query={"uri": uri}))
            assert a["forked"] is True and a["fork_id"] == expected
            assert a["version_id"] == fe["provisional_head"]
            for v in (va, vb):   # every branch readable by version_id
                got = expect_ok(n.req("GET", "/artifacts", query={"uri": uri, "version_id": v["version_id"]}))
                assert got["content"] == v["content"]
        # the queue counts and the detail view with a line diff
        lst = expect_ok(eu.req("GET", "/forks"))
        assert lst["counts"]["open"] == 1 and lst["counts"]["resolved"] == 0
        d = expect_ok(eu.req("GET", "/forks/" + expected))
        assert len(d["diffs"]) == 1 and d["diffs"][0]["lines"]["stats"] == {"added": 1, "removed": 1, "unchanged": 2}
        assert d["diffs"][0]["json_patch"] is None
        assert {b["content"] for b in d["branches"]} == {"a\nEU\nc\n", "a\nUS\nc\n"}
        assert sum(1 for b in d["branches"] if b["provisional_head"]) == 1
        m = eu.req("GET", "/metrics")[2]
        assert 'ctxsync_forks_open{org="acme",domain="docs"} 1' in m, m[-800:]
        assert 'ctxsync_forks_open_by_region{region="eu"} 1' in m, m[-800:]
        assert 'ctxsync_forks_open_by_region{region="us"} 1' in m, m[-800:]


@test
def resolve_keep_replicates_and_closes_everywhere():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        va, vb = fork_pair(eu, us, uri, {"k": 1}, {"k": 2, "eu": True}, {"k": 3})
        fid = fork_of(eu, uri)[0]["fork_id"]
        d = expect_ok(eu.req("GET", "/forks/" + fid))
        assert d["diffs"][0]["json_patch"], d["diffs"]
        res = expect_ok(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": vb["version_id"], "summary": "take US"}))
        assert res["fork"]["status"] == "resolved"
        merge = res["version"]
        assert merge["parent_id"] == vb["version_id"] and merge["merged_from"] == [va["version_id"]]
        assert merge["content"] == {"k": 3} and merge["version"] == 3
        assert res["fork"]["resolution_version_id"] == merge["version_id"]
        a = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
        assert a["forked"] is False and a["content"] == {"k": 3}
        expect_error(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": vb["version_id"]}), 409, "conflict")
        # the merge replicates and closes the fork on us-1 with the same record
        sync(eu, us)
        fu = expect_ok(us.req("GET", "/forks/" + fid))
        assert fu["status"] == "resolved" and fu["resolution_version_id"] == merge["version_id"]
        assert fu["resolved_by"] == "admin"
        a = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
        assert a["forked"] is False and a["version_id"] == merge["version_id"]
        # history keeps every branch
        h = expect_ok(us.req("GET", "/artifacts/history", query={"uri": uri}))["versions"]
        assert len(h) == 4


@test
def resolve_with_merged_content():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        fork_pair(eu, us, uri, "x\n", "x\neu\n", "x\nus\n")
        fid = fork_of(us, uri)[0]["fork_id"]
        res = expect_ok(us.req("POST", "/forks/%s/resolve" % fid, {"content": "x\neu\nus\n", "summary": "both"}))
        assert res["version"]["content"] == "x\neu\nus\n" and len(res["version"]["merged_from"]) == 1
        sync(us, eu)
        a = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
        assert a["content"] == "x\neu\nus\n" and not a["forked"]
        assert expect_ok(eu.req("GET", "/forks/" + fid))["status"] == "resolved"


@test
def concurrent_resolutions_make_a_new_flagged_fork():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        va, vb = fork_pair(eu, us, uri, "0\n", "eu\n", "us\n")
        fid = fork_of(eu, uri)[0]["fork_id"]
        m1 = expect_ok(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": va["version_id"]}))["version"]
        m2 = expect_ok(us.req("POST", "/forks/%s/resolve" % fid, {"keep": va["version_id"]}))["version"]
        assert m1["version_id"] != m2["version_id"] and m1["parent_id"] == m2["parent_id"]
        sync(eu, us)
        sync(us, eu)
        for n in (eu, us):
            forks = fork_of(n, uri)
            new = [f for f in forks if f["parent_id"] == va["version_id"]]
            assert len(new) == 1 and new[0]["status"] == "open", forks
            assert sorted(b["version_id"] for b in new[0]["branches"]) == sorted([m1["version_id"], m2["version_id"]])
            old = [f for f in forks if f["fork_id"] == fid][0]
            assert old["status"] == "resolved"
        # both nodes picked the same provisional head
        h1 = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
        h2 = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
        assert h1["version_id"] == h2["version_id"] and h1["forked"] and h2["forked"]


@test
def delete_versus_edit_and_double_create():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        expect_ok(eu.req("POST", "/artifacts", {"uri": uri, "content": "keep me\n"}), 201)
        sync(eu, us)
        expect_ok(eu.req("DELETE", "/artifacts", query={"uri": uri}))
        edit = expect_ok(us.req("PUT", "/artifacts", {"content": "edited\n"}, query={"uri": uri}))
        sync(eu, us)
        sync(us, eu)
        for n in (eu, us):
            a = expect_ok(n.req("GET", "/artifacts", query={"uri": uri}))
            # a non-deleted tip beats the tombstone
            assert a["version_id"] == edit["version_id"] and a["forked"], a
            f = fork_of(n, uri)[0]
            assert sorted(b["deleted"] for b in f["branches"]) == [False, True]
        # two creations of one URI on two nodes: a fork with a null parent
        uri2 = "ctx://acme/docs/%s" % unique()
        expect_ok(eu.req("POST", "/artifacts", {"uri": uri2, "content": "eu first\n"}), 201)
        expect_ok(us.req("POST", "/artifacts", {"uri": uri2, "content": "us first\n"}), 201)
        sync(eu, us)
        sync(us, eu)
        fe, fu = fork_of(eu, uri2)[0], fork_of(us, uri2)[0]
        assert fe["parent_id"] is None and fe["fork_id"] == fu["fork_id"]
        assert fe["fork_id"] == "f:" + hashlib.sha256((uri2 + "\n").encode()).hexdigest()


@test
def review_needs_approve_and_input_is_checked():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        va, vb = fork_pair(eu, us, uri, "0\n", "1\n", "2\n")
        fid = fork_of(eu, uri)[0]["fork_id"]
        reader = unique("r")
        create_actor(eu, reader)
        grant(eu, actor_id=reader, pattern="ctx://acme/**", ops=("read", "write"))
        rt = token_for(eu, reader)
        assert expect_ok(eu.req("GET", "/forks", token=rt))["forks"] == []
        expect_error(eu.req("GET", "/forks/" + fid, token=rt), 403, "forbidden")
        expect_error(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": va["version_id"]}, token=rt), 403)
        approver = unique("ap")
        create_actor(eu, approver)
        grant(eu, actor_id=approver, pattern="ctx://acme/docs/**", ops=("approve",))
        at = token_for(eu, approver)
        assert len(expect_ok(eu.req("GET", "/forks", token=at))["forks"]) == 1
        expect_error(eu.req("GET", "/forks/f:nope"), 404, "not_found")
        expect_error(eu.req("POST", "/forks/%s/resolve" % fid, {}), 400, "bad_request")
        expect_error(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": va["version_id"], "content": "x"}), 400)
        expect_error(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": "v:" + "0" * 64}), 400, "bad_request")
        expect_error(eu.req("GET", "/forks", query={"status": "weird"}), 400)
        expect_error(eu.req("GET", "/forks", query={"pattern": "ctx://a**"}), 400)
        expect_ok(eu.req("POST", "/forks/%s/resolve" % fid, {"keep": va["version_id"]}, token=at))
        lst = expect_ok(eu.req("GET", "/forks", query={"status": "resolved"}))
        assert lst["counts"] == {"open": 0, "resolved": 1} and len(lst["forks"]) == 1


@test
def region_priority_policy_resolves_with_an_ordinary_merge():
    pol = ["--fork-policy", "ctx://acme/auto/**=region-priority:eu,us"]
    with Node(node_id="eu-1", region="eu", extra_args=pol) as eu, \
            Node(node_id="us-1", region="us", extra_args=pol) as us:
        uri = "ctx://acme/auto/%s" % unique()
        va, vb = fork_pair(eu, us, uri, "base\n", "eu\n", "us\n")
        # eu-1 wrote the kept (eu) branch: it wrote the merge when the us
        # branch arrived; the fork is recorded, resolved, and revisitable
        fe = fork_of(eu, uri)[0]
        assert fe["status"] == "resolved" and fe["policy"] == "region-priority:eu,us", fe
        assert fe["resolved_by"] == "policy:region-priority"
        a = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
        assert a["content"] == "eu\n" and not a["forked"] and a["merged_from"] == [vb["version_id"]]
        # us-1 recorded it under the policy, wrote no competing merge, and
        # closed it with eu-1's merge (which came with the eu branch)
        sync(eu, us)
        fu = fork_of(us, uri)[0]
        assert fu["policy"] == "region-priority:eu,us"
        assert fu["status"] == "resolved" and fu["resolution_version_id"] == fe["resolution_version_id"]
        assert len(fork_of(us, uri)) == 1      # no duelling merges
        b = expect_ok(us.req("GET", "/artifacts", query={"uri": uri}))
        assert b["version_id"] == a["version_id"]
        # manual elsewhere
        other = "ctx://acme/docs/%s" % unique()
        fork_pair(eu, us, other, "1\n", "2\n", "3\n")
        assert fork_of(eu, other)[0]["status"] == "open"


@test
def lww_policy_and_bad_policy_flags():
    pol = ["--fork-policy", "**=lww"]
    with Node(node_id="eu-1", region="eu", extra_args=pol) as eu, \
            Node(node_id="us-1", region="us", extra_args=pol) as us:
        uri = "ctx://acme/lww/%s" % unique()
        va, vb = fork_pair(eu, us, uri, "0\n", "older\n", "newer\n")
        sync(eu, us)
        sync(us, eu)
        for n in (eu, us):
            f = fork_of(n, uri)[0]
            assert f["status"] == "resolved" and f["policy"] == "lww", f
            assert expect_ok(n.req("GET", "/artifacts", query={"uri": uri}))["content"] == "newer\n"
    import subprocess
    from harness import bin_path
    for bad in ("**", "**=fastest", "ctx://a**=lww", "**=region-priority:"):
        r = subprocess.run([bin_path("ctxsync-node"), "serve", "--data", "/nonexistent",
                            "--fork-policy", bad], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        assert r.returncode == 2 and b"fork-policy" in r.stderr + r.stdout or r.returncode == 2, (bad, r)


def sync_events(src, dst, events):
    i = info(src)
    body = {"source": {"node_id": i["node_id"], "epoch": i["epoch"]},
            "events": events, "checkpoint": None}
    return [r["status"] for r in expect_ok(dst.req("POST", "/federation/ingest", body))["results"]]


def state(n, uris):
    """(version ids, fork records, provisional heads) of uris on n."""
    vids, heads = {}, {}
    for u in uris:
        st, _, h = n.req("GET", "/artifacts/history", query={"uri": u})
        vids[u] = sorted(v["version_id"] for v in h["versions"]) if st == 200 else []
        st, _, a = n.req("GET", "/artifacts", query={"uri": u, "metadata_only": "1"})
        heads[u] = (a.get("version_id"), a.get("forked")) if st == 200 else (st, a.get("deleted"))
    forks = expect_ok(n.req("GET", "/forks", query={"status": "all", "limit": 500}))["forks"]
    recs = sorted((f["fork_id"], f["status"], f["parent_id"], f["resolution_version_id"],
                   tuple(sorted(b["version_id"] for b in f["branches"]))) for f in forks)
    return vids, recs, heads


@test
def three_way_fork_across_three_nodes():
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us, \
            Node(node_id="ap-1", region="ap") as ap:
        uri = "ctx://acme/docs/%s" % unique()
        expect_ok(eu.req("POST", "/artifacts", {"uri": uri, "content": "0\n"}), 201)
        sync(eu, us)
        sync(eu, ap)
        for n, c in ((eu, "eu\n"), (us, "us\n"), (ap, "ap\n")):
            expect_ok(n.req("PUT", "/artifacts", {"content": c}, query={"uri": uri}))
        nodes = (eu, us, ap)
        for a in nodes:
            for b in nodes:
                if a is not b:
                    sync(a, b)
        recs = [fork_of(n, uri) for n in nodes]
        assert all(len(r) == 1 for r in recs), recs
        assert len({r[0]["fork_id"] for r in recs}) == 1
        assert all(len(r[0]["branches"]) == 3 for r in recs)
        heads = {expect_ok(n.req("GET", "/artifacts", query={"uri": uri}))["version_id"] for n in nodes}
        assert len(heads) == 1, heads
        # one resolution anywhere closes it everywhere
        fid = recs[0][0]["fork_id"]
        keep = [b["version_id"] for b in recs[0][0]["branches"] if b["origin"]["region"] == "ap"][0]
        expect_ok(ap.req("POST", "/forks/%s/resolve" % fid, {"keep": keep}))
        sync(ap, eu)
        sync(ap, us)
        for n in nodes:
            assert expect_ok(n.req("GET", "/forks/" + fid))["status"] == "resolved"
            a = expect_ok(n.req("GET", "/artifacts", query={"uri": uri}))
            assert a["content"] == "ap\n" and not a["forked"]


@test
def fork_discovered_only_through_backfill():
    """The second branch reaches eu-1 only as the parent of a deferred
    child: the fork is detected when the backfilled parent is applied."""
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        uri = "ctx://acme/docs/%s" % unique()
        expect_ok(eu.req("POST", "/artifacts", {"uri": uri, "content": "0\n"}), 201)
        sync(eu, us)
        expect_ok(eu.req("PUT", "/artifacts", {"content": "eu\n"}, query={"uri": uri}))
        b2 = expect_ok(us.req("PUT", "/artifacts", {"content": "us\n"}, query={"uri": uri}))
        b3 = expect_ok(us.req("PUT", "/artifacts", {"content": "us2\n"}, query={"uri": uri}))
        vs = expect_ok(us.req("GET", "/federation/versions", query={"uri": uri, "mode": "full"}))["versions"]
        v3 = [v for v in vs if v["version_id"] == b3["version_id"]]
        v2 = [v for v in vs if v["version_id"] == b2["version_id"]]
        assert sync_events(us, eu, v3) == ["deferred"]
        assert expect_ok(eu.req("GET", "/forks"))["counts"]["open"] == 0
        assert sync_events(us, eu, v2) == ["fork"]     # backfill completes it
        f = fork_of(eu, uri)[0]
        assert f["status"] == "open" and len(f["branches"]) == 2
        a = expect_ok(eu.req("GET", "/artifacts", query={"uri": uri}))
        # the longer us branch (version 3) is the provisional head
        assert a["version_id"] == b3["version_id"] and a["forked"]


@test
def property_random_interleavings_converge():
    """Random writes on three nodes, random partial syncs (partitions), then
    a full mesh sync: identical version sets, fork records and heads."""
    import random
    seed = int(__import__("os").environ.get("CS_PROP_SEED", "0")) or random.randrange(1 << 30)
    rnd = random.Random(seed)
    print("  (property seed %d: rerun with CS_PROP_SEED=%d)" % (seed, seed))
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us, \
            Node(node_id="ap-1", region="ap") as ap:
        nodes = [eu, us, ap]
        uris = ["ctx://acme/prop/%s-%d" % (unique(), k) for k in range(4)]
        for step in range(60):
            n = rnd.choice(nodes)
            u = rnd.choice(uris)
            act = rnd.random()
            if act < 0.55:
                st, _, a = n.req("GET", "/artifacts", query={"uri": u, "metadata_only": "1"})
                if st == 404 and not a.get("deleted"):
                    n.req("POST", "/artifacts", {"uri": u, "content": "c%d\n" % step})
                elif st == 200:
                    n.req("PUT", "/artifacts", {"content": "s%d\n" % step}, query={"uri": u})
            elif act < 0.6:
                n.req("DELETE", "/artifacts", query={"uri": u})
            elif act < 0.7:
                fs = expect_ok(n.req("GET", "/forks"))["forks"]
                if fs:
                    f = rnd.choice(fs)
                    n.req("POST", "/forks/%s/resolve" % f["fork_id"], {"keep": f["provisional_head"]}
                          if rnd.random() < 0.5 else {"content": "merged %d\n" % step})
            else:
                a, b = rnd.sample(nodes, 2)
                sync(a, b)      # a partial heal in one direction
        for _ in range(3):      # heal everything
            for a in nodes:
                for b in nodes:
                    if a is not b:
                        sync(a, b)
        states = [state(n, uris) for n in nodes]
        for k, name in ((0, "version sets"), (1, "fork records"), (2, "provisional heads")):
            assert states[0][k] == states[1][k] == states[2][k], (
                "seed %d: %s differ:\n%r\n%r\n%r" % (seed, name, states[0][k], states[1][k], states[2][k]))



@test
@sqlite_only_test("rewrites the SQLite file back to schema 4 with python sqlite3")
def migration_5_derives_tips_of_an_existing_database():
    """Schema 5 keeps a has_child flag (set by a trigger) instead of
    scanning for tips: a database from before it, with a resolved fork (a
    merge version with merged_from) and an open one, gets the same heads,
    tips and forks after the migration, and keeps them right afterwards."""
    with Node(node_id="eu-1", region="eu") as eu, Node(node_id="us-1", region="us") as us:
        u1, u2 = "ctx://acme/mig/%s" % unique(), "ctx://acme/mig/%s" % unique()
        fork_pair(eu, us, u1, "base\n", "eu\n", "us\n")
        fork_pair(eu, us, u2, "base\n", "eu2\n", "us2\n")
        f1 = fork_of(eu, u1)[0]
        expect_ok(eu.req("POST", "/forks/%s/resolve" % f1["fork_id"],
                         {"content": "merged\n", "summary": "merge"}))
        before = {u: expect_ok(eu.req("GET", "/artifacts", query={"uri": u})) for u in (u1, u2)}
        forks_before = sorted((f["fork_id"], f["status"]) for f in
                              expect_ok(eu.req("GET", "/forks", query={"status": "all"}))["forks"])
        assert eu.stop() == 0
        # back to schema 4: no flag, no index, no trigger
        db = sqlite3.connect(os.path.join(eu.data_dir, "ctxsync.db"))
        db.executescript("DROP TRIGGER versions_mark_parents; DROP INDEX versions_tips;"
                         "ALTER TABLE artifact_versions DROP COLUMN has_child;"
                         "PRAGMA user_version=4;")
        db.close()
        eu.start()
        for u in (u1, u2):
            a = expect_ok(eu.req("GET", "/artifacts", query={"uri": u}))
            assert (a["version_id"], a["forked"]) == (before[u]["version_id"], before[u]["forked"]), (a, before[u])
        assert before[u1]["forked"] is False and before[u2]["forked"] is True
        forks_after = sorted((f["fork_id"], f["status"]) for f in
                             expect_ok(eu.req("GET", "/forks", query={"status": "all"}))["forks"])
        assert forks_after == forks_before, (forks_before, forks_after)
        db = sqlite3.connect(os.path.join(eu.data_dir, "ctxsync.db"))
        tips = db.execute("SELECT uri, COUNT(*) FROM artifact_versions WHERE has_child = 0"
                          " AND uri IN (?, ?) GROUP BY uri", (u1, u2)).fetchall()
        db.close()
        assert dict(tips) == {u1: 1, u2: 2}, tips
        # new writes after the migration: the trigger keeps the flag
        v = expect_ok(eu.req("PUT", "/artifacts", {"content": "after\n"}, query={"uri": u1}))
        assert v["version"] == before[u1]["version"] + 1
        f2 = fork_of(eu, u2)[0]
        r = expect_ok(eu.req("POST", "/forks/%s/resolve" % f2["fork_id"],
                             {"content": "m2\n", "summary": "merge"}))
        a = expect_ok(eu.req("GET", "/artifacts", query={"uri": u2}))
        assert a["forked"] is False and a["version_id"] == r["version"]["version_id"], a


if __name__ == "__main__":
    run_tests()
