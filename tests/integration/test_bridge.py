"""Integration tests of ctxsync-bridge against real ctxsync-node processes.

Two or three nodes (eu-1, us-1, ap-1) on loopback, a federation agent on
each (agent_class "federation", region = the region it delivers to, grant
replicate on **), and one ctxsync-bridge process per test, started from a
JSON config written into a temporary directory.  Every process is cleaned up
by PID.  See docs/bridge.md.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from harness import (Node, all_changes, bin_path, create_actor, grant,
                     run_tests, test, token_for, wait_until)

_BRIDGES = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fed_agent(node, region, actor_id="fed"):
    """A federation agent on node delivering to `region`; returns its token."""
    st, _, b = node.req("POST", "/actors", {
        "actor_id": actor_id, "actor_type": "agent", "name": actor_id,
        "agent_class": "federation", "region": region})
    assert st == 201, (st, b)
    grant(node, actor_id=actor_id, pattern="**", ops=("replicate",))
    return token_for(node, actor_id)


def link(name, src, src_token, dst, dst_token, **kw):
    d = {"name": name,
         "source": {"url": src.url, "token": src_token},
         "target": {"url": dst.url, "token": dst_token},
         "mode": "full"}
    d.update(kw)
    return d


class Bridge:
    """One ctxsync-bridge process."""

    def __init__(self, links, start=True, extra_config=None):
        self.tmp = tempfile.mkdtemp(prefix="cs-it-bridge-")
        self.cfg_path = os.path.join(self.tmp, "bridge.json")
        self.ready = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "bridge.log")
        self.control = "ipc://" + os.path.join(self.tmp, "control.ipc")
        self.proc = None
        self.status_addr = None
        self.tokens = []
        self.write_config(links, extra_config)
        _BRIDGES.append(self)
        if start:
            self.start()

    def write_config(self, links, extra_config=None):
        cfg = {"control": self.control, "links": links}
        cfg.update(extra_config or {})
        for l in links:
            for end in ("source", "target"):
                if "token" in l[end]:
                    self.tokens.append(l[end]["token"])
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)

    def start(self):
        try:
            os.unlink(self.ready)
        except FileNotFoundError:
            pass
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [bin_path("ctxsync-bridge"), "run", "--config", self.cfg_path,
             "--status", "127.0.0.1:0", "--ready-file", self.ready],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise AssertionError("bridge exited (rc=%s):\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError("bridge not ready:\n" + self.log_tail())
            time.sleep(0.02)
        with open(self.ready) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k == "status":
                    self.status_addr = v
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (fails if it does not exit)."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError("bridge did not stop within %ss:\n%s" % (
                timeout, self.log_tail()))

    def close(self):
        if self.running():
            try:
                self.stop()
            finally:
                self.kill9()
        self.check_no_tokens_logged()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def check_no_tokens_logged(self):
        text = self.log()
        for t in self.tokens:
            assert t not in text, "a token appears in the bridge log"

    # -- status ------------------------------------------------------------
    def get(self, path):
        with urllib.request.urlopen("http://%s%s" % (self.status_addr, path),
                                    timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def status(self):
        st, ct, body = self.get("/status")
        assert st == 200 and ct.startswith("application/json"), (st, ct)
        return {l["name"]: l for l in json.loads(body)["links"]}

    def link(self, name):
        return self.status()[name]

    def wait_state(self, name, states, timeout=20, reason=None):
        if isinstance(states, str):
            states = (states,)
        last = {}

        def ok():
            last["l"] = self.link(name)
            l = last["l"]
            return l["state"] in states and (
                reason is None or (l["reason"] or "").find(reason) >= 0)
        try:
            wait_until(ok, timeout, 0.05)
        except AssertionError:
            raise AssertionError("link %s not in %s (reason %r) within %ss: %r\n%s"
                                 % (name, states, reason, timeout, last.get("l"),
                                    self.log_tail()))
        return last["l"]

    def ctl(self, *args):
        r = subprocess.run([bin_path("ctxsync-bridge"), "ctl"] + list(args) +
                           ["--control", self.control], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        return r.returncode, r.stdout.decode(), r.stderr.decode()


def cleanup_bridges():
    for b in list(_BRIDGES):
        try:
            b.close()
        finally:
            _BRIDGES.remove(b)


def bridged(fn):
    """@test wrapper that always closes the bridges a test started."""
    def run():
        try:
            fn()
        except BaseException:
            for b in _BRIDGES:
                print("  bridge pid %s log tail (%s):\n    %s" % (
                    b.pid, b.log_path, b.log_tail(60).replace("\n", "\n    ")))
            raise
        finally:
            cleanup_bridges()
    run.__name__ = fn.__name__
    return test(run)


# --------------------------------------------------------------------------
# helpers on nodes

def q(uri):
    return urllib.parse.quote(uri, safe="")


def write(node, uri, content, token=None):
    kw = {} if token is None else {"token": token}
    st, _, b = node.req("GET", "/artifacts?uri=" + q(uri), **kw)
    if st == 404:
        st, _, b = node.req("POST", "/artifacts", {"uri": uri, "content": content}, **kw)
        if st == 201:
            return b
    st, _, b = node.req("PUT", "/artifacts?uri=" + q(uri), {"content": content}, **kw)
    assert st == 200, (st, b)
    return b


def feed(node):
    return all_changes(node)


def version_ids(node):
    return [e["version_id"] for e in feed(node)]


def uris(node):
    return sorted({e["artifact_uri"] for e in feed(node)})


def populate(node, n_uris, n_versions, prefix="ctx://acme/docs/"):
    """n_uris artifacts with n_versions versions each: text, JSON, unicode
    and a few larger than the 64 KiB blob threshold."""
    out = []
    for i in range(n_uris):
        uri = "%sdoc%04d" % (prefix, i)
        for v in range(n_versions):
            if i % 3 == 0:
                content = {"i": i, "v": v, "tags": ["a", "b"], "text": "f\u00fcr %d" % v}
            elif i % 50 == 7 and v == n_versions - 1:
                content = ("big %d " % i) * 12000  # > 64 KiB
            else:
                content = "version %d of %d \u2014 \U0001F600\n" % (v, i)
            write(node, uri, content)
        out.append(uri)
    return out


def same_artifact(a, b, uri):
    sa, _, ba = a.req("GET", "/artifacts?uri=" + q(uri))
    sb, _, bb = b.req("GET", "/artifacts?uri=" + q(uri))
    assert sa == sb == 200, (uri, sa, sb, ba, bb)
    for k in ("content", "content_hash", "version_id", "version", "size",
              "content_type", "author_id", "created_at"):
        assert ba.get(k) == bb.get(k), (uri, k, ba.get(k), bb.get(k))


def history_ids(node, uri):
    st, _, b = node.req("GET", "/artifacts/history?uri=" + q(uri))
    assert st == 200, (st, b)
    return sorted(v["version_id"] for v in b["versions"])


def wait_converged(a, b, timeout=60, msg=""):
    def ok():
        return sorted(version_ids(a)) == sorted(version_ids(b))
    try:
        wait_until(ok, timeout, 0.2)
    except AssertionError:
        va, vb = set(version_ids(a)), set(version_ids(b))
        raise AssertionError("%s not converged: %d only on %s, %d only on %s" % (
            msg, len(va - vb), a.node_id, len(vb - va), b.node_id))


def two_nodes():
    eu = Node("eu-1", "eu")
    us = Node("us-1", "us")
    return eu, us, fed_agent(eu, "us"), fed_agent(us, "eu")


# --------------------------------------------------------------------------
# command line

@test
def cli_help_version_and_bad_flags():
    r = subprocess.run([bin_path("ctxsync-bridge"), "--version"],
                       stdout=subprocess.PIPE, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(b"ctxsync-bridge "), r
    r = subprocess.run([bin_path("ctxsync-bridge"), "--help"],
                       stdout=subprocess.PIPE, timeout=10)
    assert r.returncode == 0 and b"reset-link" in r.stdout, r
    for argv in (["--bogus"], ["run", "--nope"], [], ["frobnicate"],
                 ["run"], ["status"], ["run", "--config"],
                 ["run", "--config", "x", "--log-format", "xml"]):
        r = subprocess.run([bin_path("ctxsync-bridge")] + argv,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)
        assert b"usage:" in r.stderr, (argv, r.stderr)


@test
def config_errors_name_link_and_field_and_hide_tokens():
    tmp = tempfile.mkdtemp(prefix="cs-it-bridgecfg-")
    try:
        secret = "SECRETtoken_abcdefghijklmnopqrstuvwxyz012"
        cases = [
            ({"links": [{"name": "l1", "mode": "fast",
                         "source": {"url": "http://a", "token": secret},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1".mode: unknown mode'),
            ({"links": [{"name": "l1", "patterns": ["ctx://a**"],
                         "source": {"url": "http://a", "token": secret},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1".patterns[0]: bad pattern'),
            ({"links": [{"name": "l1",
                         "source": {"url": "http://a"},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1": source.token: missing'),
            ({"links": [{"name": "l1", "source": {"token": secret},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1": source.url: missing'),
            ({"links": [{"name": "l1", "source": {"url": "http://a", "token": secret},
                         "target": {"url": "http://b", "token": secret}},
                        {"name": "l1", "source": {"url": "http://c", "token": secret},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1": duplicate link name'),
            ({"links": [{"name": "l1", "colour": "red",
                         "source": {"url": "http://a", "token": secret},
                         "target": {"url": "http://b", "token": secret}}]},
             'link "l1": unknown key "colour"'),
        ]
        for cfg, want in cases:
            p = os.path.join(tmp, "c.json")
            with open(p, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([bin_path("ctxsync-bridge"), "run", "--config", p],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=10)
            err = r.stderr.decode()
            assert r.returncode == 1, (cfg, r.returncode, err)
            assert want in err, (want, err)
            assert secret not in err and secret not in r.stdout.decode()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# replication

@bridged
def one_way_full_2000_versions_byte_identical():
    eu, us, te, tu = two_nodes()
    with eu, us:
        t0 = time.monotonic()
        written = populate(eu, 400, 5)
        t_write = time.monotonic() - t0
        src_ids = version_ids(eu)
        assert len(src_ids) == 2000, len(src_ids)
        t0 = time.monotonic()
        br = Bridge([link("eu-to-us", eu, te, us, tu)])
        wait_converged(eu, us, 60, "eu->us")
        dt = time.monotonic() - t0
        print("  2000 versions written in %.2fs, replicated in %.2fs (%.0f events/s)"
              % (t_write, dt, 2000 / dt))
        dst_ids = version_ids(us)
        assert len(dst_ids) == len(set(dst_ids)) == 2000
        for uri in written:
            same_artifact(eu, us, uri)
            assert history_ids(eu, uri) == history_ids(us, uri), uri
        l = br.wait_state("eu-to-us", "live")
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head(), 10)
        l = br.link("eu-to-us")
        assert l["counters"]["applied"] == 2000, l
        assert l["counters"]["rejected"] == 0, l
        assert l["source"]["node_id"] == "eu-1" and l["target"]["node_id"] == "us-1"
        assert l["source"]["epoch"] == eu.epoch, l
        assert l["lag_events"] == 0 and l["lag_seconds"] == 0, l
        assert l["reason"] is None and l["last_error"] is None, l
        # live: new writes arrive through the stream
        t0 = time.monotonic()
        for i in range(50):
            write(eu, written[i], "live edit %d" % i)
        wait_converged(eu, us, 30, "live")
        print("  50 live edits visible on the target after %.2fs"
              % (time.monotonic() - t0))
        for i in range(50):
            same_artifact(eu, us, written[i])
        # status CLI and metrics
        r = subprocess.run([bin_path("ctxsync-bridge"), "status", "--status",
                            br.status_addr], stdout=subprocess.PIPE, timeout=10)
        out = r.stdout.decode()
        assert r.returncode == 0 and "eu-to-us" in out and "live" in out, out
        assert out.splitlines()[0].split()[:3] == ["LINK", "STATE", "REASON"], out
        r = subprocess.run([bin_path("ctxsync-bridge"), "status", "--status",
                            br.status_addr, "--json"], stdout=subprocess.PIPE, timeout=10)
        assert json.loads(r.stdout)["links"][0]["name"] == "eu-to-us"
        st, ct, m = br.get("/metrics")
        assert st == 200 and ct.startswith("text/plain"), (st, ct)
        assert 'ctxsync_bridge_link_state{link="eu-to-us",state="live"} 1' in m, m
        assert 'ctxsync_bridge_link_events_total{link="eu-to-us",status="applied"} 2050' in m, m
        assert 'ctxsync_bridge_link_lag_events{link="eu-to-us"} 0' in m, m
        for t in (te, tu):
            assert t not in m and t not in json.dumps(br.status())
        assert br.stop() == 0
        assert "BRIDGE-STATE link=eu-to-us from=catching_up to=live" in br.log()


@bridged
def bidirectional_concurrent_writes_converge_without_echo():
    eu, us, te, tu = two_nodes()
    with eu, us:
        br = Bridge([link("eu-to-us", eu, te, us, tu, in_flight=3),
                     link("us-to-eu", us, tu, eu, te, in_flight=3)])
        br.wait_state("eu-to-us", "live")
        br.wait_state("us-to-eu", "live")
        errors = []

        def writer(node, tag, n):
            try:
                for i in range(n):
                    write(node, "ctx://acme/%s/w%03d" % (tag, i % 60), "%s %d" % (tag, i))
                    if i % 10 == 0:
                        # both sides edit the same artifacts: forks
                        uri = "ctx://acme/shared/s%02d" % (i % 5)
                        st, _, b = node.req("GET", "/artifacts?uri=" + q(uri))
                        if st == 404:
                            st, _, b = node.req("POST", "/artifacts",
                                                {"uri": uri, "content": tag})
                            assert st in (201, 409), (st, b)
                        else:
                            st, _, b = node.req("PUT", "/artifacts?uri=" + q(uri),
                                                {"content": "%s %d" % (tag, i)})
                            assert st == 200, (st, b)
            except BaseException as e:
                errors.append(e)
        ts = [threading.Thread(target=writer, args=(eu, "eu", 300)),
              threading.Thread(target=writer, args=(us, "us", 300))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        wait_converged(eu, us, 60, "eu<->us")
        # no echo: once converged, the feeds stop growing
        wait_until(lambda: br.link("eu-to-us")["lag_events"] == 0 and
                   br.link("us-to-eu")["lag_events"] == 0, 10)
        h1 = (eu.head(), us.head())
        time.sleep(2)
        assert (eu.head(), us.head()) == h1, (h1, eu.head(), us.head())
        ve, vu = version_ids(eu), version_ids(us)
        assert len(ve) == len(set(ve)) and len(vu) == len(set(vu))
        s = br.status()
        for name in ("eu-to-us", "us-to-eu"):
            assert s[name]["counters"]["rejected"] == 0, s[name]
        # the shared artifacts forked and the bridge counted it
        forks = s["eu-to-us"]["counters"]["fork"] + s["us-to-eu"]["counters"]["fork"]
        assert forks == s["eu-to-us"]["forks_flagged"] + s["us-to-eu"]["forks_flagged"]
        # every artifact reads the same on both sides (same provisional head)
        for uri in uris(eu):
            a = eu.req("GET", "/artifacts?uri=" + q(uri))
            b = us.req("GET", "/artifacts?uri=" + q(uri))
            assert a[0] == b[0], (uri, a, b)
            if a[0] == 200:
                assert a[2]["version_id"] == b[2]["version_id"], (uri, a[2], b[2])
        assert br.stop() == 0


@bridged
def kill9_during_catch_up_every_version_exactly_once():
    eu, us, te, tu = two_nodes()
    with eu, us:
        populate(eu, 300, 5)
        lk = link("eu-to-us", eu, te, us, tu, batch={"max_events": 20}, in_flight=2)
        br = Bridge([lk], start=False)
        kills = mid = extra = 0
        progress = []
        # >= 20 kills that land while the target is still behind the source;
        # when the target catches up, the source gets more to replicate (a
        # bigger refill each time it did: on a quiet machine the bridge
        # catches up 80 events before the next kill)
        refill = 40
        while mid < 20 and kills < 120:
            br.start()
            time.sleep(random.uniform(0.03, 0.15))
            behind = us.head() < eu.head()
            br.kill9()
            kills += 1
            mid += behind
            progress.append(us.head())
            if not behind or us.head() >= eu.head() - 50:
                if not behind:
                    refill = min(refill * 2, 320)
                populate(eu, refill, 2, prefix="ctx://acme/more%d/" % extra)
                extra += 1
        print("  %d kills, %d mid-catch-up; target head after each: %s"
              % (kills, mid, progress))
        assert mid >= 20, (kills, mid)
        # then kills while the source keeps writing (live)
        stop_writer = threading.Event()
        errors = []

        def writer():
            i = 0
            try:
                while not stop_writer.is_set():
                    write(eu, "ctx://acme/live/x%03d" % (i % 40), "live %d" % i)
                    i += 1
                    time.sleep(0.005)
            except BaseException as e:
                errors.append(e)
        wt = threading.Thread(target=writer)
        wt.start()
        try:
            for _ in range(5):
                br.start()
                time.sleep(random.uniform(0.1, 0.4))
                br.kill9()
        finally:
            stop_writer.set()
            wt.join()
        assert not errors, errors
        br.start()
        wait_converged(eu, us, 90, "after %d kills" % (kills + 5))
        ids = version_ids(us)
        assert len(ids) == len(set(ids)), "a version was applied twice"
        assert sorted(ids) == sorted(version_ids(eu))
        # the target's feed holds each version once, with its origin event_id
        ev = feed(us)
        assert len({e["event_id"] for e in ev}) == len(ev)
        assert br.stop() == 0


@bridged
def source_down_backs_off_then_recovers():
    port = free_port()
    eu = Node("eu-1", "eu", extra_args=["--listen", "127.0.0.1:%d" % port])
    us = Node("us-1", "us")
    te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
    with eu, us:
        populate(eu, 20, 2)
        br = Bridge([link("eu-to-us", eu, te, us, tu, backoff_max_s=2, keepalive_s=2)])
        wait_converged(eu, us, 30)
        br.wait_state("eu-to-us", "live")
        eu.stop()
        l = br.wait_state("eu-to-us", "backing_off", 20, reason="connect")
        assert "Connection refused" in l["reason"], l
        assert l["last_error"] and "source" in l["last_error"], l
        r0 = l["reconnects"]
        wait_until(lambda: br.link("eu-to-us")["reconnects"] >= r0 + 2, 20)
        assert br.link("eu-to-us")["state"] in ("backing_off", "starting")
        eu.start()
        assert eu.port == port
        br.wait_state("eu-to-us", "live", 20)
        populate(eu, 5, 1, prefix="ctx://acme/after/")
        wait_converged(eu, us, 30)
        # the reason is cleared once live again
        assert br.link("eu-to-us")["reason"] is None
        # target down too: the reason names the target side in last_error
        us_port = us.port
        us.stop()
        write(eu, "ctx://acme/after/doc0000", "while target down")
        l = br.wait_state("eu-to-us", "backing_off", 30)
        assert "target" in (l["last_error"] or ""), l
        us.extra_args = ["--listen", "127.0.0.1:%d" % us_port]
        us.start()
        br.wait_state("eu-to-us", "live", 30)
        wait_converged(eu, us, 30)
        assert br.stop() == 0


@bridged
def stalled_while_target_hangs_then_live_again():
    eu = Node("eu-1", "eu", extra_args=["--keepalive", "1"])
    us = Node("us-1", "us", extra_args=["--keepalive", "1"])
    te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
    with eu, us:
        br = Bridge([link("eu-to-us", eu, te, us, tu, keepalive_s=1)])
        br.wait_state("eu-to-us", "live")
        # idle with keepalives is not a stall
        time.sleep(3)
        assert br.link("eu-to-us")["state"] == "live", br.link("eu-to-us")
        os.kill(us.pid, signal.SIGSTOP)
        try:
            write(eu, "ctx://acme/docs/stall", "waiting")
            l = br.wait_state("eu-to-us", "stalled", 10)
            assert "no progress" in l["reason"], l
            assert l["lag_events"] >= 1, l
            st, _, m = br.get("/metrics")
            assert 'ctxsync_bridge_link_state{link="eu-to-us",state="stalled"} 1' in m
        finally:
            os.kill(us.pid, signal.SIGCONT)
        br.wait_state("eu-to-us", "live", 20)
        wait_converged(eu, us, 20)
        assert br.link("eu-to-us")["reason"] is None
        assert "to=stalled" in br.log() and "from=stalled to=live" in br.log()
        assert br.stop() == 0


@bridged
def source_reinitialised_fails_with_epoch_changed_then_reset_link():
    eu, us, te, tu = two_nodes()
    with eu, us:
        populate(eu, 10, 2)
        br = Bridge([link("eu-to-us", eu, te, us, tu)])
        wait_converged(eu, us, 30)
        br.wait_state("eu-to-us", "live")
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head(), 10)
        assert br.stop() == 0
        # eu is rebuilt from scratch: same node_id, new epoch
        eu.close()
        eu2 = Node("eu-1", "eu")
        with eu2:
            assert eu2.epoch != eu.epoch
            te2 = fed_agent(eu2, "us")
            populate(eu2, 3, 1, prefix="ctx://acme/new/")
            br.write_config([link("eu-to-us", eu2, te2, us, tu)])
            br.start()
            l = br.wait_state("eu-to-us", "failed", 20, reason="source_epoch_changed")
            assert l["reason"] == "source_epoch_changed", l
            assert l["source"]["epoch"] == eu2.epoch, l
            # it stays failed: never skips, never restarts by itself
            time.sleep(1.5)
            l = br.link("eu-to-us")
            assert l["state"] == "failed" and l["counters"]["applied"] == 0, l
            assert len(version_ids(us)) == 20
            # retry-now alone does not help
            rc, out, err = br.ctl("retry-now", "eu-to-us")
            assert rc == 0 and '"ok":true' in out, (rc, out, err)
            br.wait_state("eu-to-us", "failed", 10, reason="source_epoch_changed")
            # reset-link through the daemon, with the link's own
            # (replicate-only) target token: the target forgets the checkpoint
            rc, out, err = br.ctl("reset-link", "eu-to-us")
            assert rc == 0, (rc, out, err)
            wait_until(lambda: "BRIDGE-SESSION link=eu-to-us source=eu-1 epoch=%s"
                       % eu2.epoch in br.log(), 20)
            assert "checkpoint=0" in br.log().split("epoch=%s" % eu2.epoch)[-1]
            # The rebuilt eu-1 reuses event_ids ("eu-1:1"...) that us-1 holds
            # from the old epoch: each such event is rejected on its own with
            # a reason naming the cause (dead letters), never silently
            # applied under a duplicate id, and the link keeps going.
            def done():
                l = br.link("eu-to-us")
                return l["counters"]["rejected"] + l["counters"]["applied"] >= 3
            wait_until(done, 20)
            l = br.link("eu-to-us")
            assert l["state"] in ("live", "catching_up"), l
            st, _, b = us.req("GET", "/federation/checkpoints/eu-1")
            assert st == 200 and b["epoch"] == eu2.epoch, (st, b)
            st, _, dl = us.req("GET", "/federation/deadletters")
            reasons = [d["reason"] for d in dl["deadletters"]]
            assert any("re-initialised with the same node_id" in x for x in reasons), reasons
            # the offline form with an admin token works too
            tokf = os.path.join(br.tmp, "admin-token")
            with open(tokf, "w") as f:
                f.write(us.admin_token + "\n")
            assert br.stop() == 0
            r = subprocess.run([bin_path("ctxsync-bridge"), "reset-link", "eu-to-us",
                                "--config", br.cfg_path, "--token-file", tokf],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            assert r.returncode == 0, (r.stdout, r.stderr)
            assert us.admin_token not in (r.stdout + r.stderr).decode()
            st, _, b = us.req("GET", "/federation/checkpoints/eu-1")
            assert st == 404, (st, b)


@bridged
def metadata_mode_target_has_remote_payloads():
    eu, us, te, tu = two_nodes()
    with eu, us:
        written = populate(eu, 10, 2)
        br = Bridge([link("meta", eu, te, us, tu, mode="metadata")])
        wait_converged(eu, us, 30)
        for uri in written:
            st, _, h = us.req("GET", "/artifacts/history?uri=" + q(uri))
            assert st == 200, (st, h)
            for v in h["versions"]:
                assert v["payload_state"] == "remote", (uri, v)
            st, _, a = us.req("GET", "/artifacts?uri=" + q(uri) + "&metadata_only=1")
            assert st == 200, (st, a)
            assert a["payload_state"] == "remote", a
            src = eu.req("GET", "/artifacts?uri=" + q(uri))[2]
            assert a["content_hash"] == src["content_hash"], (a, src)
            assert a["version_id"] == src["version_id"]
        l = br.link("meta")
        assert l["pending_payload_bytes"] == 0 and l["counters"]["applied"] == 20, l
        assert br.stop() == 0


@bridged
def three_node_chain_keeps_origin_and_event_id():
    eu, us, te, tu = two_nodes()
    ap = Node("ap-1", "ap")
    with eu, us, ap:
        tu_ap = fed_agent(us, "ap", actor_id="fed-ap")
        ta = fed_agent(ap, "us")
        populate(eu, 15, 3)
        br = Bridge([link("eu-to-us", eu, te, us, tu),
                     link("us-to-ap", us, tu_ap, ap, ta)])
        wait_converged(eu, ap, 40, "eu->us->ap")
        src = {e["version_id"]: e for e in feed(eu)}
        for e in feed(ap):
            s = src[e["version_id"]]
            assert e["event_id"] == s["event_id"], (e, s)
            assert e["origin"]["node_id"] == "eu-1", e
            assert e["origin"]["seq"] == s["origin"]["seq"], (e, s)
        for uri in uris(eu):
            same_artifact(eu, ap, uri)
        # writes on us also reach ap, with origin us-1
        write(us, "ctx://acme/docs/doc0001", "from us")
        wait_converged(us, ap, 20)
        last = feed(ap)[-1]
        assert last["origin"]["node_id"] == "us-1", last
        assert br.stop() == 0


@bridged
def pause_resume_and_bad_token_fails():
    eu, us, te, tu = two_nodes()
    with eu, us:
        br = Bridge([link("eu-to-us", eu, te, us, tu),
                     link("bad", us, "not-a-valid-token-xxxxxxxxxxxxxxxxxxxxxxxx", eu, te)])
        br.wait_state("eu-to-us", "live")
        l = br.wait_state("bad", "failed", 20)
        assert l["reason"].startswith("http 401"), l
        rc, out, _ = br.ctl("pause", "eu-to-us")
        assert rc == 0 and '"ok":true' in out, out
        br.wait_state("eu-to-us", "paused")
        populate(eu, 5, 1)
        time.sleep(1)
        assert us.head() == 0
        rc, out, _ = br.ctl("resume", "eu-to-us")
        assert rc == 0, out
        br.wait_state("eu-to-us", "live")
        wait_converged(eu, us, 20)
        rc, out, _ = br.ctl("pause", "nope")
        assert rc == 1 and "no link" in out, out
        rc, out, _ = br.ctl("explode", "eu-to-us")
        assert rc == 1 and "unknown command" in out, out
        # the daemon and its status stay up while a link fails
        assert br.running() and br.link("bad")["state"] == "failed"
        assert br.stop() == 0


if __name__ == "__main__":
    run_tests()
