"""Shared helpers of the fault suites (tests/fault/test_*.py, soak.py).

Builds on tests/integration/harness.py (Node, SSEClient, test, run_tests,
...) and adds: a Bridge process wrapper, federation agents and links, a
Writer thread that records every acknowledged write, RSS sampling, and the
invariant checks every fault test ends with:

  check_acked(nodes, writers)   every acknowledged write is present on every
                                node, with its content hash
  check_exactly_once(node)      every version once in the feed, the history
                                and the event ids
  check_checkpoint(src, dst)    the target's checkpoint for the source has
                                the source's epoch, is <= its head, and
                                every source event up to it is on the target

See docs/testing.md ("Fault suites").
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import (Node, SSEClient, all_changes, bin_path,  # noqa: E402,F401
                     content_hash, create_actor, grant, run_tests, test,
                     token_for, unique, wait_until, _pdeathsig, _tail)

_BRIDGES = []
STATS = {"bridge_kills": 0, "node_kills": 0}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def q(uri):
    return urllib.parse.quote(uri, safe="")


def _sanitized():
    try:
        with open(bin_path("ctxsync-node"), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# Built with AddressSanitizer: its quarantine and redzones make RSS
# meaningless, so the RSS bounds are reported but not asserted.
SANITIZED = _sanitized()


def rss_bound(grow_kb, limit_kb, what):
    """Assert an RSS growth bound, except under ASan (printed only)."""
    if SANITIZED:
        print("  (ASan build: RSS bound of %s not checked: %d KiB, limit %d KiB)"
              % (what, grow_kb, limit_kb))
        return
    assert grow_kb < limit_kb, "%s: RSS grew %d KiB (limit %d KiB)" % (what, grow_kb, limit_kb)


def rss_kb(pid):
    """Resident set size of a process in KiB (0 when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fed_agent(node, region, actor_id="fed"):
    """A federation agent on `node` delivering to `region`; its token."""
    st, _, b = node.req("POST", "/actors", {
        "actor_id": actor_id, "actor_type": "agent", "name": actor_id,
        "agent_class": "federation", "region": region})
    assert st == 201, (st, b)
    grant(node, actor_id=actor_id, pattern="**", ops=("replicate",))
    return token_for(node, actor_id)


def node_url(node, port=None):
    return "http://127.0.0.1:%d" % (port or node.port)


def link(name, src_url, src_token, dst_url, dst_token, **kw):
    d = {"name": name, "source": {"url": src_url, "token": src_token},
         "target": {"url": dst_url, "token": dst_token}, "mode": "full"}
    d.update(kw)
    return d


def fixed_node(node_id, region, port=None, extra=(), env=None):
    """A Node listening on a fixed port (so it keeps its URL across restarts).
    env: extra environment for the node process (e.g. CS_CLOCK_OFFSET_MS)."""
    port = port or free_port()
    n = _EnvNode(node_id, region, extra_args=["--listen", "127.0.0.1:%d" % port]
                 + list(extra), env=env)
    assert n.port == port, (n.port, port)
    return n


class _EnvNode(Node):
    """harness.Node with an environment for the serve process."""

    def __init__(self, *a, env=None, **kw):
        self._env = env
        Node.__init__(self, *a, **kw)

    def start(self):
        if not self._env:
            return Node.start(self)
        saved = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        try:
            return Node.start(self)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# --------------------------------------------------------------------------
# the bridge process

class Bridge:
    """One ctxsync-bridge process (`run --config`) in its own temp dir.
    wrapper: argv prefix (e.g. valgrind); env: extra environment."""

    def __init__(self, links, start=True, wrapper=(), env=None, ready_timeout=10):
        self.tmp = tempfile.mkdtemp(prefix="cs-fault-bridge-")
        self.cfg_path = os.path.join(self.tmp, "bridge.json")
        self.ready = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "bridge.log")
        self.control = "ipc://" + os.path.join(self.tmp, "control.ipc")
        self.proc = None
        self.status_addr = None
        self.wrapper = list(wrapper)
        self.env = env
        self.ready_timeout = ready_timeout
        self.keep = False
        self.write_config(links)
        _BRIDGES.append(self)
        if start:
            self.start()

    def write_config(self, links):
        self.links = links
        with open(self.cfg_path, "w") as f:
            json.dump({"control": self.control, "links": links}, f)

    def start(self):
        try:
            os.unlink(self.ready)
        except FileNotFoundError:
            pass
        env = dict(os.environ)
        env.update(self.env or {})
        log = open(self.log_path, "ab")
        pre = _pdeathsig if threading.current_thread() is threading.main_thread() else None
        self.proc = subprocess.Popen(
            self.wrapper + [bin_path("ctxsync-bridge"), "run", "--config",
                            self.cfg_path, "--status", "127.0.0.1:0",
                            "--ready-file", self.ready],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            preexec_fn=pre)
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None:
                raise AssertionError("bridge exited (rc=%s):\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError("bridge not ready:\n" + self.log_tail())
            time.sleep(0.01)
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
            STATS["bridge_kills"] += 1

    def stop(self, timeout=10):
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise AssertionError("bridge did not stop within %ss:\n%s" % (
                timeout, self.log_tail()))

    def close(self):
        try:
            if self.running():
                self.stop()
        finally:
            if self.running():
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            if not self.keep and not os.environ.get("CS_KEEP"):
                shutil.rmtree(self.tmp, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def get(self, path, timeout=10):
        with urllib.request.urlopen("http://%s%s" % (self.status_addr, path),
                                    timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def status(self):
        st, ct, body = self.get("/status")
        assert st == 200, st
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


class StateWatcher(threading.Thread):
    """Polls a bridge's /status every `interval` s and records every
    (state, reason) seen per link, with timestamps."""

    def __init__(self, bridge, interval=0.05):
        threading.Thread.__init__(self, daemon=True)
        self.bridge = bridge
        self.interval = interval
        self.seen = []          # (t, link, state, reason)
        self._halt = threading.Event()
        self.start()

    def run(self):
        while not self._halt.is_set():
            try:
                for name, l in self.bridge.status().items():
                    self.seen.append((time.monotonic(), name, l["state"], l["reason"]))
            except Exception:
                pass
            self._halt.wait(self.interval)

    def states(self, name, since=0.0):
        return [(s, r) for t, n, s, r in self.seen if n == name and t >= since]

    def stop(self):
        self._halt.set()
        self.join(5)


def bridged(fn):
    """@test wrapper that closes every Bridge the test started and prints
    their log tails on failure."""
    def run():
        try:
            fn()
        except BaseException:
            for b in _BRIDGES:
                b.keep = True
                print("  bridge pid %s log tail (%s):\n    %s" % (
                    b.pid, b.log_path, b.log_tail(60).replace("\n", "\n    ")))
            raise
        finally:
            for b in list(_BRIDGES):
                try:
                    b.close()
                finally:
                    _BRIDGES.remove(b)
    run.__name__ = fn.__name__
    return test(run)


# --------------------------------------------------------------------------
# writes and checks

def write(node, uri, content, token=None, timeout=30):
    """Create-or-update; returns the artifact JSON (asserts success)."""
    kw = {"timeout": timeout} if token is None else {"token": token, "timeout": timeout}
    st, _, b = node.req("PUT", "/artifacts?uri=" + q(uri), {"content": content}, **kw)
    if st == 404:
        st, _, b = node.req("POST", "/artifacts", {"uri": uri, "content": content}, **kw)
        if st == 201:
            return b
        st, _, b = node.req("PUT", "/artifacts?uri=" + q(uri), {"content": content}, **kw)
    assert st == 200, (st, b)
    return b


class Writer(threading.Thread):
    """Writes to one node at ~rate writes/s over `n_uris` artifacts until
    stopped, tolerating errors (the node may be down) and recording every
    ACKNOWLEDGED write: acked = [(uri, version_id, content_hash)]."""

    def __init__(self, node, prefix, n_uris=30, rate=50.0, big_every=0, start=True):
        threading.Thread.__init__(self, daemon=True)
        self.node, self.prefix, self.n_uris, self.rate = node, prefix, n_uris, rate
        self.big_every = big_every
        self.acked = []
        self.failures = 0
        self.unexpected = []
        self._halt = threading.Event()
        self.i = 0
        if start:
            self.start()

    def run(self):
        period = 1.0 / self.rate if self.rate else 0
        while not self._halt.is_set():
            t0 = time.monotonic()
            self.i += 1
            uri = "%s/w%03d" % (self.prefix, self.i % self.n_uris)
            if self.big_every and self.i % self.big_every == 0:
                content = ("big %d " % self.i) * 12000   # > 64 KiB: a blob file
            elif self.i % 3 == 0:
                content = {"i": self.i, "tag": self.prefix}
            else:
                content = "write %d of %s" % (self.i, self.prefix)
            try:
                b = write(self.node, uri, content, timeout=10)
                self.acked.append((uri, b["version_id"], b["content_hash"]))
            except AssertionError as e:
                msg = str(e)
                # 5xx while the node stops is an honest failure, not an ack
                if not any(x in msg for x in ("(503", "(500", "(507")):
                    self.unexpected.append(msg)
                self.failures += 1
            except (OSError, Exception):
                self.failures += 1
                time.sleep(0.02)
            dt = time.monotonic() - t0
            if period > dt:
                self._halt.wait(period - dt)

    def stop(self):
        self._halt.set()
        self.join(30)


def feed(node):
    return all_changes(node)


def version_ids(node):
    return [e["version_id"] for e in feed(node)]


def wait_converged(nodes, timeout=60, msg=""):
    """Wait until every node's feed holds the same set of version_ids."""
    last = {}

    def ok():
        sets = [frozenset(version_ids(n)) for n in nodes]
        last["s"] = sets
        return all(s == sets[0] for s in sets)
    try:
        wait_until(ok, timeout, 0.25)
    except AssertionError:
        s = last.get("s") or []
        detail = ", ".join("%s: %d" % (n.node_id, len(x)) for n, x in zip(nodes, s))
        raise AssertionError("%s not converged within %ss (%s)" % (msg, timeout, detail))


def check_acked(nodes, writers):
    """Every acknowledged write is present, with its hash, on every node."""
    for n in nodes:
        have = {}
        for e in feed(n):
            have[e["version_id"]] = e
        for w in writers:
            for uri, vid, h in w.acked:
                assert vid in have, "acked write %s of %s (via %s) missing on %s" % (
                    vid, uri, w.node.node_id, n.node_id)
                e = have[vid]
                assert e["artifact_uri"] == uri, (e, uri)
                if "content_hash" in e and e["content_hash"] is not None:
                    assert e["content_hash"] == h, (e, h)
    return sum(len(w.acked) for w in writers)


def check_exactly_once(node):
    """Every version exactly once: feed version_ids, event_ids and seqs are
    unique, and each artifact's history lists each version once."""
    ev = feed(node)
    vids = [e["version_id"] for e in ev]
    dup = len(vids) - len(set(vids))
    assert dup == 0, "%s: %d version(s) twice in the feed" % (node.node_id, dup)
    eids = [e["event_id"] for e in ev]
    assert len(eids) == len(set(eids)), "%s: duplicate event_id" % node.node_id
    seqs = [e["seq"] for e in ev]
    assert seqs == sorted(set(seqs)), "%s: feed seqs not strictly increasing" % node.node_id
    by_uri = {}
    for e in ev:
        by_uri.setdefault(e["artifact_uri"], set()).add(e["version_id"])
    for uri, want in by_uri.items():
        st, _, h = node.req("GET", "/artifacts/history?uri=" + q(uri))
        assert st == 200, (st, h)
        got = [v["version_id"] for v in h["versions"]]
        assert len(got) == len(set(got)), (node.node_id, uri, "history duplicate")
        assert set(got) == want, (node.node_id, uri, set(got) ^ want)
    return len(ev)


def fed_changes(node, since=0):
    """The node's federation feed (admin) to the end."""
    out = []
    while True:
        st, _, b = node.req("GET", "/federation/changes",
                            query={"since": since, "limit": 5000, "mode": "metadata"})
        assert st == 200, (st, b)
        out.extend(b["events"])
        if not b["has_more"]:
            return out
        since = b["next_since"]


def check_checkpoint(src, dst, must_equal_head=False):
    """The target's checkpoint for src is consistent: the source's epoch,
    not beyond its head, and every source event with seq <= checkpoint
    (except those that originated on the target: loop prevention) is on
    the target. Returns the checkpoint seq (0 when there is none)."""
    st, _, cp = dst.req("GET", "/federation/checkpoints/" + src.node_id)
    if st == 404:
        assert not must_equal_head, "no checkpoint for %s on %s" % (src.node_id, dst.node_id)
        return 0
    assert st == 200, (st, cp)
    st, _, info = src.req("GET", "/federation/info")
    assert st == 200, (st, info)
    assert cp["epoch"] == info["epoch"], ("checkpoint epoch", cp, info)
    assert 0 <= cp["seq"] <= info["head_seq"], ("checkpoint beyond head", cp, info)
    have = set(version_ids(dst))
    missing = [e for e in fed_changes(src) if e["seq"] <= cp["seq"]
               and e["origin"]["node_id"] != dst.node_id
               and e["version_id"] not in have]
    assert not missing, "%d source events <= checkpoint %d missing on %s: %r" % (
        len(missing), cp["seq"], dst.node_id, missing[:3])
    if must_equal_head:
        assert cp["seq"] == info["head_seq"], ("checkpoint != head", cp, info)
    return cp["seq"]


def summary_line(extra=""):
    print("  kills so far: bridge %d, node %d%s" % (
        STATS["bridge_kills"], STATS["node_kills"], extra))


def kill9_node(node):
    node.kill9()
    STATS["node_kills"] += 1


# --------------------------------------------------------------------------
# known bugs

KNOWN_BUGS = []


class KnownBug(AssertionError):
    pass


def expect_fixed(cond, bug_id, detail):
    """An assertion that a KNOWN, reported bug is fixed. While the bug is
    open the condition is false: the test records it (printed as
    `KNOWN-BUG id: detail`, listed in docs/testing.md) and goes on checking
    everything else; the suite does not fail for it unless
    CS_FAULT_STRICT=1. Once fixed, the condition holds and nothing is
    printed: remove the bug from docs/testing.md."""
    if cond:
        return True
    KNOWN_BUGS.append((bug_id, detail))
    print("  KNOWN-BUG %s: %s" % (bug_id, detail))
    if os.environ.get("CS_FAULT_STRICT") == "1":
        raise KnownBug("%s: %s" % (bug_id, detail))
    return False
