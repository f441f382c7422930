#!/usr/bin/env python3
"""Scale-out: several ctxsync-node processes serving one PostgreSQL store
(docs/scale-out.md).

Under PostgreSQL (CS_TEST_PG_URL, the pg.* CTest entries):
  - the change feed stays in commit order with several processes writing
    while a reader pages it: no gaps, no duplicates;
  - an SSE client on any process receives writes made through any other;
  - grants and revocations reach every process;
  - a process killed with SIGKILL loses no acknowledged write, and the
    others go on;
  - a PostgreSQL restart: writes fail while it is down and work again
    after, the SSE stream goes on, nothing acknowledged is lost.
Under SQLite (integration.*): a second process on the same data directory
is refused (one process per SQLite store).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import harness
from harness import (Node, SSEClient, STORE, all_changes, expect_ok,
                     new_actor, run_tests, test, unique, wait_until)

PG_CLUSTER = os.path.join(harness.REPO_ROOT, "scripts", "pg-cluster.sh")


class Sibling(Node):
    """Another serve process on `node`'s store: the same node identity,
    its own port and log. The store is not dropped when it closes."""

    def __init__(self, node, tag):
        self.node_id = "%s-%s" % (node.node_id, tag)
        self.region = node.region
        self.auth = node.auth
        self.extra_args = list(node.extra_args)
        self.proc = None
        self.url = None
        self.port = None
        self.keep = False
        self.closed = False
        self.db_dropped = True
        self.tmp = tempfile.mkdtemp(prefix="cs-it-%s-" % self.node_id)
        self.data_dir = node.data_dir
        self.ready_file = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "node.log")
        self.store = node.store
        self.db = None
        self.db_url = node.db_url
        self.store_args = list(node.store_args)
        self.info = node.info
        self.admin_token = node.admin_token
        self.admin_id = node.admin_id
        self.epoch = node.epoch
        harness._ALL_NODES.append(self)
        harness._TEST_NODES.append(self)
        self.start()


def mk(n, u, content="x"):
    return expect_ok(n.req("POST", "/artifacts", {"uri": u, "content": content}),
                     201)


def pg_only(fn):
    """A test that needs several processes on one store (PostgreSQL)."""
    def wrapper():
        if STORE != "postgres":
            raise harness.Skip("needs the PostgreSQL store (the pg.* tests)")
        return fn()
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def writers(procs, per_proc, seconds, prefix):
    """per_proc threads per process write new artifacts for `seconds`.
    Returns (acknowledged [(uri, seq)], errors [..])."""
    acked, errors = [], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(p, k):
        i = 0
        while time.monotonic() < stop:
            u = "ctx://acme/scale/%s-%s-%d-%d" % (prefix, p.node_id, k, i)
            i += 1
            try:
                st, _, b = p.req("POST", "/artifacts",
                                 {"uri": u, "content": "v%d" % i}, timeout=10)
            except OSError as e:
                with lock:
                    errors.append((u, repr(e)))
                time.sleep(0.05)
                continue
            with lock:
                if st == 201:
                    acked.append((u, b.get("seq")))
                else:
                    errors.append((u, st, b))
            if st != 201:
                time.sleep(0.05)

    threads = [threading.Thread(target=run, args=(p, k), daemon=True)
               for p in procs for k in range(per_proc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return acked, errors


@test
def sqlite_store_is_one_process():
    """A SQLite data dir is served by one process: a second one is refused
    with a message naming the reason (PostgreSQL is the way to scale out)."""
    if STORE != "sqlite":
        raise harness.Skip("SQLite-only check")
    n = Node(node_id="so-lite")
    try:
        r = subprocess.run([harness.bin_path("ctxsync-node"), "serve"] +
                           n.store_args + ["--listen", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode != 0, "a second serve on one SQLite dir started"
        assert "in use by another ctxsync-node process" in err, err
        # the first one is unaffected
        mk(n, "ctx://acme/scale/%s" % unique("l"))
    finally:
        n.close()


@test
@pg_only
def feed_in_commit_order_across_processes():
    """Three processes write concurrently while a reader pages
    /changes?since= through all of them: the reader sees exactly the final
    feed (no gaps, no duplicates), and every acknowledged write is in it
    once."""
    a = Node(node_id="so-feed")
    b, c = Sibling(a, "b"), Sibling(a, "c")
    procs = [a, b, c]
    seen, read_errors = [], []
    done = threading.Event()

    def reader():
        cursor, i = 0, 0
        while True:
            last_round = done.is_set()
            p = procs[i % 3]
            i += 1
            st, _, body = p.req("GET", "/changes",
                                query={"since": cursor, "limit": 1000})
            if st != 200:
                read_errors.append((st, body))
                return
            for ev in body["events"]:
                seen.append(ev["seq"])
            cursor = body["next_since"]  # what a client resumes from
            if last_round and not body["has_more"]:
                return

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    acked, errors = writers(procs, 3, 4.0, "feed")
    done.set()
    rt.join(60)
    assert not rt.is_alive(), "reader did not finish"
    assert not read_errors, read_errors[:3]
    assert not errors, errors[:5]
    final = [ev["seq"] for ev in all_changes(a)]
    assert len(acked) > 30, "only %d writes" % len(acked)
    assert len(set(seen)) == len(seen), "the reader saw a seq twice"
    assert seen == final, ("the paging reader's feed differs from the final "
                           "feed: %d vs %d events, first difference at %s" % (
                               len(seen), len(final),
                               next((k for k, (x, y) in enumerate(zip(seen, final))
                                     if x != y), min(len(seen), len(final)))))
    by_uri = {ev["artifact_uri"]: ev["seq"] for ev in all_changes(b)}
    missing = [u for u, _ in acked if u not in by_uri]
    assert not missing, "acknowledged writes missing: %s" % missing[:5]
    wrong = [(u, s, by_uri[u]) for u, s in acked if s is not None and by_uri[u] != s]
    assert not wrong, "acknowledged seq differs from the feed: %s" % wrong[:5]
    print("  %d writes through 3 processes, reader saw %d events in order"
          % (len(acked), len(seen)))
    for p in (c, b, a):
        p.close()


@test
@pg_only
def sse_on_any_process_sees_every_write():
    """SSE clients on processes B and C receive each write made through A
    (LISTEN/NOTIFY wakes their hubs), in order; the delay is measured."""
    a = Node(node_id="so-sse")
    b, c = Sibling(a, "b"), Sibling(a, "c")
    sb = SSEClient(b, query={"pattern": "ctx://acme/**"})
    sc = SSEClient(c, query={"pattern": "ctx://acme/**"})
    assert sb.got_headers.wait(10) and sc.got_headers.wait(10)
    assert sb.status == 200 and sc.status == 200, (sb.status, sc.status)
    time.sleep(0.3)
    delays, after_ack, uris = [], [], []
    for i in range(30):
        u = "ctx://acme/sse/%s" % unique("s")
        uris.append(u)
        t0 = time.monotonic()
        mk(a, u)
        t_ack = time.monotonic()
        while (len(sb.changes()) <= i or len(sc.changes()) <= i) and \
                time.monotonic() - t0 < 5:
            time.sleep(0.0005)
        t_seen = time.monotonic()
        delays.append((t_seen - t0) * 1000)
        # usually negative: the event reaches B and C before A's 2xx
        # reaches the client
        after_ack.append((t_seen - t_ack) * 1000)
        time.sleep(0.02)
    got_b = [e["artifact_uri"] for e in sb.changes()]
    got_c = [e["artifact_uri"] for e in sc.changes()]
    assert got_b == uris, "process B's stream: %r" % got_b[:5]
    assert got_c == uris, "process C's stream: %r" % got_c[:5]
    delays.sort()
    after_ack.sort()
    pct = lambda xs, q: xs[min(len(xs) - 1, int(len(xs) * q))]
    print("  cross-process SSE: from the write request p50 %.1f ms, p90 %.1f "
          "ms, max %.1f ms; after the write's 2xx p50 %.1f ms, p90 %.1f ms, "
          "max %.1f ms" % (pct(delays, 0.5), pct(delays, 0.9), delays[-1],
                           pct(after_ack, 0.5), pct(after_ack, 0.9),
                           after_ack[-1]))
    # the bound: a write through A reaches B within 50 ms (of its
    # commit, which the 2xx follows); the slowest tenth is left to a
    # loaded CI machine
    assert pct(after_ack, 0.9) <= 50, \
        "cross-process delivery later than 50 ms after the 2xx: %r" % after_ack
    sb.close()
    sc.close()
    for p in (c, b, a):
        p.close()


@test
@pg_only
def grants_reach_every_process():
    """A grant made through one process is honoured by another at once
    (NOTIFY ctxsync_grants reloads its cache); a revocation too."""
    a = Node(node_id="so-grant")
    b = Sibling(a, "b")
    u = "ctx://acme/g/%s" % unique("g")
    mk(a, u)
    aid, tok = new_actor(a, prefix="gr", grants=())
    st, _, _ = b.req("GET", "/artifacts", query={"uri": u}, token=tok)
    assert st == 403, st
    st, _, g = a.req("POST", "/permissions", {"actor_id": aid,
                                              "artifact_pattern": "ctx://acme/**",
                                              "operations": ["read"]})
    assert st in (200, 201), (st, g)
    t0 = time.monotonic()
    wait_until(lambda: b.req("GET", "/artifacts", query={"uri": u},
                             token=tok)[0] == 200, timeout=2,
               msg="the grant never reached process B")
    grant_ms = (time.monotonic() - t0) * 1000
    gid = g.get("id") or g.get("grant_id")
    assert gid, g
    st, _, _ = a.req("DELETE", "/permissions/%s" % gid)
    assert st in (200, 204), st
    t0 = time.monotonic()
    wait_until(lambda: b.req("GET", "/artifacts", query={"uri": u},
                             token=tok)[0] == 403, timeout=2,
               msg="the revocation never reached process B")
    revoke_ms = (time.monotonic() - t0) * 1000
    print("  grant visible on B after %.1f ms, revocation after %.1f ms"
          % (grant_ms, revoke_ms))
    assert grant_ms < 500 and revoke_ms < 500, (grant_ms, revoke_ms)
    b.close()
    a.close()


@test
@pg_only
def killed_process_loses_nothing():
    """kill -9 of one process mid-writes: every write it acknowledged is in
    the feed once, the other process keeps writing, and a restarted process
    serves the same feed."""
    a = Node(node_id="so-kill")
    b = Sibling(a, "b")
    killer = threading.Timer(1.5, b.kill9)
    killer.start()
    acked, errors = writers([a, b], 3, 3.5, "kill")
    killer.join()
    assert not b.running()
    a_acked = [x for x in acked if "-so-kill-b-" not in x[0]]
    assert len(a_acked) > 30, "process A stalled: %d writes" % len(a_acked)
    assert all("-so-kill-b-" in e[0] for e in errors), \
        "writes through the live process failed: %r" % [
            e for e in errors if "-so-kill-b-" not in e[0]][:3]
    evs = all_changes(a)
    uris = [e["artifact_uri"] for e in evs]
    assert len(uris) == len(set(uris)), "an event appears twice"
    missing = [u for u, _ in acked if u not in set(uris)]
    assert not missing, "acknowledged writes lost: %s" % missing[:5]
    b.start()
    assert [e["seq"] for e in all_changes(b)] == [e["seq"] for e in evs]
    print("  %d writes acknowledged (%d by the killed process), none lost"
          % (len(acked), len(acked) - len(a_acked)))
    b.close()
    a.close()


@test
@pg_only
def new_epoch_on_postgres():
    """The restore procedure on a PostgreSQL store: new-epoch refuses while
    a node process is connected; stopped, it sets a new epoch and a seq
    floor, published as lost_seqs; the next write takes the floor."""
    n = Node(node_id="so-epoch")
    for _ in range(3):
        mk(n, "ctx://acme/e/%s" % unique("e"))
    head = n.head()
    cmd = [harness.bin_path("ctxsync-node"), "new-epoch"] + n.store_args
    r = subprocess.run(cmd + ["--seq-floor", str(head + 50)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode != 0, "new-epoch ran while a node process is connected"
    assert b"stop every ctxsync-node process first" in r.stderr, r.stderr
    n.stop()
    r = subprocess.run(cmd + ["--seq-floor", str(head + 50)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout)
    assert out["old_epoch"] == n.epoch and out["epoch"] != n.epoch, out
    assert out["next_seq"] == head + 50, out
    n.start()
    st, _, info = n.req("GET", "/federation/info")
    assert st == 200 and info["epoch"] == out["epoch"], info
    assert [head + 1, head + 49] in info["lost_seqs"], info
    mk(n, "ctx://acme/e/%s" % unique("e"))
    assert n.head() == head + 50
    n.close()


def _cluster(*args):
    r = subprocess.run(["bash", PG_CLUSTER] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    return r.stdout.decode().strip()


def _pg_ctl(d, *args):
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_ctl = os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"),
                          "pg_ctl")
    r = subprocess.run(as_pg + [pg_ctl, "-D", os.path.join(d, "data"), "-w"] +
                       list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")


@test
@pg_only
def postgres_restart_is_survived():
    """PostgreSQL stops under a writing node and comes back: writes fail
    while it is down (never a false 2xx), work again after it is up, the
    SSE stream carries on without a gap, nothing acknowledged is lost.
    Runs on a private cluster (the shared one serves other tests)."""
    d = tempfile.mkdtemp(prefix="cs-it-pgr-")
    os.rmdir(d)
    url = _cluster("start", d)
    n = None
    try:
        # a Node on the private cluster: swap the URL harness would use
        saved = harness.PG_URL
        harness.PG_URL = url
        try:
            n = Node(node_id="so-pgr")
        finally:
            harness.PG_URL = saved
        n.db_dropped = True  # goes with the private cluster
        sse = SSEClient(n, query={"pattern": "ctx://acme/**"})
        assert sse.got_headers.wait(10) and sse.status == 200
        before = [mk(n, "ctx://acme/r/%s" % unique("a")) for _ in range(5)]
        acked, failed = [], []
        stop = threading.Event()

        def write_loop():
            i = 0
            while not stop.is_set():
                u = "ctx://acme/r/w%d-%s" % (i, unique("w"))
                i += 1
                try:
                    st, _, b = n.req("POST", "/artifacts",
                                     {"uri": u, "content": "x"}, timeout=15)
                except OSError:
                    st = None
                if st == 201:
                    acked.append(u)
                else:
                    failed.append((u, st))
                time.sleep(0.02)

        t = threading.Thread(target=write_loop, daemon=True)
        t.start()
        time.sleep(0.5)
        _pg_ctl(d, "stop", "-m", "fast")
        time.sleep(1.0)
        down_failed = len(failed)
        _pg_ctl(d, "start", "-l", os.path.join(d, "postgres.log"))
        t0 = time.monotonic()
        n_before = len(acked)
        wait_until(lambda: len(acked) > n_before + 5, timeout=20,
                   msg="writes never worked again after PostgreSQL came back")
        recover = time.monotonic() - t0
        stop.set()
        t.join(30)
        assert down_failed > 0, "no write failed while PostgreSQL was down"
        # a storage outage is the server's problem: 5xx (or no answer),
        # never 401 (the client would drop a good token) nor 4xx
        wrong = [f for f in failed if f[1] is not None and f[1] < 500]
        assert not wrong, "answers while PostgreSQL was down: %r" % wrong[:5]
        evs = all_changes(n)
        uris = [e["artifact_uri"] for e in evs]
        assert len(uris) == len(set(uris))
        missing = [u for u in acked if u not in set(uris)]
        # a write cut by the outage may or may not have committed; the
        # feed holds each at most once (checked above)
        assert not missing, "acknowledged writes lost: %s" % missing[:5]
        # the stream: every event in the feed, in order, no gap
        want = [e["seq"] for e in evs]
        wait_until(lambda: len(sse.changes()) >= len(want), timeout=10,
                   msg="the SSE stream did not catch up after the restart "
                       "(%d of %d)" % (len(sse.changes()), len(want)))
        assert [e["seq"] for e in sse.changes()] == want
        assert len(before) == 5
        print("  %d writes acknowledged, %d failed while down; writes worked "
              "again %.1f s after the restart; SSE carried all %d events"
              % (len(acked), len(failed), recover, len(want)))
        sse.close()
        n.close()
    finally:
        if n is not None:
            n.kill9()
        _cluster("stop", d)


if __name__ == "__main__":
    run_tests()
