#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_scaleout.py: writes/s and reads/s with 1, 2, 3 ctxsync-node
processes sharing one PostgreSQL database, and the same workload on one
SQLite node, for comparison. Prints one JSON object (progress on stderr).

    scripts/bench.sh --scaleout [options]           # builds, then runs this
    python3 tests/bench/bench_scaleout.py [options] # uses build-release/

Starts a throwaway PostgreSQL 15 cluster with scripts/pg-cluster.sh (fsync,
synchronous_commit and full_page_writes at their defaults, i.e. ON: every
commit is durable, like SQLite under `--sync full`). Then, for each run and
each configuration (interleaved, so that a change in the machine's load
hits every configuration alike):

  pg-P     a fresh database; P `serve --store postgres://...` processes on
           it; 1000 artifacts created; PUT a new 1 KiB version round-robin
           over them on 64 connections; then GET latest (each GET also
           commits its `read` provenance row) on 64 connections. One
           loadgen process drives all P node processes: connection i goes
           to process i % P (client-side round-robin, no proxy).
  sqlite-full / sqlite-normal
           the same on one SQLite node (`--data DIR`), `--sync full`
           (fsync per commit, the durability PostgreSQL has here) and the
           default `--sync normal` (what bench.py's put_1k_64c measures).

The workload is bench.py's put_1k_64c / get_latest_64c (same loadgen, same
bodies), with shorter durations: the whole run (3 runs x 5 configurations)
takes about 3.5 minutes. During each phase it records the CPU time of every process involved
(/proc: postgres = the postmaster and all its children, the node
processes, the loadgen, and the rest of the machine), each node's
/metrics (commits, writes), and, for PostgreSQL, samples
pg_stat_activity/pg_locks every 0.2 s: how often the write lock (the
transaction-scoped advisory lock every process's writer takes) is held,
what its holder is doing, and how many writers wait for it.

The load generator and the sampler run on the same cores as the servers.
Every process is started here and killed by PID at exit (also on
SIGINT/SIGTERM or an exception); the cluster is stopped and removed.
See docs/performance.md, "Scale-out".
"""
import argparse
import atexit
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (its cleanup + SIGINT/SIGTERM handlers apply)
from bench import PROCS, http, mkdtemp, spawn, stop, wait_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PG_CLUSTER = os.path.join(ROOT, "scripts", "pg-cluster.sh")
PG_WRITE_LOCK = 1668577395  # node/store.c PG_WRITE_LOCK
CLK = os.sysconf("SC_CLK_TCK")
NOTE = ("load generator (and, for PostgreSQL, a pg_stat_activity sampler) "
        "run on the same cores as the servers")

CLUSTER = {"dir": None}


def log(msg):
    print("scaleout: " + msg, file=sys.stderr, flush=True)


def cleanup_all():
    # a second Ctrl-C (or bench.sh's SIGTERM after the terminal's SIGINT)
    # must not cut the cleanup short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    bench.cleanup()  # every node/loadgen/psql we started, by PID
    d = CLUSTER["dir"]
    if d is not None:
        CLUSTER["dir"] = None
        subprocess.run([PG_CLUSTER, "stop", d], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)


atexit.register(cleanup_all)  # runs before bench's own (atexit is LIFO)


# ---------------------------------------------------------------- /proc

def proc_ticks(pid, children=False):
    """utime+stime (+ cutime+cstime) of pid in clock ticks, 0 if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            f_ = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    t = int(f_[11]) + int(f_[12])
    if children:
        t += int(f_[13]) + int(f_[14])
    return t


def children_of(ppid):
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(e))
        except (OSError, IndexError, ValueError):
            pass
    return out


def pg_ticks(pm_pid):
    """CPU of the whole cluster: postmaster + its reaped children (cutime)
    + every live child (backends, walwriter, checkpointer, ...)."""
    if pm_pid is None:
        return 0
    return proc_ticks(pm_pid, True) + sum(proc_ticks(c, True)
                                          for c in children_of(pm_pid))


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]) - idle, v[4], sum(v[:8])  # busy, iowait, total


class CpuWindow:
    """CPU seconds used by postgres, the node processes, the loadgen (added
    by the caller from wait4's rusage) and everything else, over a window."""

    def __init__(self, pm_pid, node_pids):
        self.pm, self.nodes = pm_pid, list(node_pids)
        self.t0 = time.monotonic()
        self.m0 = machine_ticks()
        self.pg0 = pg_ticks(pm_pid)
        self.n0 = sum(proc_ticks(p) for p in self.nodes)

    def end(self, loadgen_cpu_s, extra_cpu_s=0.0):
        secs = time.monotonic() - self.t0
        m1 = machine_ticks()
        pg = (pg_ticks(self.pm) - self.pg0) / CLK
        nodes = (sum(proc_ticks(p) for p in self.nodes) - self.n0) / CLK
        busy = (m1[0] - self.m0[0]) / CLK
        iowait = (m1[1] - self.m0[1]) / CLK
        ncpu = os.cpu_count() or 1
        cores = lambda x: round(x / secs, 2)  # noqa: E731
        other = busy - pg - nodes - loadgen_cpu_s - extra_cpu_s
        return {"seconds": round(secs, 2),
                "cores_available": ncpu,
                "machine_busy_cores": cores(busy),
                "iowait_cores": cores(iowait),
                "postgres_cores": cores(pg),
                "nodes_cores": cores(nodes),
                "loadgen_cores": cores(loadgen_cpu_s),
                "sampler_cores": cores(extra_cpu_s),
                "other_cores": cores(max(0.0, other))}


# ---------------------------------------------------------------- PostgreSQL

def psql_bin():
    p = "/usr/lib/postgresql/15/bin/psql"
    return p if os.access(p, os.X_OK) else "psql"


def psql(url, sql, timeout=120):
    r = subprocess.run([psql_bin(), "-X", "-q", "-At", "-v",
                        "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql[:80],
                                             r.stderr.decode()[-500:]))
    return r.stdout.decode().strip()


def pg_start(tmp_root):
    # not a bench.mkdtemp dir: pg-cluster.sh gives it to the postgres user
    # and `stop` removes it
    d = tempfile.mkdtemp(prefix="cs-bench-pg-", dir=tmp_root)
    CLUSTER["dir"] = d
    r = subprocess.run([PG_CLUSTER, "start", d], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=180)
    if r.returncode != 0:
        raise RuntimeError("pg-cluster.sh start failed: %s"
                           % r.stderr.decode()[-2000:])
    url = r.stdout.decode().strip().splitlines()[-1]
    with open(os.path.join(d, "data", "postmaster.pid")) as f:
        pm = int(f.readline())
    return d, url, pm


SAMPLE_SQL = (
    "SELECT extract(epoch FROM clock_timestamp()), "
    "(SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
    "'Lock' AND wait_event = 'advisory'), "
    "coalesce((SELECT string_agg(a.state || '/' || coalesce("
    "a.wait_event_type || ':' || a.wait_event, 'cpu'), ',') FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
    "AND l.granted AND l.classid = 0 AND l.objid = %d), 'none'), "
    "(SELECT count(*) FROM pg_stat_activity WHERE datname = "
    "current_database() AND state = 'active' AND pid <> pg_backend_pid() "
    "AND wait_event IS DISTINCT FROM 'advisory');\n"
    "SELECT pg_sleep(%s);\n")


class LockSampler:
    """One psql process running SAMPLE_SQL every `interval` s for about
    `secs` s (a script of N statements, so that psql ends by itself at EOF);
    result() keeps the samples taken in [t_from, t_to] (wall clock)."""

    def __init__(self, url, secs, interval=0.2):
        n = max(1, int(secs / (interval + 0.005)) + 1)
        self.p = subprocess.Popen(
            [psql_bin(), "-X", "-q", "-At", "-d", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        PROCS.append(self.p)
        script = (SAMPLE_SQL % (PG_WRITE_LOCK, interval)) * n
        self.script = script.encode()

    def run(self):
        # the script is fed by a thread (it may exceed a pipe buffer); the
        # output (~60 bytes a sample) is read after the loadgen

        def feed():
            try:
                self.p.stdin.write(self.script)
                self.p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        self.th = threading.Thread(target=feed, daemon=True)
        self.th.start()

    def result(self, t_from, t_to):
        out = self.p.stdout.read()
        self.th.join(timeout=10)
        cpu = 0.0
        try:  # the psql client's own CPU (its backend counts as postgres)
            _, status, ru = os.wait4(self.p.pid, 0)
            self.p.returncode = os.waitstatus_to_exitcode(status)
            cpu = ru.ru_utime + ru.ru_stime
        except ChildProcessError:
            pass
        self.out = out
        rows = [l.split("|")[1:] for l in self.out.decode().splitlines()
                if l.count("|") == 3 and
                t_from <= float(l.split("|")[0]) <= t_to]
        if not rows:
            return None, cpu
        n = len(rows)
        states = {}
        held = 0
        for r in rows:
            if r[1] != "none":
                held += 1
                for h in r[1].split(","):
                    states[h] = states.get(h, 0) + 1
        return {"samples": n,
                "write_lock_held_frac": round(held / n, 3),
                "holder_state_frac": {k: round(v / n, 3) for k, v in
                                      sorted(states.items(),
                                             key=lambda kv: -kv[1])},
                "writers_waiting_mean": round(
                    sum(int(r[0]) for r in rows) / n, 2),
                "other_active_backends_mean": round(
                    sum(int(r[2]) for r in rows) / n, 2)}, cpu


# ---------------------------------------------------------------- nodes

class Server:
    """One `ctxsync-node serve` process (SQLite data dir or a PostgreSQL
    URL)."""

    def __init__(self, env, store_args, name, extra=()):
        self.dir = mkdtemp(env, "cs-bench-%s-" % name)
        self.log = os.path.join(env.logs, "%s.log" % name)
        ready = os.path.join(self.dir, "ready")
        self.proc = spawn([os.path.join(env.bin_dir, "ctxsync-node"),
                           "serve"] + store_args +
                          ["--listen", "127.0.0.1:0", "--ready-file", ready]
                          + list(extra), self.log)
        self.addr = wait_file(ready, self.proc, 30, "ctxsync-node").strip()

    def metrics(self, token):
        st, body = http(self.addr, "GET", "/metrics", token=token)
        out = {}
        if st == 200 and isinstance(body, str):
            for line in body.splitlines():
                for k in ("ctxsync_store_commits_total",
                          "ctxsync_store_writes_total",
                          "ctxsync_store_write_errors_total",
                          "ctxsync_store_group_max"):
                    if line.startswith(k + " "):
                        out[k] = float(line.split()[1])
        return out


def init_node(env, store_args, node_id):
    r = subprocess.run([os.path.join(env.bin_dir, "ctxsync-node"), "init"]
                       + store_args + ["--node-id", node_id, "--region",
                                       "eu", "--admin", "admin"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    if r.returncode != 0:
        raise RuntimeError("init failed: %s" % r.stderr.decode()[-1000:])
    return json.loads(r.stdout)["token"]


def run_loadgen(env, addrs, token, mode, *extra):
    """loadgen over every address; returns (result, its CPU seconds)."""
    args = [env.tool("loadgen"), "--addr", ",".join(addrs), "--mode", mode,
            "--token", token] + [str(x) for x in extra]
    p = subprocess.Popen(args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    PROCS.append(p)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("loadgen %s failed (%d): %s"
                           % (mode, p.returncode, err.decode()[-1000:]))
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]), ru.ru_utime + ru.ru_stime


def metric_delta(servers, token, before):
    after = [s.metrics(token) for s in servers]
    commits = writes = errors = 0.0
    gmax = 0
    for b, a in zip(before, after):
        commits += a.get("ctxsync_store_commits_total", 0) - \
            b.get("ctxsync_store_commits_total", 0)
        writes += a.get("ctxsync_store_writes_total", 0) - \
            b.get("ctxsync_store_writes_total", 0)
        errors += a.get("ctxsync_store_write_errors_total", 0) - \
            b.get("ctxsync_store_write_errors_total", 0)
        gmax = max(gmax, int(a.get("ctxsync_store_group_max", 0)))
    return {"commits": int(commits), "writes": int(writes),
            "write_errors": int(errors),
            "writes_per_commit": round(writes / commits, 2) if commits
            else None, "group_max": gmax}


INDEX_SQL = ("SELECT s.indexrelname, s.idx_scan, io.idx_blks_hit FROM "
             "pg_stat_user_indexes s JOIN pg_statio_user_indexes io USING "
             "(indexrelid) WHERE s.relname = 'artifact_versions'")


def pg_index_stats(pg_url):
    out = {}
    for line in psql(pg_url, INDEX_SQL).splitlines():
        name, scans, hits = line.split("|")
        out[name] = (int(scans), int(hits))
    return out


def index_delta(before, after):
    """Scans and buffer hits per scan of artifact_versions' indexes over a
    phase (PostgreSQL flushes a backend's counters about once a second, so
    the last second may be missing; the per-scan ratio is what matters: a
    write's trigger probing versions_id costs ~3 hits, a scan of every tip
    through versions_tips hundreds)."""
    out = {}
    for k, (sc, hi) in after.items():
        s0, h0 = before.get(k, (0, 0))
        if sc - s0 > 0:
            out[k] = {"scans": sc - s0, "blks_hit": hi - h0,
                      "hits_per_scan": round((hi - h0) / (sc - s0), 1)}
    return out


def phase(env, cfg, servers, token, mode, secs, pm_pid, pg_url):
    """One measured phase (put or get) on every server."""
    before = [s.metrics(token) for s in servers]
    idx0 = pg_index_stats(pg_url) if pg_url and mode == "put" else None
    sampler = None
    if pg_url is not None and env.sample:
        sampler = LockSampler(pg_url, env.warmup + secs)
    cpu = CpuWindow(pm_pid, [s.proc.pid for s in servers])
    if sampler:
        sampler.run()
    extra = ["--uris", env.uris, "--conns", env.conns, "--duration", secs,
             "--warmup", env.warmup]
    if mode == "put":
        extra += ["--size", env.size]
    t_from = time.time() + env.warmup
    r, lg_cpu = run_loadgen(env, [s.addr for s in servers], token, mode,
                            *extra)
    t_to = time.time()
    lock, s_cpu = sampler.result(t_from, t_to) if sampler else (None, 0.0)
    out = {"rps": r["rps"], "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"],
           "p99_ms": r["p99_ms"], "max_ms": r["max_ms"],
           "requests": r["measured"], "status": r["status"],
           "errors": r["bad_status"] + r["conn_errors"],
           "per_process": r.get("per_addr", [r["measured"]]),
           "cpu": cpu.end(lg_cpu, s_cpu),
           "store": metric_delta(servers, token, before)}
    if lock is not None:
        out["pg_write_lock"] = lock
    if idx0 is not None:
        out["pg_artifact_versions_indexes"] = index_delta(
            idx0, pg_index_stats(pg_url))
    if out["errors"]:
        log("%s %s: %d errors, status %r" % (cfg, mode, out["errors"],
                                             r["status"]))
    return out


def scan_log(path, limit=5):
    """Lines of a node log at WARN or worse (first `limit`) and their
    count."""
    bad, n = [], 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                p = line.split(" ", 3)
                if len(p) > 2 and p[1] in ("WARN", "WARNING", "ERROR",
                                           "FATAL", "CRIT"):
                    n += 1
                    if len(bad) < limit:
                        bad.append(line.rstrip()[:400])
    except OSError:
        pass
    return n, bad


def one_run(env, cfg, run_no, pg):
    """cfg: ('pg', P) | ('sqlite', 'full'|'normal'). Returns the run's
    figures."""
    kind, arg = cfg
    name = "pg-%d" % arg if kind == "pg" else "sqlite-%s" % arg
    tag = "%s-r%d" % (name, run_no)
    pg_url = None
    pm_pid = None
    servers = []
    try:
        if kind == "pg":
            pg_dir, base, pm_pid = pg
            db = "bench_%d_%d" % (arg, run_no)
            psql(base + "postgres", "DROP DATABASE IF EXISTS %s" % db)
            psql(base + "postgres", "CREATE DATABASE %s TEMPLATE template0 "
                 "ENCODING 'UTF8' LOCALE 'C.UTF-8'" % db)
            pg_url = base + db
            store = ["--store", pg_url]
            token = init_node(env, store, "bench-pg")
            servers = [Server(env, store, "%s-p%d" % (tag, i + 1))
                       for i in range(arg)]
        else:
            d = mkdtemp(env, "cs-bench-sq-")
            store = ["--data", os.path.join(d, "data")]
            token = init_node(env, store, "bench-sq")
            servers = [Server(env, store, tag, ["--sync", arg])]
        addrs = [s.addr for s in servers]
        c, _ = run_loadgen(env, addrs, token, "create", "--uris", env.uris,
                           "--conns", 64)
        if c["bad_status"] or c["conn_errors"]:
            raise RuntimeError("create failed: %r" % c)
        if pg_url is not None:
            psql(pg_url, "CHECKPOINT")  # no checkpoint left from the prefill
        put = phase(env, name, servers, token, "put", env.put_secs, pm_pid,
                    pg_url)
        if pg_url is not None:
            psql(pg_url, "CHECKPOINT")
        get = phase(env, name, servers, token, "get", env.get_secs, pm_pid,
                    pg_url)
        rss = [bench.rss_kib(s.proc.pid) for s in servers]
    finally:
        for s in servers:
            stop(s.proc)
    problems = []
    for s in servers:
        n, lines = scan_log(s.log)
        if n:
            problems.append({"log": os.path.basename(s.log), "count": n,
                             "first": lines})
        if s.proc.returncode not in (0, None):
            problems.append({"log": os.path.basename(s.log),
                             "exit": s.proc.returncode})
    if kind == "pg":
        psql(pg[1] + "postgres", "DROP DATABASE IF EXISTS bench_%d_%d"
             % (arg, run_no))
    log("%s: put %.0f/s (p99 %.0f ms), get %.0f/s (p99 %.0f ms)"
        % (tag, put["rps"], put["p99_ms"], get["rps"], get["p99_ms"]))
    return {"run": run_no, "put": put, "get": get, "rss_kib": rss,
            "log_problems": problems}


# ---------------------------------------------------------------- summary

def stats(xs, nd=1):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": round(statistics.median(xs), nd),
            "min": round(min(xs), nd), "max": round(max(xs), nd),
            "runs": [round(x, nd) for x in xs]}


QUIET_OTHER_CORES = 0.25  # a run is "quiet" if foreign CPU stayed below


def interference(r):
    """Cores used by processes not ours during the run (max of phases)."""
    return max(r["put"]["cpu"]["other_cores"], r["get"]["cpu"]["other_cores"])


def summarize(name, kind, procs, runs):
    def col(ph, key, sub=None, rs=None):
        v = []
        for r in (runs if rs is None else rs):
            x = r[ph][key] if sub is None else r[ph][key].get(sub)
            v.append(x)
        return stats(v)
    quiet = [r for r in runs if interference(r) < QUIET_OTHER_CORES]
    out = {"config": name, "store": kind, "processes": procs,
           "writes_per_s": col("put", "rps"),
           "put_p50_ms": col("put", "p50_ms"),
           "put_p99_ms": col("put", "p99_ms"),
           "reads_per_s": col("get", "rps"),
           "get_p50_ms": col("get", "p50_ms"),
           "get_p99_ms": col("get", "p99_ms"),
           "put_writes_per_commit": col("put", "store", "writes_per_commit"),
           "errors": sum(r["put"]["errors"] + r["get"]["errors"]
                         for r in runs),
           "interference_cores": [round(interference(r), 2) for r in runs],
           "quiet": {"what": "runs in which other processes on the machine "
                     "used < %.2f cores" % QUIET_OTHER_CORES,
                     "runs": [r["run"] for r in quiet],
                     "writes_per_s": col("put", "rps", rs=quiet),
                     "reads_per_s": col("get", "rps", rs=quiet),
                     "put_p99_ms": col("put", "p99_ms", rs=quiet),
                     "get_p99_ms": col("get", "p99_ms", rs=quiet)}}
    for ph in ("put", "get"):
        out["%s_cpu_cores" % ph] = {
            k: stats([r[ph]["cpu"][k] for r in runs], 2)["median"]
            for k in ("machine_busy_cores", "postgres_cores", "nodes_cores",
                      "loadgen_cores", "sampler_cores", "other_cores",
                      "iowait_cores")}
        locks = [r[ph].get("pg_write_lock") for r in runs]
        locks = [x for x in locks if x]
        if locks:
            out["%s_pg_write_lock_held_frac" % ph] = stats(
                [x["write_lock_held_frac"] for x in locks], 2)["median"]
            out["%s_pg_writers_waiting_mean" % ph] = stats(
                [x["writers_waiting_mean"] for x in locks], 2)["median"]
    out["per_run"] = runs
    return out


def machine_info(env, pg_url):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["stat", "-f", "-c", "%T", env.tmp_root or
                         tempfile.gettempdir()], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL).stdout.decode().strip()
    info = {"nproc": os.cpu_count(), "model": model,
            "kernel": platform.release(), "loadavg_start":
            [round(x, 2) for x in os.getloadavg()], "data_dir_fs": fs}
    if pg_url:
        info["postgres_version"] = psql(pg_url + "postgres",
                                        "SHOW server_version")
        settings = {}
        for k in ("fsync", "synchronous_commit", "full_page_writes",
                  "wal_sync_method", "shared_buffers", "max_wal_size",
                  "max_connections"):
            settings[k] = psql(pg_url + "postgres", "SHOW %s" % k)
        info["postgres_settings"] = settings
    return info


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    rel = os.path.join(ROOT, "build-release")
    ap.add_argument("--bin-dir", default=os.path.join(rel, "bin"),
                    help="ctxsync-node (default build-release/bin)")
    ap.add_argument("--bench-bin-dir", default=os.path.join(rel, "bench"),
                    help="loadgen (default build-release/bench)")
    ap.add_argument("--tmp-dir", default=None,
                    help="data dirs and the cluster (default $TMPDIR, /tmp)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--procs", default="1,2,3",
                    help="node process counts on PostgreSQL (default 1,2,3)")
    ap.add_argument("--sqlite", default="full,normal",
                    help="SQLite --sync levels to compare ('' = none)")
    ap.add_argument("--put-seconds", type=float, default=5)
    ap.add_argument("--get-seconds", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--uris", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--no-sample", action="store_true",
                    help="no pg_stat_activity/pg_locks sampling")
    args = ap.parse_args()
    args.quick = False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for b in (os.path.join(args.bin_dir, "ctxsync-node"),
              os.path.join(args.bench_bin_dir, "loadgen")):
        if not os.access(b, os.X_OK):
            sys.exit("scaleout: %s not found: run scripts/bench.sh --scaleout"
                     " (builds build-release/) or give --bin-dir/"
                     "--bench-bin-dir" % b)
    env = bench.Env(args)
    env.uris, env.conns, env.size = args.uris, args.conns, args.size
    env.put_secs, env.get_secs = args.put_seconds, args.get_seconds
    env.warmup, env.sample = args.warmup, not args.no_sample
    procs = [int(x) for x in args.procs.split(",") if x]
    syncs = [x for x in args.sqlite.split(",") if x]
    cfgs = [("pg", p) for p in procs] + [("sqlite", s) for s in syncs]

    t_start = time.monotonic()
    pg = None
    if procs:
        log("starting a PostgreSQL cluster (fsync on)")
        pg = pg_start(args.tmp_dir)
    result = {"name": "scaleout", "unit": "requests/s",
              "machine": machine_info(env, pg[1] if pg else None),
              "workload": {
                  "put": "PUT a new version (%d-byte canonical JSON, unique) "
                         "round-robin over %d artifacts" % (args.size,
                                                            args.uris),
                  "get": "GET latest (commits a read provenance row) "
                         "round-robin over the same artifacts",
                  "connections": args.conns,
                  "balancing": "one loadgen; connection i -> process i % P",
                  "put_seconds": args.put_seconds,
                  "get_seconds": args.get_seconds,
                  "warmup_seconds": args.warmup, "runs": args.runs,
                  "order": "interleaved: run 1 of every config, then run 2"},
              "note": NOTE}
    results = {cfg: [] for cfg in cfgs}
    failed = []
    for run_no in range(1, args.runs + 1):
        for cfg in cfgs:
            try:
                results[cfg].append(one_run(env, cfg, run_no, pg))
            except Exception as e:  # report it, keep measuring the rest
                log("%r run %d failed: %s" % (cfg, run_no, e))
                failed.append({"config": "%s-%s" % cfg, "run": run_no,
                               "error": str(e)[:1000]})
    configs = []
    for cfg in cfgs:
        if not results[cfg]:
            continue
        kind, arg = cfg
        name = "pg-%d" % arg if kind == "pg" else "sqlite-%s" % arg
        configs.append(summarize(name, "postgres" if kind == "pg"
                                 else "sqlite", arg if kind == "pg" else 1,
                                 results[cfg]))
    base = next((c for c in configs if c["config"] == "pg-1"), None)
    if base and base["writes_per_s"]:
        for c in configs:
            for k in ("writes_per_s", "reads_per_s"):
                if c[k] and base[k]:
                    c[k]["x_pg1"] = round(c[k]["median"] / base[k]["median"],
                                          2)
    result["machine"]["loadavg_end"] = [round(x, 2) for x in
                                        os.getloadavg()]
    result["configs"] = configs
    result["failures"] = failed
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
