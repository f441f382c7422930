"""Integration-test harness for ContextSync.

Starts real `ctxsync-node` processes on free loopback ports, talks to them
over real HTTP (standard library only), reads SSE streams, and runs the test
functions of one suite file.  See docs/testing.md.

Stable API (other suites import it):
    bin_path(name)
    Node(node_id="n1", region="eu", auth="token", extra_args=(), start=True)
        .url .admin_token .admin_id .epoch .pid .data_dir .log_path
        .store_args .at_rest()
        .start() .stop() .kill9() .restart() .close() .req(...) .head()
    create_actor, token_for, grant, new_actor, wait_until,
    content_hash, stored_bytes, unique, expect_error, SSEClient,
    test (decorator), run_tests()
    STORE ('sqlite' or 'postgres'), PG_URL, sqlite_only(reason),
    sqlite_only_test(reason) (decorator), Skip

The store: SQLite in each node's data directory by default; with
CS_TEST_PG_URL=postgresql://USER@HOST:PORT/ (scripts/pg-cluster.sh prints
one) every Node gets a fresh database cs_<...> on that server instead
(`--store URL` for init and serve).
"""

import atexit
import ctypes
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# A single test running longer than this is aborted (stack dumped, nodes killed).
TEST_TIMEOUT = float(os.environ.get("CS_TEST_TIMEOUT", "150"))


# --------------------------------------------------------------------------
# store backend

PG_URL = os.environ.get("CS_TEST_PG_URL") or None
STORE = "postgres" if PG_URL else "sqlite"
if PG_URL:
    _u = urllib.parse.urlsplit(PG_URL)
    if _u.scheme not in ("postgres", "postgresql") or _u.query or \
            _u.path not in ("", "/"):
        raise SystemExit("CS_TEST_PG_URL must be a server's base URL such as "
                         "postgresql://postgres@127.0.0.1:5432/ (no database, "
                         "no parameters), got %r" % PG_URL)
    if not PG_URL.endswith("/"):
        PG_URL += "/"

SQLITE_FILE = "reads the SQLite file directly"


def _pg_tool(name):
    for d in (os.environ.get("PGBIN"), "/usr/lib/postgresql/15/bin"):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    p = shutil.which(name)
    if not p:
        raise NodeError("%s not found (CS_TEST_PG_URL is set): run "
                        "scripts/install-deps.sh (postgresql-client-15)" % name)
    return p


def _psql(*sql, db="postgres", timeout=60):
    """Run each statement as its own query (so CREATE/DROP DATABASE work)."""
    cmd = [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
           "-d", PG_URL + db]
    for q in sql:
        cmd += ["-c", q]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise NodeError("psql %s on %s failed (rc=%d): %s" % (
            " / ".join(sql), PG_URL + db, r.returncode,
            r.stderr.decode("utf-8", "replace").strip()))
    return r.stdout


def _pg_create_db(node_id):
    name = "cs_%s_%d_%06x" % (re.sub(r"[^a-z0-9]+", "_", node_id.lower())[:30],
                              os.getpid(), random.getrandbits(24))
    _psql('CREATE DATABASE "%s"' % name)
    return name


_PG_DROPS = []   # psql processes dropping databases in the background


def _pg_drop_dbs(names, wait=True):
    """Best effort (a database left behind goes with the throwaway
    cluster). DROP DATABASE takes ~0.1 s (a checkpoint): wait=False runs it
    in the background; _cleanup_all() waits for those."""
    if names:
        try:
            cmd = [_pg_tool("psql"), "-X", "-q", "-d", PG_URL + "postgres"]
            for n in names:
                cmd += ["-c", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % n]
            _PG_DROPS.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL))
        except Exception as e:  # noqa: never fails a test
            sys.stderr.write("harness: could not drop %s: %s\n" % (", ".join(names), e))
    if wait:
        while _PG_DROPS:
            p = _PG_DROPS.pop()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


class Skip(Exception):
    """Raised to skip the rest of a test (printed as SKIP, not a failure)."""


def _note_skip(reason):
    sys.stdout.write("  SKIP-CHECK %s: skipped under %s: %s\n"
                     % (_STATE.get("current") or "-", STORE, reason))
    sys.stdout.flush()


def sqlite_only(reason=SQLITE_FILE):
    """Guard for a check that depends on the SQLite store's internals:
        if sqlite_only("reads the SQLite file directly"):
            ...check...
    True under SQLite; under PostgreSQL prints the reason and returns
    False."""
    if STORE == "sqlite":
        return True
    _note_skip(reason)
    return False


def sqlite_only_test(reason=SQLITE_FILE):
    """Decorator (under @test) for a test that is SQLite-specific as a
    whole: under PostgreSQL it is reported as SKIP with the reason."""
    def deco(fn):
        def wrapper(*a, **kw):
            if STORE != "sqlite":
                raise Skip("skipped under %s: %s" % (STORE, reason))
            return fn(*a, **kw)
        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper
    return deco


def bin_path(name):
    """Absolute path of a program built by CMake (<build>/bin/<name>)."""
    return os.path.join(
        os.environ.get("CS_BIN_DIR", os.path.join(REPO_ROOT, "build", "bin")),
        name)


# --------------------------------------------------------------------------
# process bookkeeping

_ALL_NODES = []          # every Node ever made, for atexit cleanup
_TEST_NODES = []         # nodes made while the current test runs
_STATE = {"failed": False, "current": None}
_DEFAULT = object()      # "use the node's admin credentials"


def _pdeathsig():
    # Ask the kernel to SIGKILL the child when the parent thread dies, so a
    # test process killed by ctest does not leave nodes behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(no log: %s)" % e
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


class NodeError(AssertionError):
    pass


class Node:
    """One ctxsync-node process on its own temporary data directory."""

    def __init__(self, node_id="n1", region="eu", auth="token", extra_args=(),
                 start=True, admin="admin"):
        self.node_id = node_id
        self.region = region
        self.auth = auth
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        self.port = None
        self.keep = False
        self.closed = False
        self.db_dropped = False
        self.tmp = tempfile.mkdtemp(prefix="cs-it-%s-" % node_id)
        # SQLite: the store lives here. PostgreSQL: not created by init,
        # the store is the database self.db (same for every restart).
        self.data_dir = os.path.join(self.tmp, "data")
        self.ready_file = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "node.log")
        self.store = STORE
        self.db = None
        self.db_url = None
        _ALL_NODES.append(self)
        _TEST_NODES.append(self)
        if STORE == "postgres":
            self.db = _pg_create_db(node_id)
            self.db_url = PG_URL + self.db
            self.store_args = ["--store", self.db_url]
        else:
            self.store_args = ["--data", self.data_dir]
        cmd = [bin_path("ctxsync-node"), "init"] + self.store_args + [
               "--node-id", node_id, "--region", region, "--admin", admin]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        with open(self.log_path, "ab") as log:
            log.write(b"$ " + " ".join(cmd).encode() + b"\n" + r.stderr)
        if r.returncode != 0:
            raise NodeError("init failed (rc=%d): %s" % (
                r.returncode, r.stderr.decode("utf-8", "replace")))
        lines = [l for l in r.stdout.decode("utf-8").splitlines() if l.strip()]
        if not lines:
            raise NodeError("init printed nothing on stdout")
        try:
            self.info = json.loads(lines[-1])
        except ValueError:
            raise NodeError("init stdout is not one JSON line: %r" % r.stdout)
        self.admin_token = self.info.get("token")
        self.admin_id = self.info.get("actor_id")
        self.epoch = self.info.get("epoch")
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.running():
            raise NodeError("node already running")
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass
        cmd = [bin_path("ctxsync-node"), "serve"] + self.store_args + [
               "--listen", "127.0.0.1:0", "--ready-file", self.ready_file]
        if self.auth != "token":
            cmd += ["--auth", self.auth]
        cmd += self.extra_args
        log = open(self.log_path, "ab")
        log.write(b"$ " + " ".join(cmd).encode() + b"\n")
        log.flush()
        pre = _pdeathsig if threading.current_thread() is threading.main_thread() else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, preexec_fn=pre)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        addr = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeError("node exited during start (rc=%s); log:\n%s" % (
                    self.proc.returncode, _tail(self.log_path)))
            try:
                with open(self.ready_file) as f:
                    m = re.search(r"127\.0\.0\.1:(\d+)\s*$", f.read())
                if m and int(m.group(1)) > 0:
                    addr = int(m.group(1))
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        if addr is None:
            self._kill()
            raise NodeError("node not ready within %.0fs (ready file %s); log:\n%s"
                            % (READY_TIMEOUT, self.ready_file, _tail(self.log_path)))
        self.port = addr
        self.url = "http://127.0.0.1:%d" % addr
        # the ready file may be written before the listener answers; insist
        while True:
            try:
                st, _, _ = self.req("GET", "/health", token=None, timeout=2)
                if st == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._kill()
                raise NodeError("node wrote ready file but /health does not "
                                "answer 200; log:\n%s" % _tail(self.log_path))
            time.sleep(0.02)
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; SIGKILL and fail loudly after `timeout` s.
        Returns the exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise NodeError("node pid %d did not exit within %.1fs of "
                                "SIGTERM (killed); log:\n%s"
                                % (self.proc.pid, timeout, _tail(self.log_path)))
        return self.proc.returncode

    def kill9(self):
        """SIGKILL the node (simulated crash) and reap it."""
        self._kill()

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def restart(self):
        """Serve again on the same store (the port may change)."""
        if self.running():
            self.stop()
        return self.start()

    def close(self, graceful=True):
        """Stop the node and remove its directory (kept if a test failed)."""
        if self.closed:
            return
        self.closed = True
        ok = False
        try:
            if graceful and not _STATE["failed"] and not self.keep:
                rc = self.stop()
                if rc not in (0, None):
                    raise NodeError("node %s exited with status %s after SIGTERM "
                                    "(negative: killed by signal %s); log:\n%s"
                                    % (self.node_id, rc, -rc if rc < 0 else "-",
                                       _tail(self.log_path)))
            ok = True
        finally:
            self._kill()
            if not ok:
                self.keep = True
            if self.keep or _STATE["failed"] or os.environ.get("CS_KEEP"):
                pass
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self._drop_db()

    def _drop_db(self):
        if self.db and not self.db_dropped:
            self.db_dropped = True
            _pg_drop_dbs([self.db], wait=False)

    def at_rest(self):
        """What the store keeps at rest, as {name: bytes}, for checks that
        some bytes never reach it (residency, token hygiene). SQLite: every
        file under the data directory (database, WAL, shared memory, blob
        files), by path relative to it. PostgreSQL: the database's pg_dump
        (data only), plus every bytea value in it decoded from hex."""
        out = {}
        if self.store == "sqlite":
            for root, _, names in os.walk(self.data_dir):
                for name in names:
                    p = os.path.join(root, name)
                    with open(p, "rb") as f:
                        out[os.path.relpath(p, self.data_dir)] = f.read()
            return out
        r = subprocess.run([_pg_tool("pg_dump"), "--data-only", "--no-owner",
                            "-d", self.db_url], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        if r.returncode != 0:
            raise NodeError("pg_dump %s failed: %s" % (
                self.db_url, r.stderr.decode("utf-8", "replace")))
        out["pg_dump %s" % self.db] = r.stdout
        out["pg_dump %s (bytea decoded)" % self.db] = b"\n".join(
            bytes.fromhex(h.decode()) for h in
            re.findall(rb"\\\\x((?:[0-9a-f]{2})+)", r.stdout))
        return out

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.keep = True
            self.close(graceful=False)
        else:
            self.close()
        return False

    # -- HTTP --------------------------------------------------------------
    def auth_headers(self, token=_DEFAULT):
        """Credentials header for `token`.  In header-auth mode the value is
        an actor id sent as X-Actor-Id (token_for() returns the actor id)."""
        if token is None:
            return {}
        if self.auth == "header":
            return {"X-Actor-Id": self.admin_id if token is _DEFAULT else token}
        return {"Authorization": "Bearer " + (self.admin_token if token is _DEFAULT
                                              else token)}

    def req(self, method, path, body=None, token=_DEFAULT, headers=None,
            raw_body=None, query=None, timeout=30):
        """One HTTP request.  Returns (status, headers-lowercased, body) where
        body is parsed JSON, text, or None when empty."""
        if query:
            items = query.items() if isinstance(query, dict) else query
            items = [(k, str(v) if not isinstance(v, str) else v)
                     for k, v in items if v is not None]
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(
                items, quote_via=urllib.parse.quote, safe="")
        hdrs = {}
        hdrs.update(self.auth_headers(token))
        data = None
        if raw_body is not None:
            data = raw_body
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if headers:
            for k, v in headers.items():
                for old in [h for h in hdrs if h.lower() == k.lower()]:
                    del hdrs[old]
                if v is not None:
                    hdrs[k] = v
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, rh, decode_body(rh, raw)
        finally:
            conn.close()

    def head(self):
        """Current change-feed head seq (admin view)."""
        st, _, b = self.req("GET", "/changes", query={"since": 0, "limit": 1})
        assert st == 200, (st, b)
        return b["head"]

    def health(self):
        st, _, b = self.req("GET", "/health", token=None, timeout=5)
        return st == 200 and isinstance(b, dict) and b.get("status") is not None


def decode_body(headers, raw):
    if not raw:
        return None
    ct = headers.get("content-type", "")
    if "json" in ct:
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")


def _cleanup_all():
    drop = []
    for n in list(_ALL_NODES):
        try:
            n._kill()
        except Exception:
            pass
        if not (n.keep or _STATE["failed"] or os.environ.get("CS_KEEP")):
            shutil.rmtree(n.tmp, ignore_errors=True)
            if n.db and not n.db_dropped:
                n.db_dropped = True
                drop.append(n.db)
    _pg_drop_dbs(drop)


atexit.register(_cleanup_all)


# --------------------------------------------------------------------------
# helpers

def unique(prefix="t"):
    """A fresh identifier usable as a URI segment or actor id."""
    return "%s%d%06x" % (prefix, os.getpid() % 10000, random.getrandbits(24))


def _jcs_num(x):
    """ECMAScript number formatting of a float (RFC 8785 §3.2.2.3)."""
    if x == 0:
        return "0"
    r = repr(x)
    neg = r.startswith("-")
    m, _, e = r.lstrip("-").partition("e")
    e = int(e) if e else 0
    ip, _, fp = m.partition(".")
    s = (ip + fp).lstrip("0")
    e -= len(fp)
    while s.endswith("0"):
        s = s[:-1]
        e += 1
    k, n = len(s), len(s) + e
    if k <= n <= 21:
        o = s + "0" * (n - k)
    elif 0 < n <= 21:
        o = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        o = "0." + "0" * -n + s
    else:
        o = s[0] + ("." + s[1:] if k > 1 else "") + "e"
        o += ("-" if n < 1 else "+") + str(abs(n - 1))
    return ("-" if neg else "") + o


_JCS_ESC = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t',
            '\n': '\\n', '\f': '\\f', '\r': '\\r'}


def _jcs_str(s):
    return '"' + "".join(_JCS_ESC.get(c) or ("\\u%04x" % ord(c) if ord(c) < 32 else c)
                         for c in s) + '"'


def canonical_json(v):
    """RFC 8785 (JCS) text, as the node stores JSON content
    (docs/internals/canonical-json.md)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _jcs_num(v)
    if isinstance(v, str):
        return _jcs_str(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical_json(x) for x in v) + "]"
    ks = sorted(v, key=lambda k: k.encode("utf-16-be"))
    return "{" + ",".join(_jcs_str(k) + ":" + canonical_json(v[k]) for k in ks) + "}"


def stored_bytes(content):
    """Bytes the node stores for a JSON `content` value (spec §3)."""
    if isinstance(content, str):
        return content.encode("utf-8")
    return canonical_json(content).encode("utf-8")


def content_hash(content):
    return "sha256:" + hashlib.sha256(stored_bytes(content)).hexdigest()


def expect_error(resp, status, code=None):
    """Assert an error response: status, {"error","message","request_id"} body
    and an X-Request-Id header equal to the body's request_id.  `code` may be
    a string or a tuple of acceptable codes.  Returns the body."""
    st, h, b = resp
    assert st == status, "expected %s %s, got %s %r" % (status, code, st, b)
    assert isinstance(b, dict), "error body is not JSON: %r" % (b,)
    if code is not None:
        codes = (code,) if isinstance(code, str) else tuple(code)
        assert b.get("error") in codes, "expected error %s, got %r" % (codes, b)
    assert isinstance(b.get("error"), str) and b["error"], b
    assert isinstance(b.get("message"), str), "no message: %r" % (b,)
    assert isinstance(b.get("request_id"), str) and b["request_id"], b
    assert h.get("x-request-id"), "no X-Request-Id header"
    assert h["x-request-id"] == b["request_id"], (h.get("x-request-id"), b)
    return b


def expect_ok(resp, status=200):
    st, h, b = resp
    assert st == status, "expected %s, got %s %r" % (status, st, b)
    assert h.get("x-request-id"), "no X-Request-Id header on %s" % st
    return b


def create_actor(node, actor_id, type="human", agent_class=None, name=None,
                 token=_DEFAULT):
    body = {"actor_id": actor_id, "actor_type": type, "name": name or actor_id}
    if agent_class is not None:
        body["agent_class"] = agent_class
    st, _, b = node.req("POST", "/actors", body, token=token)
    assert st == 201, "create actor %s: %s %r" % (actor_id, st, b)
    return b


def token_for(node, actor_id, token=_DEFAULT):
    """Issue a token for actor_id (in header-auth mode: return the actor id)."""
    if node.auth == "header":
        return actor_id
    st, _, b = node.req("POST", "/actors/%s/tokens" % actor_id, {}, token=token)
    assert st == 201, "issue token for %s: %s %r" % (actor_id, st, b)
    return b["token"]


def grant(node, actor_id=None, agent_class=None, pattern="**", ops=("read",),
          token=_DEFAULT):
    body = {"artifact_pattern": pattern, "operations": list(ops)}
    if actor_id is not None:
        body["actor_id"] = actor_id
    if agent_class is not None:
        body["agent_class"] = agent_class
    st, _, b = node.req("POST", "/permissions", body, token=token)
    assert st == 201, "grant %r: %s %r" % (body, st, b)
    return b


def new_actor(node, prefix="u", grants=(), type="human", agent_class=None):
    """Create an actor with the given [(pattern, ops)] grants.
    Returns (actor_id, token)."""
    aid = unique(prefix)
    create_actor(node, aid, type=type, agent_class=agent_class)
    for pattern, ops in grants:
        grant(node, actor_id=aid, pattern=pattern, ops=ops)
    return aid, token_for(node, aid)


def wait_until(fn, timeout=10.0, interval=0.05, msg=None):
    """Poll fn() until it returns a truthy value (returned) or time out."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(msg or "condition not met within %.1fs" % timeout)
        time.sleep(interval)


def all_changes(node, since=0, token=_DEFAULT, path="/changes", query=None,
                limit=1000):
    """Page through a change feed; returns the list of events."""
    out = []
    while True:
        q = {"since": since, "limit": limit}
        q.update(query or {})
        st, _, b = node.req("GET", path, token=token, query=q)
        assert st == 200, (st, b)
        out.extend(b["events"])
        if not b["has_more"]:
            return out
        assert b["next_since"] > since, b
        since = b["next_since"]


# --------------------------------------------------------------------------
# SSE

_EOL = re.compile(rb"\r\n|\n|\r(?!$)")


class SSEEvent:
    __slots__ = ("id", "event", "data", "json")

    def __init__(self, id, event, data):
        self.id = id
        self.event = event
        self.data = data
        try:
            self.json = json.loads(data) if data else None
        except ValueError:
            self.json = None

    @property
    def seq(self):
        return int(self.id) if self.id not in (None, "") else None

    def __repr__(self):
        return "SSEEvent(id=%r, event=%r, data=%.80r)" % (self.id, self.event,
                                                          self.data)


class SSEClient:
    """Reads one SSE stream on a raw socket in a background thread.

    SSEClient(node_or_url, token, path, headers=None, query=None)
      .status .headers          response status and headers (lowercased)
      .events                   dispatched frames (SSEEvent), in order
      .comments                 comment lines (text after ':')
      .retries                  retry values
      .lines                    every raw line, in order
      .closed                   threading.Event set at EOF / error
      .wait_for(n, timeout, event="change")  -> bool
      .changes()                JSON data of the 'change' events
      .last_id                  id of the last dispatched frame
      .close()
    Handles chunked and identity bodies.  With rcvbuf set, the socket's
    receive buffer is shrunk; with paused=True nothing is read until
    .resume() (to simulate a slow client).
    """

    def __init__(self, node_or_url, token=_DEFAULT, path="/subscriptions/stream",
                 headers=None, query=None, rcvbuf=None, paused=False,
                 connect_timeout=10.0):
        if isinstance(node_or_url, Node):
            node = node_or_url
            host, port = "127.0.0.1", node.port
            auth = node.auth_headers(token)
        else:
            u = urllib.parse.urlsplit(node_or_url)
            host, port = u.hostname, u.port
            auth = {} if token in (None, _DEFAULT) else {
                "Authorization": "Bearer " + token}
        if query:
            items = [(k, str(v)) for k, v in query.items() if v is not None]
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(
                items, quote_via=urllib.parse.quote, safe="")
        self.path = path
        self.status = None
        self.headers = {}
        self.events = []
        self._counts = {}
        self.comments = []
        self.retries = []
        self.lines = []
        self.error = None
        self.closed = threading.Event()
        self.got_headers = threading.Event()
        self._cond = threading.Condition()
        self._resume = threading.Event()
        if not paused:
            self._resume.set()
        self._closing = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(connect_timeout)
        self.sock.connect((host, port))
        self.sock.settimeout(None)
        hdrs = {"Host": "%s:%d" % (host, port), "Accept": "text/event-stream",
                "Cache-Control": "no-cache"}
        hdrs.update(auth)
        hdrs.update(headers or {})
        reqtext = "GET %s HTTP/1.1\r\n" % path + "".join(
            "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        self.sock.sendall(reqtext.encode("utf-8"))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not paused:
            if not self.got_headers.wait(connect_timeout):
                raise AssertionError("SSE %s: no response headers" % path)

    # reading ---------------------------------------------------------------
    def _run(self):
        try:
            self._resume.wait()
            f = self.sock.makefile("rb")
            status_line = f.readline()
            if not status_line:
                raise EOFError("connection closed before status line")
            parts = status_line.decode("latin-1").split(" ", 2)
            self.status = int(parts[1])
            while True:
                line = f.readline()
                if not line or line in (b"\r\n", b"\n"):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.got_headers.set()
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = self._chunked(f)
            elif "content-length" in self.headers:
                chunks = self._fixed(f, int(self.headers["content-length"]))
            else:
                chunks = self._until_eof(f)
            self._parse(chunks)
        except Exception as e:  # socket closed by close(), reset, ...
            if not self._closing:
                self.error = e
        finally:
            self.got_headers.set()
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    @staticmethod
    def _chunked(f):
        while True:
            size_line = f.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            data = f.read(size)
            if len(data) < size:
                if data:
                    yield data
                return
            f.readline()
            yield data

    @staticmethod
    def _fixed(f, n):
        while n > 0:
            data = f.read1(min(n, 65536))
            if not data:
                return
            n -= len(data)
            yield data

    @staticmethod
    def _until_eof(f):
        while True:
            data = f.read1(65536)
            if not data:
                return
            yield data

    def _parse(self, chunks):
        buf = b""
        ev_id = ev_type = None
        data = []
        have = False
        for chunk in chunks:
            buf += chunk
            pos = 0
            lines = []
            while True:
                m = _EOL.search(buf, pos)
                if not m:
                    break
                lines.append(buf[pos:m.start()])
                pos = m.end()
            buf = buf[pos:]
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                with self._cond:
                    self.lines.append(line)
                if line == "":
                    if have:
                        e = SSEEvent(ev_id, ev_type or "message", "\n".join(data))
                        with self._cond:
                            self.events.append(e)
                            self._counts[e.event] = self._counts.get(e.event, 0) + 1
                            self._cond.notify_all()
                    ev_id = ev_type = None
                    data = []
                    have = False
                    continue
                if line.startswith(":"):
                    with self._cond:
                        self.comments.append(line[1:].strip())
                        self._cond.notify_all()
                    continue
                field, sep, value = line.partition(":")
                if sep and value.startswith(" "):
                    value = value[1:]
                if field == "id":
                    ev_id, have = value, True
                elif field == "event":
                    ev_type, have = value, True
                elif field == "data":
                    data.append(value)
                    have = True
                elif field == "retry":
                    with self._cond:
                        self.retries.append(value)
                        self._cond.notify_all()

    # API -------------------------------------------------------------------
    def resume(self):
        self._resume.set()

    def count(self, event="change"):
        with self._cond:
            return len(self.events) if event is None else self._counts.get(event, 0)

    def wait_for(self, n, timeout=10.0, event="change"):
        """Wait until at least n frames of type `event` (None: any) arrived.
        Returns True on success, False on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                have = (len(self.events) if event is None
                        else self._counts.get(event, 0))
                if have >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    return False
                self._cond.wait(min(left, 0.2))

    def wait_comment(self, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in self.comments:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    return text in self.comments
                self._cond.wait(min(left, 0.2))
            return True

    def wait_retry(self, timeout=10.0):
        """Wait until the initial `retry:` line arrived (stream is live)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.retries:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    return bool(self.retries)
                self._cond.wait(min(left, 0.2))
            return True

    def changes(self):
        with self._cond:
            return [e.json for e in self.events if e.event == "change"]

    def seqs(self):
        with self._cond:
            return [e.seq for e in self.events if e.event == "change"]

    @property
    def last_id(self):
        with self._cond:
            for e in reversed(self.events):
                if e.id not in (None, ""):
                    return e.id
        return None

    def close(self):
        self._closing = True
        self._resume.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


# --------------------------------------------------------------------------
# runner

_TESTS = []


def test(fn):
    """Register a test function (run in definition order by run_tests())."""
    _TESTS.append(fn)
    return fn


def _watchdog(name, done, started):
    if done.wait(TEST_TIMEOUT):
        return
    sys.stdout.write("\nTIMEOUT: test %s ran longer than %.0fs; stacks:\n"
                     % (name, TEST_TIMEOUT))
    for tid, frame in sys._current_frames().items():
        sys.stdout.write("--- thread %s\n%s" % (
            tid, "".join(traceback.format_stack(frame))))
    for n in list(_TEST_NODES):
        sys.stdout.write("--- node %s log tail (%s%s):\n%s\n" % (
            n.node_id, n.tmp, ", database %s" % n.db_url if n.db else "",
            _tail(n.log_path)))
    _STATE["failed"] = True
    _cleanup_all()
    sys.stdout.write("%d passed, %d failed\n" % (started[0], started[1] + 1))
    sys.stdout.flush()
    os._exit(1)


def run_tests(argv=None):
    """Run every @test function (or those named on the command line).
    Prints PASS/FAIL per test and 'N passed, M failed' as the last line;
    exits 1 if any failed."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = [t for t in _TESTS if not argv or t.__name__ in argv]
    passed = failed = skipped = 0
    counts = [0, 0]
    if STORE != "sqlite":
        print("store: %s (%s)" % (STORE, PG_URL))
    for fn in chosen:
        del _TEST_NODES[:]
        _STATE["current"] = fn.__name__
        done = threading.Event()
        threading.Thread(target=_watchdog, args=(fn.__name__, done, counts),
                         daemon=True).start()
        t0 = time.monotonic()
        ok = True
        skip = None
        try:
            fn()
        except Skip as e:
            skip = str(e)
        except BaseException as e:  # noqa: includes AssertionError
            if isinstance(e, KeyboardInterrupt):
                raise
            ok = False
            tb = traceback.format_exc()
        done.set()
        dt = time.monotonic() - t0
        if skip is not None:
            skipped += 1
            print("SKIP %s: %s" % (fn.__name__, skip))
        elif ok:
            passed += 1
            print("PASS %s (%.2fs)" % (fn.__name__, dt))
        else:
            failed += 1
            print("FAIL %s (%.2fs)\n%s" % (fn.__name__, dt, tb.rstrip()))
            for n in list(_TEST_NODES):
                n.keep = True
                print("  node %s kept in %s%s; log tail:\n    %s" % (
                    n.node_id, n.tmp, " (database %s)" % n.db_url if n.db else "",
                    _tail(n.log_path).replace("\n", "\n    ")))
        counts[0], counts[1] = passed, failed
        sys.stdout.flush()
    _STATE["current"] = None
    if failed:
        _STATE["failed"] = True
    # shut down shared nodes now, so nothing prints after the summary line
    for n in list(_ALL_NODES):
        try:
            n.close()
        except Exception as e:
            failed += 1
            _STATE["failed"] = True
            print("FAIL shutdown of node %s: %s" % (n.node_id, e))
    _cleanup_all()
    print("%d passed, %d failed%s" % (passed, failed,
                                      ", %d skipped" % skipped if skipped else ""))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


class Shared:
    """Lazily started node shared by the tests of one suite:
        N = Shared(extra_args=[...]);  N().req(...)"""

    def __init__(self, **kw):
        self.kw = kw
        self.node = None

    def __call__(self):
        if self.node is None or not self.node.running():
            if self.node is not None:
                self.node.keep = True
            self.node = Node(**self.kw)
        if self.node not in _TEST_NODES:
            _TEST_NODES.append(self.node)
        return self.node
