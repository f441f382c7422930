"""Fault suite: slow and non-reading SSE consumers.

A client that reads slowly and a client that never reads must not make the
node's memory grow without bound: past --sse-max-lag queued events the
node queues an `event: overflow` frame and ends the stream; every other
client keeps getting every event in order, and plain requests stay fast.
"""

import re
import time

from faultlib import (Node, SANITIZED, SSEClient, fed_agent,
                      rss_bound, rss_kb,
                      run_tests, test, wait_until, write)


def overflows(n):
    st, _, m = n.req("GET", "/metrics")
    assert st == 200, st
    x = re.search(r"^ctxsync_sse_overflows_total (\d+)", m, re.M)
    return int(x.group(1)) if x else 0


@test
def slow_consumer_gets_overflow_others_unaffected():
    with Node("slow-1", "eu", extra_args=["--sse-max-lag", "100"]) as n:
        tok = fed_agent(n, "us")
        fast = SSEClient(n, query={"pattern": "ctx://acme/**"})
        assert fast.wait_retry(5)
        slow = SSEClient(n, query={"pattern": "ctx://acme/**"}, rcvbuf=4096,
                         paused=True)
        fed = SSEClient(n, token=tok, path="/federation/stream",
                        query={"mode": "full"}, rcvbuf=4096, paused=True)
        time.sleep(0.3)
        rss0 = rss_kb(n.pid)
        o0 = overflows(n)
        lat = []
        summary = "s" * 4000   # ~4.5 KB frames: more than socket buffers hold
        for i in range(1500):
            st, _, b = n.req("POST", "/artifacts", {
                "uri": "ctx://acme/docs/s%04d" % i, "content": "c%d" % i,
                "summary": summary})
            assert st == 201, (st, b)
            if i % 100 == 0:
                t0 = time.monotonic()
                assert n.req("GET", "/health", token=None)[0] == 200
                lat.append(time.monotonic() - t0)
        assert fast.wait_for(1500, 30), fast.count()
        seqs = fast.seqs()
        assert seqs == list(range(seqs[0], seqs[0] + 1500)), "fast client gap"
        grow = rss_kb(n.pid) - rss0
        wait_until(lambda: overflows(n) >= o0 + 2, 10)
        print("  node RSS growth %d KiB over 1500 x 4.5 KiB events with 2 "
              "stuck clients; /health max %.1f ms" % (grow, max(lat) * 1000))
        rss_bound(grow, 48 * 1024, "node with 2 stuck clients")
        assert max(lat) < 1.0, lat
        # the slow client resumes: it gets what was queued, the overflow
        # frame, and the end of the stream
        slow.resume()
        assert slow.wait_for(1, 15, event="overflow"), (slow.count(), slow.error)
        assert slow.closed.wait(10), "stream not ended after overflow"
        ss = slow.seqs()
        assert ss == list(range(ss[0], ss[0] + len(ss))), "gap before overflow"
        assert len(ss) <= 1500
        ov = [e for e in slow.events if e.event == "overflow"][0]
        assert ov.json["last_id"] >= ss[-1], (ov.json, ss[-1])
        fed.resume()
        assert fed.wait_for(1, 15, event="overflow"), (fed.count(), fed.error)
        assert fed.closed.wait(10)
        # it can resume from its last id without a gap
        again = SSEClient(n, query={"pattern": "ctx://acme/**"},
                          headers={"Last-Event-ID": str(ss[-1])})
        assert again.wait_for(1500 - len(ss), 20)
        assert again.seqs()[0] == ss[-1] + 1
        for c in (fast, slow, fed, again):
            c.close()


@test
def never_reading_clients_memory_bounded():
    """Clients that connect and never read a byte, on a stream carrying
    large payloads: the node's memory must stay bounded (here: well under
    what the stuck clients would hold if everything were queued)."""
    with Node("stuck-1", "eu", extra_args=["--sse-max-lag", "50"]) as n:
        tok = fed_agent(n, "us")
        stuck = [SSEClient(n, token=tok, path="/federation/stream",
                           query={"mode": "full"}, rcvbuf=4096, paused=True)
                 for _ in range(2)]
        fast = SSEClient(n, query={"pattern": "**"})
        assert fast.wait_retry(5)
        time.sleep(0.3)
        rss0 = rss_kb(n.pid)
        big = 200 * 1024
        for i in range(200):
            write(n, "ctx://acme/big/b%03d" % (i % 50), ("%05d" % i) * (big // 5))
        assert fast.wait_for(200, 30)
        grow = rss_kb(n.pid) - rss0
        total = 200 * big * 2 * 4 // 3 // 1024
        print("  node RSS growth %d KiB; 2 stuck clients x 200 x 200 KiB (base64) = "
              "%d KiB if unbounded (max-lag 50)" % (grow, total))
        # 2 clients x 50 events x ~270 KiB (base64) ~= 27 MiB is the
        # count-bound; bounded means well below the unbounded total
        rss_bound(grow, total * 6 // 10, "node with 2 never-reading clients")
        assert overflows(n) >= 2
        fast.close()
        for c in stuck:
            c.close()


def _big_writes(n, rounds, tag):
    big = 256 * 1024
    for i in range(rounds):     # 160 rounds = 40 MiB of payloads
        write(n, "ctx://acme/big/%s%03d" % (tag, i % 40), ("%05d" % i) * (big // 5))
    time.sleep(0.5)


@test
def byte_bound_of_stream_queues():
    """With the default --sse-max-lag (10000) a stuck federation client on
    large payloads is bounded by the queue's byte bound (8 MiB), not the
    event count: what the node grows by with the stuck client, minus what
    the same writes grow it by without one (SQLite page caches, bounded by
    cache_size), stays within 8 MiB plus socket buffers; and more writes
    do not grow it further."""
    with Node("base-2", "eu") as n:
        time.sleep(0.3)
        rss0 = rss_kb(n.pid)
        _big_writes(n, 160, "c")
        base = rss_kb(n.pid) - rss0
    with Node("stuck-2", "eu") as n:
        tok = fed_agent(n, "us")
        stuck = SSEClient(n, token=tok, path="/federation/stream",
                          query={"mode": "full"}, rcvbuf=4096, paused=True)
        time.sleep(0.3)
        rss0 = rss_kb(n.pid)
        _big_writes(n, 160, "c")
        grow = rss_kb(n.pid) - rss0
        _big_writes(n, 160, "d")
        grow2 = rss_kb(n.pid) - rss0
        print("  node RSS growth over 40 MiB of payloads: %d KiB without a client, "
              "%d KiB with one stuck client (+%d KiB), %d KiB after 40 MiB more"
              % (base, grow, grow - base, grow2))
        assert overflows(n) >= 1
        if not SANITIZED:
            # (was NODE-SSE-BYTES: the absolute bound forgot the write
            # path's own, bounded, growth)
            assert grow - base < 12 * 1024, (base, grow)
            assert grow2 - grow < 6 * 1024, (grow, grow2)
        stuck.close()

if __name__ == "__main__":
    run_tests()
