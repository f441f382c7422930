"""Integration tests of data residency (federation.md §5, docs/residency.md).

eu-1 (region eu) holds HR artifacts whose payloads are home-only in the EU;
us-1 (region us) mirrors it through a ctxsync-bridge.  The three enforcement
points (the source feed, the bridge, the target's ingest) are each tested on
their own, with the other two turned off by the test-only switch
CS_RESIDENCY_DISABLE; then on-demand reads (allowed, 403, 451, 503, hash
verification), the cache rules, provenance on both nodes, search and history
on a metadata-only mirror, and the proof that no HR payload byte exists
under the US data directory.
"""

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from harness import (Node, bin_path, create_actor, expect_error, grant,
                     run_tests, test, token_for, unique, wait_until)

HR = "ctx://acme/hr/**"

POLICY = {
    "regions": ["eu", "us", "ap", "sa"],
    "rules": [
        {"pattern": "ctx://acme/hr/**", "home_region": "eu",
         "payload": "home-only", "on_demand": "allow", "cache": False},
        {"pattern": "ctx://acme/legal/**", "home_region": "eu",
         "payload": "home-only", "on_demand": "deny", "cache": False},
        {"pattern": "ctx://acme/pub/**", "home_region": "eu",
         "payload": "replicate", "on_demand": "allow", "cache": True},
        {"pattern": "ctx://acme/apac/**", "home_region": "ap",
         "payload": "home-only", "on_demand": "allow", "cache": False},
        {"pattern": "ctx://acme/latam/**", "home_region": "sa",
         "payload": "home-only", "on_demand": "allow", "cache": False},
    ],
}

_TMP = tempfile.mkdtemp(prefix="cs-it-residency-")
_BRIDGES = []


def write_json(name, obj):
    path = os.path.join(_TMP, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


POLICY_FILE = write_json("policy.json", POLICY)


def q(uri):
    return urllib.parse.quote(uri, safe="")


@contextlib.contextmanager
def env(disable):
    """CS_RESIDENCY_DISABLE for the processes started inside."""
    old = os.environ.get("CS_RESIDENCY_DISABLE")
    if disable:
        os.environ["CS_RESIDENCY_DISABLE"] = disable
    else:
        os.environ.pop("CS_RESIDENCY_DISABLE", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CS_RESIDENCY_DISABLE", None)
        else:
            os.environ["CS_RESIDENCY_DISABLE"] = old


def node(node_id, region, disable=None, policy=True, peers=None):
    args = []
    if policy:
        args += ["--residency", POLICY_FILE]
    if peers is not None:
        args += ["--peers", peers]
    with env(disable):
        return Node(node_id, region, extra_args=args)


def fed_agent(n, region, actor_id):
    st, _, b = n.req("POST", "/actors", {
        "actor_id": actor_id, "actor_type": "agent", "name": actor_id,
        "agent_class": "federation", "region": region})
    assert st == 201, (st, b)
    grant(n, actor_id=actor_id, pattern="**", ops=("replicate",))
    return token_for(n, actor_id)


class Bridge:
    """One ctxsync-bridge process (eu -> us), as in test_bridge.py."""

    def __init__(self, src, src_tok, dst, dst_tok, mode="full",
                 residency=True, disable=None):
        self.tmp = tempfile.mkdtemp(prefix="cs-it-resbridge-")
        self.cfg = os.path.join(self.tmp, "bridge.json")
        self.ready = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "bridge.log")
        cfg = {"control": "ipc://" + os.path.join(self.tmp, "ctl.ipc"),
               "links": [{"name": "eu-to-us", "mode": mode,
                          "source": {"url": src.url, "token": src_tok},
                          "target": {"url": dst.url, "token": dst_tok}}]}
        if residency:
            shutil.copy(POLICY_FILE, os.path.join(self.tmp, "policy.json"))
            cfg["residency"] = "policy.json"  # relative to the config's dir
        with open(self.cfg, "w") as f:
            json.dump(cfg, f)
        _BRIDGES.append(self)
        with env(disable), open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [bin_path("ctxsync-bridge"), "run", "--config", self.cfg,
                 "--status", "127.0.0.1:0", "--ready-file", self.ready],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(lambda: os.path.exists(self.ready) or self.proc.poll()
                   is not None, 10)
        assert self.proc.poll() is None, self.log()
        with open(self.ready) as f:
            self.status_addr = [l.strip().partition("=")[2] for l in f
                                if l.startswith("status=")][0]

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def link(self):
        with urllib.request.urlopen("http://%s/status" % self.status_addr,
                                    timeout=10) as r:
            return json.loads(r.read())["links"][0]

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def bridged(fn):
    def run():
        try:
            fn()
        except BaseException:
            for b in _BRIDGES:
                print("  bridge log tail:\n    " +
                      "\n    ".join(b.log().splitlines()[-30:]))
            raise
        finally:
            while _BRIDGES:
                _BRIDGES.pop().close()
    run.__name__ = fn.__name__
    return test(run)


# --------------------------------------------------------------------------
# helpers

def create(n, uri, content, summary=None, token=None):
    body = {"uri": uri, "content": content}
    if summary:
        body["summary"] = summary
    kw = {} if token is None else {"token": token}
    st, _, b = n.req("POST", "/artifacts", body, **kw)
    assert st == 201, (st, b)
    return b


def marker():
    return "HRSECRET-" + unique("m") + "-DO-NOT-LEAVE-EU"


def no_bytes_at_rest(node, needle):
    """True when `needle` occurs nowhere in what the node's store keeps at
    rest: SQLite: no file under its data dir (database, WAL, shared memory,
    blob files); PostgreSQL: not in its database (Node.at_rest())."""
    nb = needle.encode()
    return not any(nb in data for data in node.at_rest().values())


def wait_version(n, uri, version_id, timeout=20):
    def ok():
        st, _, b = n.req("GET", "/artifacts", query={
            "uri": uri, "version_id": version_id, "metadata_only": 1})
        return st == 200 and b
    return wait_until(ok, timeout, 0.05,
                      "%s never got %s of %s" % (n.node_id, version_id, uri))


def state_on(n, uri, vid):
    b = wait_version(n, uri, vid)
    return b["payload_state"]


def deadletters(n):
    st, _, b = n.req("GET", "/federation/deadletters")
    assert st == 200, (st, b)
    return b["deadletters"]


def pair(eu_disable=None, us_disable=None, us_peers=None, us_policy=True):
    eu = node("eu-1", "eu", eu_disable)
    us = node("us-1", "us", us_disable, policy=us_policy, peers=us_peers)
    eu_tok = fed_agent(eu, "us", "fed-us")   # on eu-1, delivers to us
    us_tok = fed_agent(us, "eu", "fed-eu")   # on us-1, receives from eu
    return eu, us, eu_tok, us_tok


def write_hr_and_docs(eu):
    m = marker()
    hr = create(eu, "ctx://acme/hr/" + unique("p"),
                "salary review: " + m, summary="salary review 2026")
    doc = create(eu, "ctx://acme/docs/" + unique("d"), "public handbook",
                 summary="handbook")
    return m, hr, doc


# --------------------------------------------------------------------------
# start-up validation

@test
def bad_policy_and_peers_files_refused_at_start():
    n = Node("v-1", "eu", start=False)
    bad = write_json("bad.json", {"regions": ["eu", "us"], "rules": [
        {"pattern": "ctx://acme/**", "home_region": "us",
         "payload": "replicate"},
        {"pattern": "ctx://acme/a**b", "home_region": "eu",
         "payload": "home-only"},
        {"pattern": "ctx://acme/hr/**", "home_region": "eu",
         "payload": "home-only"},
        {"pattern": "ctx://x/y/**", "home_region": "mars",
         "payload": "home-only"}]})

    def serve(*args, disable=None):
        with env(disable):
            r = subprocess.run([bin_path("ctxsync-node"), "serve"] + n.store_args +
                               ["--listen", "127.0.0.1:0"] + list(args), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=20)
        return r.returncode, r.stderr.decode()

    rc, err = serve("--residency", bad)
    assert rc == 2, (rc, err)
    lines = [l.strip() for l in err.splitlines() if l.strip().startswith("error")]
    # every problem, in rule order
    assert "rule 2 (ctx://acme/a**b): bad pattern" in lines[0], err
    assert "rule 4 (ctx://x/y/**): unknown home_region \"mars\"" in lines[1], err
    # overlaps are judged once the rules themselves are valid
    assert len(lines) == 2, err
    fixed = write_json("overlap.json", {"rules": [
        {"pattern": "ctx://acme/**", "home_region": "us",
         "payload": "replicate"},
        {"pattern": "ctx://acme/hr/**", "home_region": "eu",
         "payload": "home-only"}]})
    rc, err = serve("--residency", fixed)
    assert rc == 2 and "rule 2 (ctx://acme/hr/**) overlaps rule 1 " \
        "(ctx://acme/**)" in err, (rc, err)
    rc, err = serve("--residency", os.path.join(_TMP, "missing.json"))
    assert rc == 2 and "cannot open" in err, (rc, err)
    peers = write_json("badpeers.json", {"peers": [
        {"node_id": "eu-1", "region": "eu", "url": "ftp://x",
         "token": "SECRETTOKEN"}]})
    rc, err = serve("--residency", POLICY_FILE, "--peers", peers)
    assert rc == 2 and "url must be" in err and "SECRETTOKEN" not in err, err
    rc, err = serve("--residency", POLICY_FILE, disable="everything")
    assert rc == 2 and "CS_RESIDENCY_DISABLE" in err, err
    n.close()


@test
def residency_check_explains_the_rule():
    eu = node("eu-1", "eu")
    uri = "ctx://acme/hr/" + unique("p")
    # any authenticated actor may ask (no grant needed)
    create_actor(eu, "nobody")
    tok = token_for(eu, "nobody")
    st, _, b = eu.req("GET", "/residency/check", query={"uri": uri},
                      token=tok)
    assert st == 200, (st, b)
    assert b["uri"] == uri and b["index"] == 1, b
    assert b["rule"] == {"pattern": HR, "home_region": "eu",
                         "payload": "home-only", "on_demand": "allow",
                         "cache": False}, b
    assert (b["home_region"], b["payload"], b["on_demand"], b["cache"]) == (
        "eu", "home-only", "allow", False), b
    assert b["explanation"] == (
        "rule 1 (ctx://acme/hr/**) matches: payloads are home-only in eu; "
        "on-demand reads allowed; not cached outside eu"), b
    st, _, b = eu.req("GET", "/residency/check",
                      query={"uri": "ctx://acme/legal/nda"})
    assert b["index"] == 2 and b["on_demand"] == "deny", b
    st, _, b = eu.req("GET", "/residency/check",
                      query={"uri": "ctx://acme/eng/spec"})
    assert st == 200 and b["rule"] is None and b["index"] is None, b
    assert b["payload"] == "replicate" and \
        b["explanation"] == "no rule matches: payloads replicate freely", b
    expect_error(eu.req("GET", "/residency/check"), 400, "bad_request")
    expect_error(eu.req("GET", "/residency/check", query={"uri": "x"}), 400,
                 "invalid_uri")
    expect_error(eu.req("GET", "/residency/check", query={"uri": uri},
                        token=None), 401, "unauthenticated")
    # the CLI prints the same
    r = subprocess.run([bin_path("ctxsync"), "--url", eu.url, "--token",
                        eu.admin_token, "residency", "check", uri],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    out = r.stdout.decode()
    assert r.returncode == 0 and "home-only" in out and \
        "rule 1 (ctx://acme/hr/**) matches" in out, (r.returncode, out,
                                                      r.stderr)
    # a node without a policy says so
    plain = node("plain-1", "us", policy=False)
    st, _, b = plain.req("GET", "/residency/check", query={"uri": uri})
    assert st == 200 and b["rule"] is None and \
        b["explanation"].startswith("no residency policy"), b


# --------------------------------------------------------------------------
# the three enforcement points, each on its own

@bridged
def feed_withholds_on_its_own():
    """Only the source feed enforces: the bridge and the target's ingest
    are switched off, yet no HR payload reaches us-1."""
    eu, us, eu_tok, us_tok = pair(us_disable="ingest")
    m, hr, doc = write_hr_and_docs(eu)
    # what a peer of region us gets from the feed, in every form
    st, _, b = eu.req("GET", "/federation/changes", token=eu_tok,
                      query={"since": 0, "mode": "full"})
    assert st == 200, (st, b)
    ev = {e["artifact_uri"]: e for e in b["events"]}
    h, d = ev[hr["uri"]], ev[doc["uri"]]
    assert h["payload_state"] == "withheld" and "payload" not in h, h
    assert h["home_region"] == "eu", h
    assert d["payload_state"] == "inline" and d["payload"]["data"] == \
        "public handbook" and d["home_region"] is None, d
    st, _, b = eu.req("GET", "/federation/versions", token=eu_tok,
                      query={"uri": hr["uri"], "mode": "full"})
    assert b["versions"][0]["payload_state"] == "withheld" and \
        "payload" not in b["versions"][0], b
    expect_error(eu.req("GET", "/federation/payload", token=eu_tok,
                        query={"version_id": hr["version_id"]}),
                 451, "residency_restricted")
    # the SSE stream too
    from harness import SSEClient
    with SSEClient(eu, token=eu_tok, path="/federation/stream",
                   query={"since": 0, "mode": "full"}) as c:
        assert c.wait_for(2), c.events
        got = {e["artifact_uri"]: e for e in c.changes()}
        assert got[hr["uri"]]["payload_state"] == "withheld" and \
            "payload" not in got[hr["uri"]], got
        assert got[doc["uri"]]["payload"]["data"] == "public handbook"
    # a peer of the home region gets it
    eu_peer = fed_agent(eu, "eu", "fed-eu-peer")
    st, _, b = eu.req("GET", "/federation/changes", token=eu_peer,
                      query={"since": 0, "mode": "full"})
    ev = {e["artifact_uri"]: e for e in b["events"]}
    assert ev[hr["uri"]]["payload_state"] == "inline" and \
        m in ev[hr["uri"]]["payload"]["data"], ev[hr["uri"]]
    # through a bridge that does not check (no residency configured)
    Bridge(eu, eu_tok, us, us_tok, residency=False)
    assert state_on(us, hr["uri"], hr["version_id"]) == "remote"
    assert state_on(us, doc["uri"], doc["version_id"]) == "inline"
    assert no_bytes_at_rest(us, m)


@bridged
def bridge_withholds_on_its_own():
    """Only the bridge enforces: eu-1's feed sends everything and us-1's
    ingest accepts everything."""
    eu, us, eu_tok, us_tok = pair(eu_disable="feed", us_disable="ingest")
    m, hr, doc = write_hr_and_docs(eu)
    st, _, b = eu.req("GET", "/federation/changes", token=eu_tok,
                      query={"since": 0, "mode": "full"})
    h = [e for e in b["events"] if e["artifact_uri"] == hr["uri"]][0]
    assert h["payload_state"] == "inline" and m in h["payload"]["data"], h
    br = Bridge(eu, eu_tok, us, us_tok, residency=True)
    assert state_on(us, hr["uri"], hr["version_id"]) == "remote"
    assert state_on(us, doc["uri"], doc["version_id"]) == "inline"
    wait_until(lambda: br.link()["counters"].get("withheld_payloads", 0) >= 1,
               10)
    assert br.link()["counters"]["rejected"] == 0
    assert no_bytes_at_rest(us, m)


@bridged
def ingest_rejects_on_its_own():
    """Only us-1's ingest enforces: the feed and the bridge let the HR
    payload through, ingest puts the event on the dead-letter list."""
    eu, us, eu_tok, us_tok = pair(eu_disable="feed")
    m, hr, doc = write_hr_and_docs(eu)
    br = Bridge(eu, eu_tok, us, us_tok, residency=True, disable="bridge")
    assert "BRIDGE-RESIDENCY-DISABLED" in br.log(), br.log()
    assert state_on(us, doc["uri"], doc["version_id"]) == "inline"

    def rejected():
        return [d for d in deadletters(us) if d["uri"] == hr["uri"]]
    dl = wait_until(rejected, 20)
    assert dl[0]["reason"] == "residency: payload of %s is home-only in eu" \
        % hr["uri"], dl
    assert dl[0]["version_id"] == hr["version_id"], dl
    wait_until(lambda: br.link()["counters"]["rejected"] >= 1, 10)
    assert br.link()["counters"]["withheld_payloads"] == 0
    st, _, _ = us.req("GET", "/artifacts", query={"uri": hr["uri"]})
    assert st == 404
    assert no_bytes_at_rest(us, m)


@test
def ingest_check_direct_and_the_control():
    """POST /federation/ingest with an inline HR payload: rejected by a
    us node that enforces, stored by one with the check off (so the tests
    above would see a leak)."""
    eu = node("eu-1", "eu", "feed")
    eu_tok = fed_agent(eu, "us", "fed-us")
    m, hr, doc = write_hr_and_docs(eu)
    st, _, b = eu.req("GET", "/federation/changes", token=eu_tok,
                      query={"since": 0, "mode": "full"})
    events = b["events"]
    assert all(e.get("payload") for e in events), events
    body = {"source": {"node_id": "eu-1", "epoch": eu.epoch},
            "events": events, "checkpoint": {"seq": b["next_since"]}}
    for disable, expect in ((None, "rejected"), ("ingest", "applied")):
        us = node("us-%s" % (disable or "on"), "us", disable)
        tok = fed_agent(us, "eu", "fed-eu")
        st, _, r = us.req("POST", "/federation/ingest", body, token=tok)
        assert st == 200, (st, r)
        res = {x["version_id"]: x for x in r["results"]}
        assert res[hr["version_id"]]["status"] == expect, res
        assert res[doc["version_id"]]["status"] == "applied", res
        if expect == "rejected":
            assert res[hr["version_id"]]["reason"].startswith(
                "residency: payload of ctx://acme/hr/"), res
            assert no_bytes_at_rest(us, m)
        else:
            us.req("POST", "/federation/ingest", body, token=tok)
            assert not no_bytes_at_rest(us, m)  # the control leaks
        us.close()


# --------------------------------------------------------------------------
# on-demand reads from a metadata-only mirror

class FakePeer(http.server.BaseHTTPRequestHandler):
    """A 'home node' that answers /federation/payload with wrong bytes."""

    def do_GET(self):
        body = b"tampered bytes"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def people(eu, us):
    """alice: read on HR in both regions; bob: known in the EU without the
    grant; carol: unknown in the EU.  Returns the US tokens."""
    toks = {}
    for who in ("alice", "bob", "carol"):
        create_actor(us, who)
        grant(us, actor_id=who, pattern="ctx://acme/**", ops=("read",))
        toks[who] = token_for(us, who)
    create_actor(eu, "alice")
    grant(eu, actor_id="alice", pattern="ctx://acme/**", ops=("read",))
    create_actor(eu, "bob")
    grant(eu, actor_id="bob", pattern="ctx://acme/docs/**", ops=("read",))
    return toks


def prov(n, uri, op="remote_fetch"):
    st, _, b = n.req("GET", "/provenance", query={"uri": uri})
    assert st == 200, (st, b)
    return [r for r in b["records"] if r["operation"] == op]


@bridged
def on_demand_reads_cache_and_provenance():
    fake = http.server.HTTPServer(("127.0.0.1", 0), FakePeer)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    eu = node("eu-1", "eu")
    eu_tok = fed_agent(eu, "us", "fed-us")
    peers = write_json("peers-%s.json" % unique("p"), {"peers": [
        {"node_id": "eu-1", "region": "eu", "url": eu.url, "token": eu_tok},
        {"node_id": "sa-1", "region": "sa",
         "url": "http://127.0.0.1:%d" % fake.server_address[1],
         "token": "x"}]})
    us = node("us-1", "us", peers=peers)
    us_tok = fed_agent(us, "eu", "fed-eu")
    toks = people(eu, us)
    m = marker()
    hr = create(eu, "ctx://acme/hr/" + unique("p"), "salary review " + m,
                summary="quarterly salary review")
    legal = create(eu, "ctx://acme/legal/nda", "nda " + m)
    pub = create(eu, "ctx://acme/pub/" + unique("p"), {"notice": "open"})
    apac = create(eu, "ctx://acme/apac/" + unique("p"), "apac " + m)
    latam = create(eu, "ctx://acme/latam/" + unique("p"), "latam " + m)
    Bridge(eu, eu_tok, us, us_tok, mode="metadata")
    for a in (hr, legal, pub, apac, latam):
        assert state_on(us, a["uri"], a["version_id"]) == "remote"

    # metadata only: no fetch
    st, _, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": hr["uri"], "metadata_only": 1})
    assert st == 200 and b["content"] is None and \
        b["payload_state"] == "remote" and b["summary"] == \
        "quarterly salary review", b
    assert prov(eu, hr["uri"]) == []

    # allowed: alice holds read on HR in the EU
    st, _, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": hr["uri"]})
    assert st == 200, (st, b)
    assert b["content"] == "salary review " + m, b
    assert b["payload_state"] == "remote" and \
        b["fetched_from"] == {"node_id": "eu-1", "region": "eu"}, b
    # provenance on both sides: who, which version, from where
    mine = prov(us, hr["uri"])
    assert len(mine) == 1 and mine[0]["actor_id"] == "alice" and \
        mine[0]["version_id"] == hr["version_id"], mine
    assert mine[0]["detail"]["from_node"] == "eu-1" and \
        mine[0]["detail"]["cached"] is False, mine
    theirs = prov(eu, hr["uri"])
    assert len(theirs) == 1 and theirs[0]["actor_id"] == "alice" and \
        theirs[0]["version_id"] == hr["version_id"], theirs
    assert theirs[0]["detail"]["peer_actor"] == "fed-us" and \
        theirs[0]["detail"]["peer_region"] == "us", theirs
    # alice sees her own rows
    st, _, b = us.req("GET", "/provenance", token=toks["alice"],
                      query={"uri": hr["uri"]})
    assert any(r["operation"] == "remote_fetch" for r in b["records"]), b
    # never written in the US (home-only, cache false)
    st, _, b = us.req("GET", "/artifacts", query={"uri": hr["uri"],
                                                   "metadata_only": 1})
    assert b["payload_state"] == "remote", b
    assert no_bytes_at_rest(us, m)

    # denied by the home node: bob lacks the EU grant, carol is unknown there
    for who in ("bob", "carol"):
        b = expect_error(us.req("GET", "/artifacts", token=toks[who],
                                query={"uri": hr["uri"]}), 403, "forbidden")
        assert b["home_region"] == "eu", b
    # the US grant is checked first, as for any read
    create_actor(us, "dave")
    expect_error(us.req("GET", "/artifacts", token=token_for(us, "dave"),
                        query={"uri": hr["uri"]}), 403, "forbidden")
    # on_demand deny: 451
    b = expect_error(us.req("GET", "/artifacts", token=toks["alice"],
                            query={"uri": legal["uri"]}),
                     451, "residency_restricted")
    assert b["home_region"] == "eu", b
    # no peer of the home region: 503 with Retry-After
    st, h, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": apac["uri"]})
    assert st == 503 and b["error"] == "unavailable" and \
        b["home_region"] == "ap" and h.get("retry-after"), (st, h, b)
    # a peer that sends bytes with the wrong SHA-256: 503, nothing kept
    st, h, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": latam["uri"]})
    assert st == 503 and b["home_region"] == "sa" and "hash" in \
        b["message"], (st, b)
    fake.shutdown()

    # cache: true (replicate rule): the fetched copy is kept
    st, _, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": pub["uri"]})
    assert st == 200 and b["content"] == {"notice": "open"} and \
        b["payload_state"] == "inline", b
    assert prov(us, pub["uri"])[0]["detail"]["cached"] is True
    n_eu = len(prov(eu, pub["uri"]))
    st, _, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": pub["uri"]})
    assert st == 200 and "fetched_from" not in b, b
    assert len(prov(eu, pub["uri"])) == n_eu  # served locally now

    # search and history work on the metadata-only mirror
    st, _, b = us.req("GET", "/search", token=toks["alice"],
                      query={"q": "quarterly"})
    assert st == 200 and [r["uri"] for r in b["results"]] == [hr["uri"]], b
    st, _, b = us.req("GET", "/artifacts/history", token=toks["alice"],
                      query={"uri": hr["uri"]})
    assert st == 200 and b["versions"][0]["version_id"] == \
        hr["version_id"] and b["versions"][0]["payload_state"] == "remote"

    # home unreachable: 503
    eu.stop()
    st, h, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": hr["uri"]})
    assert st == 503 and b["error"] == "unavailable" and \
        b["home_region"] == "eu" and h.get("retry-after"), (st, b)
    # the proof: no HR payload byte anywhere under the US data directory
    assert no_bytes_at_rest(us, m)


@bridged
def reader_without_policy_obeys_the_home_nodes_cache_verdict():
    """A US node started without the policy file still never writes a
    home-only payload it fetched: the home node says X-Residency-Cache."""
    eu = node("eu-1", "eu")
    eu_tok = fed_agent(eu, "us", "fed-us")
    peers = write_json("peers-%s.json" % unique("p"), {"peers": [
        {"node_id": "eu-1", "region": "eu", "url": eu.url, "token": eu_tok}]})
    us = node("us-1", "us", policy=False, peers=peers)
    us_tok = fed_agent(us, "eu", "fed-eu")
    toks = people(eu, us)
    m = marker()
    hr = create(eu, "ctx://acme/hr/" + unique("p"), "review " + m)
    pub = create(eu, "ctx://acme/pub/" + unique("p"), "notice")
    Bridge(eu, eu_tok, us, us_tok, mode="metadata", residency=False)
    assert state_on(us, hr["uri"], hr["version_id"]) == "remote"
    assert state_on(us, pub["uri"], pub["version_id"]) == "remote"
    st, h, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": hr["uri"]})
    assert st == 200 and b["content"] == "review " + m and \
        b["payload_state"] == "remote", (st, b)
    assert prov(us, hr["uri"])[0]["detail"]["cached"] is False
    assert no_bytes_at_rest(us, m)
    st, _, b = us.req("GET", "/artifacts", token=toks["alice"],
                      query={"uri": pub["uri"]})
    assert st == 200 and b["payload_state"] == "inline", b


if __name__ == "__main__":
    try:
        run_tests()
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)
