"""Durability: every write acknowledged with 2xx survives `kill -9`, the feed
stays gap-free, and SIGTERM shuts down cleanly with open SSE streams
(node-api.md §5, §6)."""

import http.client
import os
import subprocess
import threading
import time

from harness import (Node, SSEClient, bin_path, content_hash, expect_error, expect_ok,
                     new_actor, run_tests, test, unique, wait_until,
                     sqlite_only, sqlite_only_test)

WRITERS = 6
PER_ROUND = 100      # acknowledged writes before the kill; 3 rounds = 300+
ROUNDS = 3


class Writers:
    """Concurrent clients writing until the node goes away; every 2xx answer
    is recorded as (uri, version, version_id, content_hash, content)."""

    def __init__(self, n, org, round_no):
        self.n = n
        self.org = org
        self.round = round_no
        self.acked = []
        self.lock = threading.Lock()
        self.failures = []
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(WRITERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(30)

    def run(self, k):
        u = "ctx://%s/dur/r%d-w%d" % (self.org, self.round, k)
        i = 0
        while True:
            i += 1
            content = {"round": self.round, "writer": k, "i": i, "pad": "p" * (k * 40)}
            try:
                if i == 1:
                    st, _, b = self.n.req("POST", "/artifacts", {"uri": u, "content": content},
                                          timeout=10)
                else:
                    st, _, b = self.n.req("PUT", "/artifacts", {"content": content},
                                          query={"uri": u}, timeout=10)
            except (OSError, http.client.HTTPException):
                return  # node killed: the answer never came, nothing is promised
            if st in (200, 201):
                with self.lock:
                    self.acked.append((u, b["version"], b["version_id"], b["content_hash"],
                                       content))
            else:
                self.failures.append((st, b))
                return


def check_feed(n):
    seqs, events = [], []
    since = 0
    while True:
        b = expect_ok(n.req("GET", "/changes", query={"since": since, "limit": 1000}))
        events.extend(b["events"])
        seqs.extend(e["seq"] for e in b["events"])
        if not b["has_more"]:
            break
        since = b["next_since"]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), "feed seq not strictly increasing"
    assert len(set(e["event_id"] for e in events)) == len(events), "duplicate event ids"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
        "gap in feed seq: %r" % [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:5]
    assert b["head"] == seqs[-1], (b["head"], seqs[-1])
    return events


@test
def acknowledged_writes_survive_kill9():
    with Node(node_id="dur1", region="eu") as n:
        org = unique("du")
        uid, tok = new_actor(n, "du", grants=[("ctx://%s/**" % org, ["read"])])
        all_acked = []
        prev = []
        for r in range(ROUNDS):
            w = Writers(n, org, r)
            w.start()
            wait_until(lambda: len(w.acked) >= PER_ROUND or not any(
                t.is_alive() for t in w.threads), timeout=60, interval=0.005)
            n.kill9()                       # writes are in flight right now
            w.join()
            assert not w.failures, w.failures[:3]
            assert len(w.acked) >= PER_ROUND, "only %d writes acked" % len(w.acked)
            all_acked.extend(w.acked)
            n.restart()
            assert n.health()
            # every acknowledged write, from every round so far, is there
            for u, version, vid, chash, content in all_acked:
                g = expect_ok(n.req("GET", "/artifacts", query={"uri": u, "version_id": vid}))
                assert g["version"] == version and g["content_hash"] == chash, (g, version)
                assert chash == content_hash(content), (chash, content)
                assert g["content"] == content, (g["content"], content)
            events = check_feed(n)
            # what was in the feed before the crash keeps its seq
            key = [(e["seq"], e["event_id"], e["version_id"]) for e in events]
            assert key[:len(prev)] == prev, "feed rewritten across restart"
            prev = key
            in_feed = {e["version_id"] for e in events}
            missing = [a[2] for a in all_acked if a[2] not in in_feed]
            assert not missing, "acked versions without change event: %r" % missing[:5]
            # histories are contiguous 1..head with a parent chain
            for k in range(WRITERS):
                u = "ctx://%s/dur/r%d-w%d" % (org, r, k)
                st, _, h = n.req("GET", "/artifacts/history", query={"uri": u})
                if st == 404:
                    continue  # its create was in flight and did not commit
                assert st == 200, (st, h)
                vs = h["versions"]
                assert [v["version"] for v in vs] == list(range(len(vs), 0, -1)), vs[:3]
                for newer, older in zip(vs, vs[1:]):
                    assert newer["parent_id"] == older["version_id"], (newer, older)
            # tokens and grants survived too, and the node accepts new writes
            expect_ok(n.req("GET", "/artifacts", query={"uri": all_acked[0][0]}, token=tok))
            a = expect_ok(n.req("PUT", "/artifacts", {"content": "after restart"},
                                query={"uri": all_acked[-1][0]}))
            g = expect_ok(n.req("GET", "/artifacts", query={"uri": all_acked[-1][0]}))
            assert g["version"] == a["version"] and g["content"] == "after restart"
        assert len(all_acked) >= PER_ROUND * ROUNDS
        print("  (%d acknowledged writes checked over %d kill -9 rounds)"
              % (len(all_acked), ROUNDS))


@test
def sigterm_closes_sse_streams_and_exits_0():
    with Node(node_id="dur2", region="eu") as n:
        org = unique("st")
        c = SSEClient(n, path="/subscriptions/stream", query={"pattern": "ctx://%s/**" % org})
        c2 = SSEClient(n, path="/subscriptions/stream", query={"pattern": "**"})
        try:
            assert c.status == 200 and c.wait_retry(5), c.lines[:3]
            assert c2.wait_retry(5)
            expect_ok(n.req("POST", "/artifacts", {"uri": "ctx://%s/d/x" % org,
                                                   "content": "x"}), 201)
            assert c.wait_for(1, 5)
            t0 = time.monotonic()
            rc = n.stop(timeout=5.0)      # fails loudly after 5 s
            dt = time.monotonic() - t0
            assert rc == 0, "exit status %r after SIGTERM" % rc
            assert c.closed.wait(2) and c2.closed.wait(2), "SSE stream still open"
            assert c.error is None, "stream ended with %r, not a clean close" % c.error
        finally:
            c.close()
            c2.close()
        print("  (exit after SIGTERM in %.2fs)" % dt)
        # the data dir is reusable
        n.start()
        assert expect_ok(n.req("GET", "/artifacts",
                               query={"uri": "ctx://%s/d/x" % org}))["content"] == "x"


@test
def sigterm_finishes_in_flight_requests():
    with Node(node_id="dur3", region="eu") as n:
        org = unique("sf")
        results = []
        stop = threading.Event()

        def writer(k):
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    st, _, b = n.req("POST", "/artifacts",
                                     {"uri": "ctx://%s/d/w%d-%d" % (org, k, i), "content": i},
                                     timeout=10)
                except (OSError, http.client.HTTPException):
                    return
                results.append((st, b))
                if st not in (201, 503):
                    return
        ts = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(4)]
        for t in ts:
            t.start()
        wait_until(lambda: len(results) >= 50, timeout=30, interval=0.01)
        rc = n.stop(timeout=5.0)
        stop.set()
        for t in ts:
            t.join(10)
        assert rc == 0, rc
        bad = [r for r in results if r[0] not in (201, 503)]
        assert not bad, bad[:3]
        for st, b in results:
            if st == 503:
                assert b.get("error") == "unavailable", b
        acked = [b for st, b in results if st == 201]
        n.start()
        for b in acked:
            g = expect_ok(n.req("GET", "/artifacts", query={"uri": b["uri"]}))
            assert g["version_id"] == b["version_id"], (g, b)
        check_feed(n)


@test
def init_refuses_existing_data_dir():
    with Node(node_id="dur4", region="eu", start=False) as n:
        r = subprocess.run([bin_path("ctxsync-node"), "init"] + n.store_args + [
                            "--node-id", "other", "--region", "us", "--admin", "admin"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode != 0, "init over an existing data dir succeeded"
        assert r.stderr.strip(), "no message on stderr"
        n.start()
        h = expect_ok(n.req("GET", "/health", token=None))
        assert h["node_id"] == "dur4" and h["region"] == "eu", h
        expect_error(n.req("GET", "/actors", token="x" * 43), 401, "unauthenticated")
        expect_ok(n.req("GET", "/actors"))  # the original admin token still works
        if sqlite_only("checks the SQLite data directory is still there"):
            assert os.path.isdir(n.data_dir)


@test
@sqlite_only_test("a second serve on one SQLite data dir is refused (several "
                  "may share a PostgreSQL database); new-epoch on PostgreSQL: "
                  "test_scale_out.new_epoch_on_postgres")
def new_epoch_after_restore_and_refused_while_serving():
    with Node(node_id="ep1", region="eu") as n:
        old = n.epoch
        r = subprocess.run([bin_path("ctxsync-node"), "new-epoch", "--data", n.data_dir,
                            "--standalone"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 1 and b"stop ctxsync-node first" in r.stderr, r
        # a second node on the same data directory is refused, not corrupting
        r = subprocess.run([bin_path("ctxsync-node"), "serve", "--data", n.data_dir,
                            "--listen", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 1 and b"in use by another ctxsync-node" in r.stderr, r
        n.stop()
        r = subprocess.run([bin_path("ctxsync-node"), "new-epoch", "--data", n.data_dir,
                            "--standalone"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 0, r
        out = __import__("json").loads(r.stdout)
        assert out["old_epoch"] == old and out["epoch"] != old and len(out["epoch"]) == 32
        n.restart()
        st, _, h = n.req("GET", "/health")
        assert st == 200 and h["epoch"] == out["epoch"], h


if __name__ == "__main__":
    run_tests()
