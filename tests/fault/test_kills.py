"""Fault suite: kill -9 of the bridge and of the nodes.

- the bridge is SIGKILLed at random points >= 50 times in a loop while both
  nodes take writes and the two links (eu <-> us) replicate;
- the source node is SIGKILLed during writes and while the bridge reads it;
- the target node is SIGKILLed in the middle of ingest batches.

After each scenario: every acknowledged write is present (with its hash) on
both nodes, every version is exactly once on every node, and the targets'
checkpoints are consistent with their data (every source event up to the
checkpoint is present; epoch = the source's; checkpoint <= source head).
"""

import random
import time

from faultlib import (Bridge, Writer, bridged, check_acked, check_checkpoint,
                      check_exactly_once, fed_agent, fixed_node, kill9_node,
                      link, node_url, run_tests, STATS, summary_line,
                      version_ids, wait_converged, wait_until, write)

KILLS = int(__import__("os").environ.get("CS_FAULT_BRIDGE_KILLS", "55"))


def pair(extra=()):
    eu = fixed_node("eu-1", "eu", extra=extra)
    us = fixed_node("us-1", "us", extra=extra)
    return eu, us, fed_agent(eu, "us"), fed_agent(us, "eu")


def both_links(eu, us, te, tu, **kw):
    return [link("eu-to-us", node_url(eu), te, node_url(us), tu, **kw),
            link("us-to-eu", node_url(us), tu, node_url(eu), te, **kw)]


@bridged
def bridge_kill9_loop_bidirectional():
    """>= 50 kill -9 of the bridge at random points (during start, catch-up,
    live streaming and ingest) while both sides write."""
    eu, us, te, tu = pair()
    with eu, us:
        br = Bridge(both_links(eu, us, te, tu, batch={"max_events": 25},
                               in_flight=3, backoff_max_s=1), start=False)
        ws = [Writer(eu, "ctx://acme/eu", rate=60, big_every=97),
              Writer(us, "ctx://acme/us", rate=60, big_every=89),
              Writer(eu, "ctx://acme/shared", n_uris=5, rate=5),
              Writer(us, "ctx://acme/shared", n_uris=5, rate=5)]
        kills0 = STATS["bridge_kills"]
        lags = []
        t0 = time.monotonic()
        for i in range(KILLS):
            br.start()
            # random point: right after start (info/checkpoint), or later
            # (catch-up pages, live stream, batches in flight)
            r = random.random()
            time.sleep(random.uniform(0, 0.05) if r < 0.25 else random.uniform(0.05, 0.6))
            br.kill9()
            if i % 10 == 9:
                lags.append((eu.head(), us.head()))
        kills = STATS["bridge_kills"] - kills0
        print("  %d bridge kills in %.1fs; heads every 10 kills: %s"
              % (kills, time.monotonic() - t0, lags))
        assert kills >= 50, kills
        br.start()
        time.sleep(1.0)
        for w in ws:
            w.stop()
        for w in ws:
            assert not w.unexpected, w.unexpected[:3]
        wait_converged([eu, us], 90, "after %d bridge kills" % kills)
        n_acked = check_acked([eu, us], ws)
        n_eu, n_us = check_exactly_once(eu), check_exactly_once(us)
        assert n_eu == n_us, (n_eu, n_us)
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head() and
                   br.link("us-to-eu")["applied_seq"] == us.head(), 20)
        check_checkpoint(eu, us, must_equal_head=True)
        check_checkpoint(us, eu, must_equal_head=True)
        print("  %d acknowledged writes, %d versions on each node, none lost "
              "or duplicated" % (n_acked, n_eu))
        assert br.stop() == 0
        summary_line()


@bridged
def source_node_kill9_during_writes_and_reads():
    """The source node is SIGKILLed while clients write to it and the bridge
    pages/streams from it; restarted on the same port."""
    eu, us, te, tu = pair()
    with eu, us:
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu,
                          batch={"max_events": 30}, in_flight=2, backoff_max_s=1)])
        writers = []
        for round_ in range(5):
            w = Writer(eu, "ctx://acme/r%d" % round_, rate=80, big_every=41)
            writers.append(w)
            time.sleep(random.uniform(0.4, 1.2))
            kill9_node(eu)
            w.stop()
            l = br.wait_state("eu-to-us", ("backing_off", "starting", "stalled"), 20)
            eu.start()
            check_checkpoint(eu, us)
        br.wait_state("eu-to-us", "live", 30)
        wait_converged([eu, us], 60, "after source kills")
        n = check_acked([eu, us], writers)
        check_exactly_once(eu)
        check_exactly_once(us)
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head(), 20)
        check_checkpoint(eu, us, must_equal_head=True)
        print("  5 source kills; %d acknowledged writes all replicated once" % n)
        assert br.stop() == 0
        summary_line()


@bridged
def target_node_kill9_during_ingest():
    """The target is SIGKILLed while ingest batches are in flight; after
    each restart its checkpoint matches its data (checked before the bridge
    gets to it again), and the end state is exactly once."""
    eu, us, te, tu = pair()
    with eu, us:
        # a backlog with blobs, so that batches are big and take time
        for i in range(1200):
            write(eu, "ctx://acme/back/d%03d" % (i % 300),
                  ("blob %d " % i) * 10000 if i % 23 == 0 else "v %d" % i)
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu,
                          batch={"max_events": 40}, in_flight=4, backoff_max_s=1)])
        w = Writer(eu, "ctx://acme/live", rate=40)
        mid = 0
        cps = []
        for k in range(6):
            time.sleep(random.uniform(0.05, 0.3))
            behind = us.head() < eu.head()
            kill9_node(us)
            mid += behind
            us.start()
            # consistent right after the crash, before new batches land
            cps.append(check_checkpoint(eu, us))
            br.wait_state("eu-to-us", ("catching_up", "live", "backing_off",
                                       "starting", "stalled"), 20)
        w.stop()
        print("  6 target kills (%d while behind); checkpoints after restart: %s"
              % (mid, cps))
        assert cps == sorted(cps), ("checkpoint went backwards", cps)
        wait_converged([eu, us], 90, "after target kills")
        check_acked([eu, us], [w])
        check_exactly_once(eu)
        check_exactly_once(us)
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head(), 20)
        check_checkpoint(eu, us, must_equal_head=True)
        l = br.link("eu-to-us")
        assert l["counters"]["rejected"] == 0, l
        assert l["state"] == "live", l
        assert br.stop() == 0
        summary_line()


if __name__ == "__main__":
    run_tests()
