"""Soak test: bidirectional replication at a steady rate with periodic
faults, bounded in time. Not part of CTest; run it with

    scripts/soak.sh [SECONDS]            (default 600; builds first)
    CS_BIN_DIR=build/bin python3 tests/fault/soak.py --duration 600

Two nodes (eu-1, us-1) and one bridge with the links eu-to-us and
us-to-eu; the bridge reaches both nodes through tests/fault/faultproxy.py.
Writers write to both nodes at --rate writes/s each (text, JSON and, every
50th, a > 64 KiB blob; a few artifacts are written on both sides, so forks
happen too). Every --fault-every seconds one fault, chosen at random:

  first 40 % of the run:  kill -9 of the bridge (restarted at once), plus
                          the network faults below
  whole run:              partition (refused connections) of one node for
                          2-6 s, silent stall of one node for 2-5 s, every
                          open connection cut, 200 ms latency for 5 s,
                          kill -9 of us-1 (restarted on the same port)

(eu-1 is never killed, so its RSS is one process over the whole run; the
bridge is not killed in the last 60 %, so its RSS is one process there.)
At the end the faults stop, the writers stop, and the test waits for both
nodes to converge, then reports:

  events lost        acknowledged writes missing on either node  (must be 0)
  duplicates         versions present twice in a feed/history    (must be 0)
  max lag            max lag_events / lag_seconds of both links (status)
  RSS growth         eu-1 and the bridge: median of the last 20 % of the
                     samples minus median of the first 20 % after warm-up

Exit status 0 when lost == 0, duplicates == 0, and the RSS growth of eu-1
and of the bridge is under --rss-limit-mb (default 16 MiB) each.
"""

import argparse
import json
import os
import random
import re
import statistics
import sys
import threading
import time

from faultlib import (Bridge, Writer, check_acked, check_exactly_once,
                      fed_agent, fixed_node, link, rss_kb, version_ids,
                      wait_converged, wait_until, STATS)
from faultproxy import FaultProxy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--fault-every", type=float, default=12)
    ap.add_argument("--rss-limit-mb", type=float, default=16)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", help="also write the report to this file")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    random.seed(seed)
    print("soak: %.0f s, %.0f writes/s per node, a fault every %.0f s, seed %d"
          % (a.duration, a.rate, a.fault_every, seed), flush=True)

    eu = fixed_node("eu-1", "eu", extra=["--keepalive", "2"])
    us = fixed_node("us-1", "us", extra=["--keepalive", "2"])
    te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
    pe, pu = FaultProxy(eu.port), FaultProxy(us.port)
    ue, uu = "http://127.0.0.1:%d" % pe.port, "http://127.0.0.1:%d" % pu.port
    kw = {"keepalive_s": 2, "backoff_max_s": 2, "in_flight": 3}
    br = Bridge([link("eu-to-us", ue, te, uu, tu, **kw),
                 link("us-to-eu", uu, tu, ue, te, **kw)])
    writers = [Writer(eu, "ctx://soak/eu", n_uris=200, rate=a.rate, big_every=50),
               Writer(us, "ctx://soak/us", n_uris=200, rate=a.rate, big_every=50),
               Writer(eu, "ctx://soak/shared", n_uris=10, rate=1),
               Writer(us, "ctx://soak/shared", n_uris=10, rate=1)]
    samples = []     # (t, eu_rss, bridge_rss, bridge_pid, lag_events, lag_s, eu_sqlite_kb)
    faults = []
    stop = threading.Event()
    lock = threading.Lock()
    t0 = time.monotonic()

    def sampler():
        while not stop.is_set():
            lag_e = lag_s = None
            try:
                s = br.status()
                lag_e = max(l["lag_events"] for l in s.values())
                lag_s = max(l["lag_seconds"] for l in s.values())
            except Exception:
                pass
            heap = 0
            try:
                st_, _, m = eu.req("GET", "/metrics")
                mm = re.search(r"^ctxsync_sqlite_heap_bytes (\d+)", m if isinstance(m, str)
                               else m.decode(), re.M)
                heap = int(mm.group(1)) // 1024 if mm else 0
            except Exception:
                pass
            with lock:
                samples.append((time.monotonic() - t0, rss_kb(eu.pid),
                                rss_kb(br.pid) if br.running() else 0, br.pid,
                                lag_e, lag_s, heap))
            stop.wait(1.0)
    st = threading.Thread(target=sampler, daemon=True)
    st.start()

    def fault():
        now = time.monotonic() - t0
        early = now < 0.4 * a.duration
        kinds = ["partition", "stall", "cut", "latency", "kill_us"]
        if early:
            kinds += ["kill_bridge"] * 3
        k = random.choice(kinds)
        p = random.choice((pe, pu))
        side = "eu" if p is pe else "us"
        if k == "kill_bridge":
            br.kill9()
            br.start()
        elif k == "partition":
            p.set_mode("refuse")
            time.sleep(random.uniform(2, 6))
            p.set_mode("pass")
        elif k == "stall":
            p.set_mode("stall")
            time.sleep(random.uniform(2, 5))
            p.set_mode("pass")
            p.cut_all()
        elif k == "cut":
            p.cut_all()
        elif k == "latency":
            p.set_mode("latency", ms=200)
            time.sleep(5)
            p.set_mode("pass")
        elif k == "kill_us":
            us.kill9()
            STATS["node_kills"] += 1
            us.start()
        faults.append((round(now, 1), k, side if k in ("partition", "stall", "cut", "latency") else ""))
        print("  t=%6.1fs fault %s %s" % (now, k, faults[-1][2]), flush=True)

    try:
        while time.monotonic() - t0 < a.duration:
            time.sleep(random.uniform(0.5, 1.5) * a.fault_every)
            if time.monotonic() - t0 >= a.duration:
                break
            fault()
        pe.set_mode("pass")
        pu.set_mode("pass")
        for w in writers:
            w.stop()
        t_conv = time.monotonic()
        wait_converged([eu, us], 180, "soak end")
        conv_s = time.monotonic() - t_conv
        stop.set()
        st.join(5)
        lost = 0
        try:
            check_acked([eu, us], writers)
        except AssertionError as e:
            lost = sum(1 for w in writers for _, v, _ in w.acked
                       if v not in set(version_ids(eu)) or v not in set(version_ids(us)))
            print("  LOST: %s" % e)
        dups = 0
        for n in (eu, us):
            ids = version_ids(n)
            dups += len(ids) - len(set(ids))
            try:
                check_exactly_once(n)
            except AssertionError as e:
                print("  DUPLICATE: %s" % e)
                dups = max(dups, 1)
        acked = sum(len(w.acked) for w in writers)

        def growth(col, pid_col=None):
            with lock:
                xs = [s for s in samples if s[0] > 30 and s[col] > 0]
            if pid_col is not None and xs:
                # the longest run of one bridge process (the last 60 %)
                pid = xs[-1][pid_col]
                xs = [s for s in xs if s[pid_col] == pid and s[0] > 0.4 * a.duration + 30]
            if len(xs) < 10:
                return None, None, None
            k = max(1, len(xs) // 5)
            first = statistics.median(s[col] for s in xs[:k])
            last = statistics.median(s[col] for s in xs[-k:])
            return (last - first) / 1024.0, first / 1024.0, last / 1024.0
        ng, nf, nl = growth(1)
        bg, bf, bl = growth(2, 3)
        hg, hf, hl = growth(6)
        lags_e = [s[4] for s in samples if s[4] is not None]
        lags_s = [s[5] for s in samples if s[5] is not None]
        s = br.status()
        report = {
            "seed": seed, "duration_s": a.duration, "acked_writes": acked,
            "versions_per_node": len(version_ids(eu)),
            "events_lost": lost, "duplicates": dups,
            "max_lag_events": max(lags_e) if lags_e else None,
            "max_lag_seconds": round(max(lags_s), 2) if lags_s else None,
            "converged_after_s": round(conv_s, 1),
            "node_rss_mb": {"first": nf, "last": nl, "growth": ng},
            "bridge_rss_mb": {"first": bf, "last": bl, "growth": bg},
            "node_sqlite_heap_mb": {"first": hf, "last": hl, "growth": hg},
            "faults": len(faults),
            "fault_kinds": {k: sum(1 for f in faults if f[1] == k)
                            for k in sorted({f[1] for f in faults})},
            "bridge_kills": STATS["bridge_kills"], "node_kills": STATS["node_kills"],
            "reconnects": {n: l["reconnects"] for n, l in s.items()},
            "rejected": {n: l["counters"]["rejected"] for n, l in s.items()},
            "forks": {n: l["counters"]["fork"] for n, l in s.items()},
        }
        print("soak report:\n" + json.dumps(report, indent=1))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=1)
        ok = (lost == 0 and dups == 0 and
              (ng is None or ng < a.rss_limit_mb) and (bg is None or bg < a.rss_limit_mb))
        print("events lost %d, duplicates %d, max lag %s events / %s s, RSS growth "
              "node %s MiB, bridge %s MiB: %s" % (
                  lost, dups, report["max_lag_events"], report["max_lag_seconds"],
                  None if ng is None else round(ng, 1),
                  None if bg is None else round(bg, 1), "PASS" if ok else "FAIL"))
        assert br.stop() == 0
        print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
        return 0 if ok else 1
    finally:
        stop.set()
        for w in writers:
            w._halt.set()
        try:
            br.close()
        except Exception:
            pass
        pe.close()
        pu.close()
        for n in (eu, us):
            try:
                n.close()
            except Exception as e:
                print("node %s: %s" % (n.node_id, e))


if __name__ == "__main__":
    sys.exit(main())
