#!/usr/bin/env python3
"""Integration tests for `ctxsync forks` and `ctxsync residency` (docs/cli.md)
against real nodes.

Forks are made the way federation makes them (docs/forks.md): an artifact is
created on eu-1 and ingested into us-1, both sides then write version 2 on
the same parent, and the two versions are ingested across, so each node holds
the same fork.  The CLI then lists, shows and resolves it.
Standard library only; prints "N passed, M failed" last.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Node, Shared, bin_path, expect_ok, run_tests,  # noqa: E402
                     test, unique)

CLI = bin_path("ctxsync")
EU = Shared(node_id="eu-1", region="eu")
US = Shared(node_id="us-1", region="us")

HEADER = ["FORK_ID", "URI", "BRANCHES", "REGIONS", "DETECTED", "STATUS"]
RESOLVED_RE = re.compile(r"^resolved (f:[0-9a-f]{64}) by writing version (\d+) "
                         r"\(version_id (v:[0-9a-f]{64})\)$")


# --------------------------------------------------------------------------
# running the CLI

def cli(node, *args, token=None, timeout=60):
    """Runs ctxsync --url NODE --token TOKEN ARGS; returns (rc, out, err).
    token=None uses the node's admin token."""
    env = dict(os.environ)
    env.pop("CTXSYNC_URL", None)
    env.pop("CTXSYNC_TOKEN", None)
    cmd = [CLI]
    if node is not None:
        cmd += ["--url", node.url, "--token",
                node.admin_token if token is None else token]
    r = subprocess.run(cmd + list(args), env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def ok(node, *args, **kw):
    rc, out, err = cli(node, *args, **kw)
    assert rc == 0, "ctxsync %s: rc=%d\nstdout: %s\nstderr: %s" % (
        " ".join(args), rc, out, err)
    return out


def ok_json(node, *args, **kw):
    out = ok(node, "--json", *args, **kw)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("--json output is not JSON: %r" % out)


def fails(rc_want, node, *args, **kw):
    rc, out, err = cli(node, *args, **kw)
    assert rc == rc_want, "ctxsync %s: want rc=%d, got %d\nstdout: %s\n" \
        "stderr: %s" % (" ".join(args), rc_want, rc, out, err)
    return out, err


def table(out):
    """(header cells, rows of cells, counts line) of `forks list` output."""
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == HEADER, out
    assert lines[-1].startswith("open: "), out
    return [l.split() for l in lines[1:-1]], lines[-1]


def header_field(out, key):
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line[len(key) + 1:].strip()
    raise AssertionError("no %s: line in %r" % (key, out))


# --------------------------------------------------------------------------
# making forks with two nodes

def info(node):
    return expect_ok(node.req("GET", "/federation/info"))


def ingest(src, dst, uris):
    """Pushes src's events for `uris` into dst, as a federation link does."""
    i = info(src)
    uris = set(uris)
    since, events = 0, []
    while True:
        st, _, page = src.req("GET", "/federation/changes",
                              query={"since": since, "mode": "full",
                                     "limit": 5000})
        assert st == 200, (st, page)
        events += [e for e in page["events"] if e["artifact_uri"] in uris]
        if not page["has_more"]:
            break
        since = page["next_since"]
    for k in range(0, len(events), 1000):
        body = {"source": {"node_id": i["node_id"], "epoch": i["epoch"]},
                "events": events[k:k + 1000],
                "checkpoint": {"seq": page["next_since"]}}
        res = expect_ok(dst.req("POST", "/federation/ingest", body))
        bad = [r for r in res["results"] if r["status"] == "rejected"]
        assert not bad, bad


def make_forks(eu, us, n=1, eu_content="eu edit\n", us_content="us edit\n",
               domain=None):
    """n forks, each with an eu-1 branch and a us-1 branch on one parent.
    Returns [{uri, fork_id, eu, us}] where eu/us are the PUT answers."""
    domain = domain or unique("fk")
    uris = ["ctx://acme/%s/%s" % (domain, unique("a")) for _ in range(n)]
    for u in uris:
        expect_ok(eu.req("POST", "/artifacts", {"uri": u, "content": "base\n"}),
                  201)
    ingest(eu, us, uris)
    forks = []
    for u in uris:
        a = expect_ok(eu.req("PUT", "/artifacts", {"content": eu_content},
                             query={"uri": u}))
        b = expect_ok(us.req("PUT", "/artifacts", {"content": us_content},
                             query={"uri": u}))
        assert a["parent_id"] == b["parent_id"] and a["version"] == 2, (a, b)
        fid = "f:" + hashlib.sha256(
            (u + "\n" + a["parent_id"]).encode()).hexdigest()
        forks.append({"uri": u, "fork_id": fid, "eu": a, "us": b})
    ingest(eu, us, uris)
    ingest(us, eu, uris)
    for node in (eu, us):
        for f in forks:
            h = expect_ok(node.req("GET", "/artifacts", query={"uri": f["uri"]}))
            assert h["forked"] and h["fork_id"] == f["fork_id"], h
    return forks


def artifact(node, uri):
    return expect_ok(node.req("GET", "/artifacts", query={"uri": uri}))


def fork_status(node, fid):
    st, _, b = node.req("GET", "/forks/" + fid.replace(":", "%3A"))
    assert st == 200, (st, b)
    return b["status"]


# --------------------------------------------------------------------------
# no node needed

@test
def help_and_usage_errors():
    rc, out, _ = cli(None, "--help")
    assert rc == 0, out
    for s in ("forks [list]", "forks show ID", "forks resolve ID",
              "--content-file F", "residency check URI"):
        assert s in out, (s, out)
    for args in (["forks", "frob"], ["forks", "show"],
                 ["forks", "show", "a", "b"], ["forks", "resolve", "f:x"],
                 ["forks", "resolve", "f:x", "--keep", "v:1", "--content", "1"],
                 ["forks", "resolve", "f:x", "--content-file", "f",
                  "--content", "1"],
                 ["forks", "resolve", "f:x", "--keep", ""],
                 ["forks", "resolve", "f:x", "--keep", "v:1",
                  "--content-type", "text/plain"],
                 ["forks", "list", "--status", "bogus"],
                 ["forks", "list", "--limit", "0"],
                 ["forks", "list", "--limit", "x"],
                 ["forks", "list", "--keep", "v:1"],
                 ["forks", "list", "extra"],
                 ["forks", "show", "f:x", "--summary", "s"],
                 ["forks", "resolve", "f:x", "--keep", "v:1", "--status", "all"],
                 ["forks", "list", "--file", "x"],
                 ["residency"], ["residency", "check"],
                 ["residency", "frob", "ctx://a/b/c"],
                 ["residency", "check", "ctx://a/b/c", "ctx://a/b/d"]):
        rc, out, err = cli(None, "--url", "http://127.0.0.1:1", *args)
        assert rc == 2, "%r: rc=%d err=%s" % (args, rc, err)
        assert "usage: ctxsync" in err and out == "", (args, out, err)


# --------------------------------------------------------------------------
# against two nodes

@test
def list_show_resolve_keep():
    with Node(node_id="eu-1", region="eu") as eu, \
            Node(node_id="us-1", region="us") as us:
        f = make_forks(eu, us)[0]
        fid, uri = f["fork_id"], f["uri"]
        # list: one open fork with both branches, on both nodes
        for node in (us, eu):
            rows, counts = table(ok(node, "forks", "list"))
            assert len(rows) == 1, rows
            r = rows[0]
            assert r[0] == fid[:14] and r[1] == uri and r[2] == "2", r
            assert sorted(r[3].split(",")) == ["eu", "us"], r
            assert r[5] == "open", r
            assert counts == "open: 1, resolved: 0", counts
        j = ok_json(us, "forks", "list")
        assert [x["fork_id"] for x in j["forks"]] == [fid], j
        assert len(j["forks"][0]["branches"]) == 2
        assert j["counts"] == {"open": 1, "resolved": 0}, j["counts"]

        # show: header, both branches, the diff from the provisional head
        head = artifact(us, uri)
        head_vid = head["version_id"]
        other = f["eu"] if head_vid == f["us"]["version_id"] else f["us"]
        out = ok(us, "forks", "show", fid)
        assert header_field(out, "fork_id") == fid, out
        assert header_field(out, "uri") == uri
        assert header_field(out, "status") == "open"
        assert header_field(out, "provisional") == head_vid
        assert header_field(out, "resolved_by") == "-"
        lines = out.splitlines()
        rows = {l.split()[0]: l for l in lines if l.startswith("v:")}
        assert set(rows) == {f["eu"]["version_id"][:14],
                             f["us"]["version_id"][:14]}, out
        assert rows[head_vid[:14]].rstrip().endswith("yes"), out
        assert not rows[other["version_id"][:14]].rstrip().endswith("yes"), out
        assert "--- %s (provisional head)" % head_vid[:14] in lines, out
        assert "+++ %s" % other["version_id"][:14] in lines, out
        assert "-" + head["content"].rstrip("\n") in lines, out
        assert "+" + other["content"].rstrip("\n") in lines, out
        assert any(l.startswith("-- 1 added, 1 removed") for l in lines), out
        # the short id that `forks list` shows works too
        assert ok(us, "forks", "show", fid[:14]) == out
        js = ok_json(us, "forks", "show", fid)
        assert js["fork_id"] == fid and len(js["branches"]) == 2, js
        assert len(js["diffs"]) == 1, js["diffs"]
        assert {b["content"] for b in js["branches"]} == {"eu edit\n",
                                                          "us edit\n"}

        # resolve by keeping the us branch
        out = ok(us, "forks", "resolve", fid, "--keep",
                 f["us"]["version_id"], "--summary", "keep us")
        m = RESOLVED_RE.match(out.strip())
        assert m and m.group(1) == fid and m.group(2) == "3", out
        a = artifact(us, uri)
        assert a["content"] == "us edit\n" and not a.get("forked"), a
        assert a["version_id"] == m.group(3) and a["version"] == 3, a

        rows, counts = table(ok(us, "forks", "list", "--status", "resolved"))
        assert len(rows) == 1 and rows[0][0] == fid[:14], rows
        assert rows[0][5] == "resolved", rows
        assert counts == "open: 0, resolved: 1", counts
        rows, counts = table(ok(us, "forks", "list"))
        assert rows == [] and counts == "open: 0, resolved: 1", (rows, counts)
        out = ok(us, "forks", "show", fid)
        assert header_field(out, "status") == "resolved", out
        assert header_field(out, "resolution") == m.group(3), out
        assert header_field(out, "resolved_by") == us.admin_id, out
        assert header_field(out, "head") == m.group(3), out
        assert not any(l.startswith("v:") and l.rstrip().endswith("yes")
                       for l in out.splitlines()), out

        # a second resolve is a conflict
        _, err = fails(1, us, "forks", "resolve", fid, "--keep",
                       f["eu"]["version_id"])
        assert err.startswith("error: ") and "(conflict, HTTP 409)" in err, err


@test
def resolve_with_content_file_and_content():
    eu, us = EU(), US()
    f2, f3, f4 = make_forks(eu, us, 3)
    tmp = tempfile.mkdtemp(prefix="cs-cli-forks-")
    txt = os.path.join(tmp, "merged.txt")
    with open(txt, "w") as fh:
        fh.write("eu edit\nus edit\n")
    out = ok(eu, "forks", "resolve", f2["fork_id"], "--content-file", txt,
             "--summary", "manual merge")
    m = RESOLVED_RE.match(out.strip())
    assert m and m.group(1) == f2["fork_id"], out
    a = artifact(eu, f2["uri"])
    assert a["content"] == "eu edit\nus edit\n" and a["summary"] == "manual merge", a
    assert a["version_id"] == m.group(3)

    # a .json file that parses is sent as JSON; the short fork id works
    js = os.path.join(tmp, "merged.json")
    with open(js, "w") as fh:
        fh.write('{"merged": [1, 2]}\n')
    ok(us, "forks", "resolve", f3["fork_id"][:14], "--content-file", js)
    assert artifact(us, f3["uri"])["content"] == {"merged": [1, 2]}

    # unusable input: nothing is sent, the fork stays open
    bad = os.path.join(tmp, "bad.txt")
    with open(bad, "wb") as fh:
        fh.write(b"\xff\xfe not utf-8\n")
    _, err = fails(1, us, "forks", "resolve", f4["fork_id"], "--content-file",
                   bad)
    assert "not valid UTF-8" in err, err
    fails(1, us, "forks", "resolve", f4["fork_id"], "--content-file",
          os.path.join(tmp, "missing.txt"))
    assert fork_status(us, f4["fork_id"]) == "open"

    # --content JSON, --json output
    res = ok_json(us, "forks", "resolve", f4["fork_id"], "--content",
                  '{"k": 1}')
    assert res["fork"]["fork_id"] == f4["fork_id"], res
    assert res["fork"]["status"] == "resolved", res
    assert res["version"]["version"] == 3, res
    assert artifact(us, f4["uri"])["content"] == {"k": 1}


@test
def keep_accepts_the_short_version_id():
    eu, us = EU(), US()
    f = make_forks(eu, us, eu_content="left\n", us_content="right\n")[0]
    out = ok(eu, "forks", "show", f["fork_id"])
    assert f["eu"]["version_id"][:14] in out, out
    ok(eu, "forks", "resolve", f["fork_id"][:14], "--keep",
       f["eu"]["version_id"][:14])
    a = artifact(eu, f["uri"])
    assert a["content"] == "left\n" and not a.get("forked"), a


@test
def bad_ids_exit_1():
    eu, us = EU(), US()
    for args in (["forks", "show", "f:nope"],
                 ["forks", "show", "f:" + "0" * 64],
                 ["forks", "resolve", "f:" + "0" * 64, "--keep",
                  "v:" + "0" * 64]):
        out, err = fails(1, eu, *args)
        assert out == "" and "(not_found, HTTP 404)" in err, (args, err)
        assert err.startswith("error: "), err
    # keep must name a tip of the fork
    f = make_forks(eu, us)[0]
    _, err = fails(1, eu, "forks", "resolve", f["fork_id"], "--keep",
                   "v:" + "0" * 64)
    assert "(bad_request, HTTP 400)" in err, err
    assert fork_status(eu, f["fork_id"]) == "open"
    # no credentials
    _, err = fails(1, eu, "forks", "list", token="nope")
    assert "(unauthenticated, HTTP 401)" in err, err


@test
def list_follows_cursor_and_limit_takes_one_page():
    eu, us = EU(), US()
    domain = unique("pg")
    n = 57  # more than one page at the node's default page size (50)
    forks = make_forks(eu, us, n, domain=domain)
    pattern = "ctx://acme/%s/**" % domain
    rows, _ = table(ok(us, "forks", "list", "--pattern", pattern))
    assert len(rows) == n, len(rows)
    assert {r[0] for r in rows} == {f["fork_id"][:14] for f in forks}
    j = ok_json(us, "forks", "list", "--pattern", pattern)
    assert sorted(x["fork_id"] for x in j["forks"]) == sorted(
        f["fork_id"] for f in forks)
    assert not j.get("next_cursor"), j.get("next_cursor")
    rc, out, err = cli(us, "forks", "list", "--pattern", pattern, "--limit", "5")
    assert rc == 0, err
    rows, _ = table(out)
    assert len(rows) == 5 and "note: more forks match" in err, (rows, err)
    j = ok_json(us, "forks", "list", "--pattern", pattern, "--limit", "5")
    assert len(j["forks"]) == 5 and j["next_cursor"], j
    rows, _ = table(ok(us, "forks", "list", "--status", "all",
                       "--pattern", pattern))
    assert len(rows) == n


@test
def residency_check():
    eu = EU()
    uri = "ctx://acme/docs/%s" % unique("r")
    st, _, b = eu.req("GET", "/residency/check", query={"uri": uri})
    if st == 404 and isinstance(b, dict) and \
            b.get("message", "").startswith("no such endpoint"):
        out, err = fails(1, eu, "residency", "check", uri)
        assert out == "", out
        assert err == "error: this node has no residency support yet\n", err
        return
    assert st == 200, (st, b)
    out = ok(eu, "residency", "check", uri)
    assert header_field(out, "uri") == uri, out
    for key in ("rule", "home_region", "index", "payload", "on_demand",
                "cache"):
        header_field(out, key)
    j = ok_json(eu, "residency", "check", uri)
    assert j["uri"] == uri and "rule" in j and "explanation" in j, j


if __name__ == "__main__":
    run_tests()
