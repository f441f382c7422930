#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench.py: the ContextSync benchmark driver (run it through scripts/bench.sh).

Starts real processes on 127.0.0.1 (ctxsync-node, ctxsync-bridge, the bench
programs of tests/bench), runs every workload `--runs` times, prints one JSON
line per workload and writes them all to --out. Every process it starts is
killed by PID at exit; every data dir is a temp dir that is removed.

The load generators run on the same machine (and cores) as the servers: every
figure includes their CPU cost. See docs/performance.md.
"""
import argparse
import atexit
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PROCS = []      # every Popen we started
TMPDIRS = []    # every temp dir we created
NOTE = "load generator runs on the same cores as the server(s)"


# ---------------------------------------------------------------- cleanup

def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    for d in TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


def on_signal(sig, _frame):
    sys.exit(128 + sig)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def mkdtemp(env, prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=env.tmp_root)
    TMPDIRS.append(d)
    return d


def spawn(args, log_path, **kw):
    log = open(log_path, "ab")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, **kw)
    log.close()
    PROCS.append(p)
    return p


def stop(p, timeout=10):
    """SIGTERM, then SIGKILL; by PID, only our own child."""
    if p is None or p.poll() is not None:
        return
    os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_file(path, proc, timeout, what):
    t_end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before it was ready"
                               % (what, proc.returncode))
        if time.monotonic() > t_end:
            raise RuntimeError("%s not ready within %ss" % (what, timeout))
        time.sleep(0.005)
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- HTTP

def http(addr, method, path, body=None, token=None, timeout=60):
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request("http://%s%s" % (addr, path), data=data,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, st = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, st = e.read(), e.code
    try:
        return st, json.loads(raw)
    except ValueError:
        return st, raw.decode(errors="replace")


# ---------------------------------------------------------------- processes

class Env:
    def __init__(self, args):
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.bench_dir = os.path.abspath(args.bench_bin_dir)
        self.tmp_root = args.tmp_dir
        self.quick = args.quick
        self.runs = args.runs
        self.bridge = os.environ.get("CS_BRIDGE_BIN") or os.path.join(
            self.bin_dir, "ctxsync-bridge")
        self.logs = mkdtemp(self, "cs-bench-logs-")

    def tool(self, name):
        return os.path.join(self.bench_dir, name)

    def has_bridge(self):
        return os.access(self.bridge, os.X_OK)


class Node:
    def __init__(self, env, node_id, region="eu"):
        self.env = env
        self.node_id = node_id
        self.dir = mkdtemp(env, "cs-bench-%s-" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(env.logs, "%s-%d.log" % (node_id, id(self)))
        r = subprocess.run([os.path.join(env.bin_dir, "ctxsync-node"), "init",
                            "--data", self.data, "--node-id", node_id,
                            "--region", region, "--admin", "admin"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, check=True)
        self.token = json.loads(r.stdout)["token"]
        self.proc = None
        self.addr = None

    def start(self, extra=()):
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = spawn([os.path.join(self.env.bin_dir, "ctxsync-node"),
                           "serve", "--data", self.data, "--listen",
                           "127.0.0.1:0", "--ready-file", ready] + list(extra),
                          self.log)
        self.addr = wait_file(ready, self.proc, 30, "ctxsync-node").strip()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def rss(self):
        return rss_kib(self.proc.pid)

    def req(self, method, path, body=None, token=None):
        return http(self.addr, method, path, body, token or self.token)

    def stop(self):
        stop(self.proc)

    def head_seq(self):
        st, b = self.req("GET", "/federation/info")
        if st != 200:
            raise RuntimeError("federation/info: %s %r" % (st, b))
        return b["head_seq"]


def run_tool(env, args, timeout=300):
    """Runs a bench program; returns its last stdout line as JSON."""
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (
            os.path.basename(args[0]), r.returncode,
            r.stderr.decode(errors="replace")[-2000:]))
    lines = [l for l in r.stdout.decode().splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("%s printed no result" % args[0])
    return json.loads(lines[-1])


def loadgen(env, node, mode, *extra, timeout=600):
    args = [env.tool("loadgen"), "--addr", node.addr, "--mode", mode,
            "--token", node.token] + [str(x) for x in extra]
    return run_tool(env, args, timeout)


# ---------------------------------------------------------------- prefill

def version_id(uri, version, parent, chash, author, created, origin):
    r = json.dumps({"author_id": author, "content_hash": chash,
                    "created_at": created, "merged_from": [],
                    "origin_node": origin, "parent_id": parent, "uri": uri,
                    "version": version}, separators=(",", ":"), sort_keys=True)
    return "v:" + hashlib.sha256(r.encode()).hexdigest()


def prefill_ingest(node, n_events, size, artifacts=1000, origin="gen-1"):
    """Puts n_events versions into node's feed through POST
    /federation/ingest (one transaction per batch): artifacts URIs, each a
    chain of versions with `size`-byte text payloads inline. Much faster
    than PUTs; the feed rows are the same shape (origin = `origin`)."""
    batch = max(200, min(5000, 4000000 // (size + 1000)))  # < --max-body
    heads = {}
    base_us = int(time.time() * 1e6) - 3600 * 1000000
    pad = ("abcdefghijklmnopqrstuvwxyz" * (size // 26 + 2))
    sent = 0
    while sent < n_events:
        events = []
        for k in range(sent, min(n_events, sent + batch)):
            a = k % artifacts
            uri = "ctx://bench/feed/a%06d" % a
            parent, ver = heads.get(uri, (None, 0))
            ver += 1
            text = ("%016d" % k + pad)[:size]
            chash = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
            us = base_us + k
            created = time.strftime("%Y-%m-%dT%H:%M:%S",
                                    time.gmtime(us // 1000000)) + \
                ".%06dZ" % (us % 1000000)
            vid = version_id(uri, ver, parent, chash, "admin", created, origin)
            events.append({
                "seq": k + 1, "event_id": "%s:%d" % (origin, k + 1),
                "event_type": "artifact.created" if ver == 1
                else "artifact.updated",
                "artifact_uri": uri, "org": "bench", "domain": "feed",
                "name": "a%06d" % a, "version": ver,
                "previous_version": ver - 1 if ver > 1 else None,
                "version_id": vid, "parent_id": parent, "merged_from": [],
                "author_id": "admin", "actor_type": "human",
                "agent_class": None, "approved_by": None, "summary": None,
                "content_type": "text/plain; charset=utf-8",
                "content_hash": chash, "size": len(text), "deleted": False,
                "created_at": created,
                "origin": {"node_id": origin, "region": "eu", "seq": k + 1},
                "home_region": None, "payload_state": "inline",
                "payload": {"encoding": "utf8", "data": text}})
            heads[uri] = (vid, ver)
        body = {"source": {"node_id": origin, "epoch": "0" * 32},
                "events": events, "checkpoint": {"seq": sent + len(events)}}
        st, b = node.req("POST", "/federation/ingest", body)
        if st != 200:
            raise RuntimeError("ingest: %s %r" % (st, str(b)[:500]))
        bad = [x for x in b["results"] if x["status"] != "applied"]
        if bad:
            raise RuntimeError("ingest: %d not applied, first %r"
                               % (len(bad), bad[0]))
        sent += len(events)


# ---------------------------------------------------------------- workloads

def w_sqlite_ceiling(env, variant="rows"):
    d = mkdtemp(env, "cs-bench-sqlite-")
    r = run_tool(env, [env.tool("sqlite_ceiling"), "--db",
                       os.path.join(d, "c.db"), "--writes",
                       "5000" if env.quick else "50000", "--batch", "64",
                       "--variant", variant])
    shutil.rmtree(d, ignore_errors=True)
    return {"value": r["writes_per_s"], "rows_per_s": r["rows_per_s"],
            "batch": r["batch"], "writes": r["writes"]}


def w_http_floor(env):
    d = mkdtemp(env, "cs-bench-floor-")
    ready = os.path.join(d, "ready")
    p = spawn([env.tool("mhd_floor"), "--ready-file", ready],
              os.path.join(env.logs, "mhd_floor.log"))
    try:
        addr = wait_file(ready, p, 10, "mhd_floor").strip()
        r = run_tool(env, [env.tool("loadgen"), "--addr", addr, "--mode",
                           "path", "--path", "/health", "--conns", "64",
                           "--duration", "2" if env.quick else "8",
                           "--warmup", "0.5" if env.quick else "1"])
        rss = rss_kib(p.pid)
    finally:
        stop(p)
    return {"value": r["rps"], "p50": r["p50_ms"], "p99": r["p99_ms"],
            "rss_kib": rss, "errors": r["bad_status"] + r["conn_errors"]}


def w_put_get(env):
    """One fresh node: create 1000 artifacts, then PUT, then GET (both 64
    connections). Returns two results."""
    n = Node(env, "bench-1").start()
    try:
        c = loadgen(env, n, "create", "--uris", 1000, "--conns", 16)
        if c["bad_status"] or c["conn_errors"]:
            raise RuntimeError("create failed: %r" % c)
        dur = "3" if env.quick else "10"
        put = loadgen(env, n, "put", "--uris", 1000, "--conns", 64,
                      "--duration", dur, "--warmup",
                      "0.5" if env.quick else "2", "--size", 1024)
        rss_put = n.rss()
        get = loadgen(env, n, "get", "--uris", 1000, "--conns", 64,
                      "--duration", "2" if env.quick else dur, "--warmup",
                      "0.5" if env.quick else "1")
        rss_get = n.rss()
        st, metrics = n.req("GET", "/metrics")
        group_max = None
        if st == 200 and isinstance(metrics, str):
            for line in metrics.splitlines():
                if line.startswith("ctxsync_store_group_max "):
                    group_max = int(float(line.split()[1]))
    finally:
        n.stop()
    return (
        {"value": put["rps"], "p50": put["p50_ms"], "p99": put["p99_ms"],
         "max_ms": put["max_ms"], "rss_kib": rss_put,
         "errors": put["bad_status"] + put["conn_errors"],
         "requests": put["measured"], "group_max": group_max},
        {"value": get["rps"], "p50": get["p50_ms"], "p99": get["p99_ms"],
         "max_ms": get["max_ms"], "rss_kib": rss_get,
         "errors": get["bad_status"] + get["conn_errors"],
         "requests": get["measured"]})


def w_feed_page(env):
    n_events = 10000 if env.quick else 100000
    n = Node(env, "bench-feed").start()
    try:
        prefill_ingest(n, n_events, 1024)
        head = n.head_seq()
        r = loadgen(env, n, "feed", "--limit", 1000)
        rss = n.rss()
    finally:
        n.stop()
    if r["events"] != head or r["bad_status"]:
        raise RuntimeError("feed paging saw %d of %d events: %r"
                           % (r["events"], head, r))
    return {"value": r["seconds"] * 1000.0, "events": r["events"],
            "pages": r["pages"], "events_per_s": r["events_per_s"],
            "p50": r["p50_ms"], "p99": r["p99_ms"], "rss_kib": rss}


def w_node_idle(env):
    n = Node(env, "bench-idle").start()
    try:
        n.req("GET", "/health")
        time.sleep(1.0)
        rss = n.rss()
    finally:
        n.stop()
    return {"value": rss / 1024.0, "rss_kib": rss}


def w_sse(env):
    clients = 200 if env.quick else 1000
    events = 200 if env.quick else 1000
    rate = 100
    # every client uses the admin token: lift the per-actor stream limit
    # (--sse-max-per-actor, 64 by default), or all but 64 get 429
    n = Node(env, "bench-sse").start(
        extra=["--sse-max-per-actor", str(clients + 16)])
    try:
        r = run_tool(env, [env.tool("sse_fanout"), "--addr", n.addr,
                           "--token", n.token, "--clients", str(clients),
                           "--events", str(events), "--rate", str(rate),
                           "--pid", str(n.pid), "--timeout", "60"],
                     timeout=180)
    finally:
        n.stop()
    return {"value": r["p99_ms"], "p50": r["p50_ms"], "p99": r["p99_ms"],
            "max_ms": r["max_ms"], "clients": clients, "events": events,
            "writer_rate": rate, "delivered": r["delivered"],
            "expected": r["expected"], "all_delivered": r["all_delivered"],
            "rss_kib": r["rss_kib_connected"],
            "rss_kib_peak": r["rss_kib_peak"]}


# ---- replication (needs ctxsync-bridge) ----

def fed_agent(node, region, actor_id):
    st, b = node.req("POST", "/actors", {
        "actor_id": actor_id, "actor_type": "agent", "name": actor_id,
        "agent_class": "federation", "region": region})
    if st != 201:
        raise RuntimeError("create federation agent: %s %r" % (st, b))
    st, b = node.req("POST", "/permissions", {
        "actor_id": actor_id, "artifact_pattern": "**",
        "operations": ["replicate"]})
    if st != 201:
        raise RuntimeError("grant replicate: %s %r" % (st, b))
    st, b = node.req("POST", "/actors/%s/tokens" % actor_id, {})
    if st != 201:
        raise RuntimeError("token: %s %r" % (st, b))
    return b["token"]


class Bridge:
    def __init__(self, env, src, dst, mode):
        self.env = env
        self.dir = mkdtemp(env, "cs-bench-bridge-")
        self.cfg = os.path.join(self.dir, "bridge.json")
        self.ready = os.path.join(self.dir, "ready")
        self.log = os.path.join(env.logs, "bridge-%d.log" % id(self))
        self.src, self.dst = src, dst
        cfg = {"control": "ipc://%s/ctl.ipc" % self.dir,
               "links": [{"name": "bench",
                          "source": {"url": "http://" + src.addr,
                                     "token": fed_agent(src, "us", "fed-us")},
                          "target": {"url": "http://" + dst.addr,
                                     "token": fed_agent(dst, "eu", "fed-eu")},
                          "mode": mode, "patterns": ["**"],
                          "batch": {"max_events": 500,
                                    "max_bytes": 4194304},
                          "in_flight": 4}]}
        with open(self.cfg, "w") as f:
            json.dump(cfg, f)
        self.proc = None

    def start(self):
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        self.proc = spawn([self.env.bridge, "run", "--config", self.cfg,
                           "--status", "127.0.0.1:0", "--ready-file",
                           self.ready], self.log)
        return self

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)

    def stop(self):
        stop(self.proc)


def checkpoint(dst, src_node_id):
    st, b = dst.req("GET", "/federation/checkpoints/%s" % src_node_id)
    return b["seq"] if st == 200 else 0


def wait_caught_up(bridge, dst, src_id, head, timeout, sample_rss=None):
    t_end = time.monotonic() + timeout
    while True:
        if checkpoint(dst, src_id) >= head:
            return True
        if sample_rss is not None and bridge.proc.poll() is None:
            r = rss_kib(bridge.proc.pid)
            if r is not None:
                sample_rss.append(r)
        if bridge.proc.poll() is not None:
            raise RuntimeError("ctxsync-bridge exited with %s (log %s)"
                               % (bridge.proc.returncode, bridge.log))
        if time.monotonic() > t_end:
            return False
        time.sleep(0.005)


def w_catchup(env, n_events, mode, size):
    src = Node(env, "eu-1", "eu").start()
    dst = Node(env, "us-1", "us").start()
    br = None
    try:
        prefill_ingest(src, n_events, size)
        head = src.head_seq()
        br = Bridge(env, src, dst, mode)
        rss = []
        t0 = time.monotonic()
        br.start()
        # budget: a floor of 300 events/s (a slower catch-up is reported
        # as a failure, not waited for)
        ok = wait_caught_up(br, dst, "eu-1", head,
                            60 + n_events / 300.0, rss)
        secs = time.monotonic() - t0
        if not ok:
            raise RuntimeError(
                "catch-up of %d events did not finish in %.0f s: target "
                "checkpoint %d of source head %d (bridge log %s)"
                % (n_events, secs, checkpoint(dst, "eu-1"), head, br.log))
        time.sleep(0.5)
        idle = rss_kib(br.proc.pid)
    finally:
        if br is not None:
            br.stop()
        src.stop()
        dst.stop()
    return {"value": n_events / secs, "seconds": secs, "events": n_events,
            "mode": mode, "payload_bytes": size,
            "rss_kib": max(rss) if rss else idle, "rss_kib_idle": idle}


def read_pairs(path, cols):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= cols:
                    out[p[0]] = [int(x) for x in p[1:cols]]
    return out


def pct(v, q):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def w_live_and_resume(env):
    """Live lag at 1000 writes/s (mode full), then resume after kill -9."""
    n_writes = 1500 if env.quick else 10000
    src = Node(env, "eu-1", "eu").start()
    dst = Node(env, "us-1", "us").start()
    br = None
    try:
        c = loadgen(env, src, "create", "--uris", 100, "--conns", 8)
        if c["bad_status"]:
            raise RuntimeError("create failed: %r" % c)
        br = Bridge(env, src, dst, "full").start()
        if not wait_caught_up(br, dst, "eu-1", src.head_seq(), 60):
            raise RuntimeError("bridge did not catch up (log %s)" % br.log)
        d = mkdtemp(env, "cs-bench-lag-")
        ready = os.path.join(d, "ready")
        recv_log = os.path.join(d, "recv")
        ack_log = os.path.join(d, "acks")
        lis = subprocess.Popen(
            [env.tool("sse_fanout"), "--addr", dst.addr, "--token",
             dst.token, "--clients", "1", "--events", str(n_writes),
             "--no-writer", "--ready-file", ready, "--recv-log", recv_log,
             "--timeout", "60"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        PROCS.append(lis)
        wait_file(ready, lis, 10, "sse_fanout listener")
        w = loadgen(env, src, "put", "--uris", 100, "--conns", 16,
                    "--rate", 1000, "--requests", n_writes, "--ack-log",
                    ack_log)
        out, err = lis.communicate(timeout=120)
        acks = read_pairs(ack_log, 2)
        recv = read_pairs(recv_log, 3)
        lags = [(recv[v][0] - acks[v][0]) / 1000.0 for v in acks if v in recv]
        lags_created = [(r[0] - r[1]) / 1000.0 for r in recv.values()]
        live = {"value": pct(lags, 0.99), "p50": pct(lags, 0.5),
                "p99": pct(lags, 0.99), "max_ms": max(lags) if lags else None,
                "matched": len(lags), "writes": n_writes,
                "write_rps": w["rps"],
                "p99_from_created_ms": pct(lags_created, 0.99),
                "rss_kib": rss_kib(br.proc.pid)}
        if len(lags) < n_writes:
            live["error"] = "only %d of %d writes seen on the target" % (
                len(lags), n_writes)
        # resume after kill -9: write while the bridge is down, restart,
        # time until the target's checkpoint reaches the source head
        br.kill9()
        loadgen(env, src, "put", "--uris", 100, "--conns", 4, "--requests",
                200)
        head = src.head_seq()
        t0 = time.monotonic()
        br.start()
        ok = wait_caught_up(br, dst, "eu-1", head, 30)
        resume_ms = (time.monotonic() - t0) * 1000.0
        resume = {"value": resume_ms if ok else None, "backlog_events": 200}
        if not ok:
            resume["error"] = "did not resume within 30 s"
    finally:
        if br is not None:
            br.stop()
        src.stop()
        dst.stop()
    return live, resume


# ---------------------------------------------------------------- driver

TARGETS = {
    "put_1k_64c": (">=", 20000),
    "get_latest_64c": (">=", 40000),
    "feed_page_100k": ("<=", 1000),
    "sse_fanout_1000": ("<=", 100),
    "node_rss_idle": ("<=", 30),
    "replication_catchup_metadata": (">=", 20000),
    "replication_catchup_full_2k": (">=", 10000),
    "replication_live_lag": ("<=", 50),
    "bridge_resume_kill9": ("<=", 500),
}


def aggregate(name, unit, runs, extra=None):
    vals = [r["value"] for r in runs if r.get("value") is not None]
    out = {"name": name, "unit": unit}
    if vals:
        out["value"] = round(statistics.median(vals), 3)
        out["min"] = round(min(vals), 3)
        out["max"] = round(max(vals), 3)
    else:
        out["value"] = None
    out["runs"] = [None if r.get("value") is None else round(r["value"], 3)
                   for r in runs]
    keys = set()
    for r in runs:
        keys.update(k for k in r if k != "value")
    for k in sorted(keys):
        xs = [r[k] for r in runs if k in r]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool)
               for x in xs) and xs:
            out[k] = round(statistics.median(xs), 3)
        else:
            out[k] = xs[-1] if len(set(map(str, xs))) == 1 else xs
    for k in ("p50", "p99", "rss_kib"):
        out.setdefault(k, None)
    if name in TARGETS and out["value"] is not None:
        op, t = TARGETS[name]
        out["target"] = "%s %s" % (op, t)
        out["target_met"] = out["value"] >= t if op == ">=" else \
            out["value"] <= t
        # "all delivered" is part of the SSE target
        if any(r.get("all_delivered") is False for r in runs):
            out["target_met"] = False
    out["note"] = NOTE
    if extra:
        out.update(extra)
    return out


OUT_FILE = None  # bench-results.json, written line by line


def emit(results, line):
    results.append(line)
    print(json.dumps(line), flush=True)
    if OUT_FILE is not None:
        OUT_FILE.write(json.dumps(line) + "\n")
        OUT_FILE.flush()


def machine_info(env):
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fs = subprocess.run(["stat", "-f", "-c", "%T", env.tmp_root or
                         tempfile.gettempdir()], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL).stdout.decode().strip()
    return {"name": "machine", "nproc": os.cpu_count(), "model": model,
            "kernel": platform.release(),
            "loadavg": list(os.getloadavg()),
            "data_dir_fs": fs, "quick": env.quick, "runs": env.runs,
            "note": NOTE}


def repeat(env, fn, *a):
    out = []
    for _ in range(env.runs):
        out.append(fn(env, *a))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--bench-bin-dir", required=True)
    ap.add_argument("--tmp-dir", default=None)
    ap.add_argument("--out", default="bench-results.json")
    ap.add_argument("--only", default="",
                    help="comma-separated workload groups: ceilings,put,feed,"
                         "sse,idle,replication,linearity")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = Env(args)
    only = set(x for x in args.only.split(",") if x)
    want = (lambda g: not only or g in only)
    global OUT_FILE
    OUT_FILE = open(args.out, "w")  # partial results survive an interrupt
    results = []
    failed = False
    emit(results, machine_info(env))

    def guarded(name, unit, fn, *a, **kw):
        nonlocal failed
        try:
            return fn(*a, **kw)
        except Exception as e:  # one broken workload must not hide the rest
            failed = True
            emit(results, {"name": name, "unit": unit, "value": None,
                           "error": str(e)[:1000], "note": NOTE})
            return None

    sq = floor = None
    if want("ceilings") or want("put"):
        runs = guarded("sqlite_ceiling", "writes/s", repeat, env,
                       w_sqlite_ceiling, "rows")
        if runs:
            line = aggregate("sqlite_ceiling", "writes/s", runs,
                             {"what": "per write: blob + version + event + "
                              "provenance rows, batches of 64, WAL, "
                              "synchronous=NORMAL, no HTTP"})
            sq = line["value"]
            emit(results, line)
        runs = guarded("sqlite_ceiling_full", "writes/s", repeat, env,
                       w_sqlite_ceiling, "full")
        if runs:
            emit(results, aggregate(
                "sqlite_ceiling_full", "writes/s", runs,
                {"what": "as sqlite_ceiling plus what the node also does per "
                 "PUT: head read + MAX(seq) + head update + search_fts "
                 "delete/insert"}))
        runs = guarded("http_floor", "req/s", repeat, env, w_http_floor)
        if runs:
            line = aggregate("http_floor", "req/s", runs,
                             {"what": "trivial libmicrohttpd handler, node's "
                              "daemon flags, 64 connections"})
            floor = line["value"]
            emit(results, line)

    def ratios(line, sqlite=True):
        v = line.get("value")
        if v is not None and sq and sqlite:
            line["ratio_to_sqlite_ceiling"] = round(v / sq, 3)
        if v is not None and floor:
            line["ratio_to_http_floor"] = round(v / floor, 3)
        return line

    if want("put"):
        runs = guarded("put_1k_64c", "writes/s", repeat, env, w_put_get)
        if runs:
            emit(results, ratios(aggregate(
                "put_1k_64c", "writes/s", [r[0] for r in runs],
                {"what": "PUT new version, 1 KiB JSON, 1000 artifacts, "
                 "64 keep-alive connections"})))
            emit(results, ratios(aggregate(
                "get_latest_64c", "reads/s", [r[1] for r in runs],
                {"what": "GET latest (writes a provenance row), 1000 "
                 "artifacts, 64 keep-alive connections"}), sqlite=False))
    if want("feed"):
        runs = guarded("feed_page_100k", "ms", repeat, env, w_feed_page)
        if runs:
            emit(results, aggregate(
                "feed_page_100k" if not env.quick else "feed_page_10k", "ms",
                runs, {"what": "page the whole feed with /changes?limit=1000"
                       " on one connection"}))
    if want("sse"):
        runs = guarded("sse_fanout_1000", "ms", repeat, env, w_sse)
        if runs:
            emit(results, aggregate(
                "sse_fanout_1000" if not env.quick else "sse_fanout_200",
                "ms", runs, {"what": "p99 delivery latency (receive time - "
                             "event created_at), clients on pattern **, "
                             "writer paced"}))
    if want("idle"):
        runs = guarded("node_rss_idle", "MiB", repeat, env, w_node_idle)
        if runs:
            emit(results, aggregate("node_rss_idle", "MiB", runs))

    if want("replication") or want("linearity"):
        if not env.has_bridge():
            for name in ("replication_catchup_metadata",
                         "replication_catchup_full_2k",
                         "replication_live_lag", "bridge_resume_kill9",
                         "replication_catchup_linearity"):
                emit(results, {"name": name,
                               "skipped": "ctxsync-bridge not built"})
        else:
            n = int(os.environ.get("BENCH_CATCHUP_EVENTS",
                                   "2000" if env.quick else "100000"))
            if want("replication"):
                runs = guarded("replication_catchup_metadata", "events/s",
                               repeat, env, w_catchup, n, "metadata", 1024)
                if runs:
                    emit(results, ratios(aggregate(
                        "replication_catchup_metadata", "events/s", runs,
                        {"what": "%d events, bridge start to target "
                         "checkpoint = source head" % n}), sqlite=True))
                runs = guarded("replication_catchup_full_2k", "events/s",
                               repeat, env, w_catchup, n, "full", 2048)
                if runs:
                    emit(results, ratios(aggregate(
                        "replication_catchup_full_2k", "events/s", runs,
                        {"what": "%d events with 2 KiB payloads, mode full"
                         % n})))
                runs = guarded("replication_live_lag", "ms", repeat, env,
                               w_live_and_resume)
                if runs:
                    emit(results, aggregate(
                        "replication_live_lag", "ms", [r[0] for r in runs],
                        {"what": "p99 of target SSE arrival - source PUT "
                         "ack, writer paced at 1000 writes/s, mode full"}))
                    emit(results, aggregate(
                        "bridge_resume_kill9", "ms", [r[1] for r in runs],
                        {"what": "kill -9 the bridge, 200 writes, restart: "
                         "process start to target checkpoint = source "
                         "head"}))
            if want("linearity") and not env.quick:
                sizes = [int(x) for x in os.environ.get(
                    "BENCH_LINEARITY", "10000,100000,1000000").split(",")]
                pts = []
                for s in sizes:
                    r = guarded("replication_catchup_linearity", "events/s",
                                w_catchup, env, s, "metadata", 1024)
                    if r:
                        pts.append({"events": s, "seconds": round(
                            r["seconds"], 3), "events_per_s": round(
                            r["value"], 1)})
                if pts:
                    rates = [p["events_per_s"] for p in pts]
                    emit(results, {
                        "name": "replication_catchup_linearity",
                        "unit": "events/s", "value": rates[-1],
                        "points": pts,
                        "rate_spread": round(max(rates) / min(rates), 3),
                        "p50": None, "p99": None, "rss_kib": None,
                        "note": NOTE + "; one run per size"})

    OUT_FILE.close()
    print("bench: wrote %s (%d lines)" % (args.out, len(results)),
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
