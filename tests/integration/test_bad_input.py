"""Bad input never crashes the node, never writes anything, and is answered
with the documented error codes (node-api.md §1, §3, §4)."""

import random
import socket
import time

from harness import (Shared, expect_error, expect_ok, new_actor, run_tests, test,
                     unique)

MAX_BODY = 1048576
N = Shared(node_id="bad1", region="eu", extra_args=["--max-body", str(MAX_BODY)])


class Unchanged:
    """Context: the feed head, actors, grants and subscriptions did not move,
    and /health still answers."""

    def __init__(self, n):
        self.n = n

    def snapshot(self):
        n = self.n
        acts = expect_ok(n.req("GET", "/actors"))["actors"]
        perms = expect_ok(n.req("GET", "/permissions"))["permissions"]
        subs = expect_ok(n.req("GET", "/subscriptions"))["subscriptions"]
        return (n.head(), len(acts), len(perms), len(subs))

    def __enter__(self):
        self.before = self.snapshot()
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            assert self.n.running(), "node process died"
            assert self.n.health(), "node does not answer /health"
            after = self.snapshot()
            assert after == self.before, ("bad input changed state "
                                          "(head, actors, grants, subs)", self.before, after)
        return False


def fixture(n):
    """An existing artifact and a pending suggestion to aim bad requests at."""
    u = "ctx://bad/docs/%s" % unique()
    expect_ok(n.req("POST", "/artifacts", {"uri": u, "content": "x"}), 201)
    s = expect_ok(n.req("POST", "/suggestions", {"uri": u, "content": "y", "summary": "s",
                                                 "base_version": 1}), 201)
    return u, s["id"]


def body_endpoints(u, sid):
    return [
        ("POST", "/artifacts", None),
        ("PUT", "/artifacts", {"uri": u}),
        ("POST", "/actors", None),
        ("POST", "/permissions", None),
        ("POST", "/subscriptions", None),
        ("POST", "/suggestions", None),
    ]


@test
def malformed_json_is_invalid_json():
    n = N()
    u, sid = fixture(n)
    bodies = [b'{"uri": ', b"{'uri': 'x'}", b'{"a":1} trailing', b"nul", b"{,}",
              b'{"uri":"ctx://bad/docs/q","content":"x",}', b"\x00\x01\x02",
              b'{"uri": "ctx://bad/docs/q", "content": "unterminated}']
    with Unchanged(n):
        for method, path, q in body_endpoints(u, sid):
            for raw in bodies:
                expect_error(n.req(method, path, raw_body=raw, query=q), 400, "invalid_json")


@test
def wrong_types_are_bad_request():
    n = N()
    u, sid = fixture(n)
    uid, _ = new_actor(n, "wt")
    cases = [
        ("POST", "/artifacts", None, {"uri": "ctx://bad/docs/nocontent"}),
        ("POST", "/artifacts", None, {"content": "no uri"}),
        ("POST", "/artifacts", None, {"uri": 123, "content": "x"}),
        ("POST", "/artifacts", None, {"uri": ["ctx://bad/docs/l"], "content": "x"}),
        ("POST", "/artifacts", None, {"uri": "ctx://bad/docs/n", "content": "x", "name": 5}),
        ("POST", "/artifacts", None, {"uri": "ctx://bad/docs/n", "content": "x",
                                      "summary": {"a": 1}}),
        ("POST", "/artifacts", None, [1, 2]),
        ("POST", "/artifacts", None, "just a string"),
        ("PUT", "/artifacts", {"uri": u}, {}),
        ("PUT", "/artifacts", {"uri": u}, {"content": "x", "base_version": "1"}),
        ("PUT", "/artifacts", {"uri": u}, {"content": "x", "base_version": 1.5}),
        ("POST", "/actors", None, {"actor_type": 5, "name": "x"}),
        ("POST", "/actors", None, {"actor_id": 7, "actor_type": "human", "name": "x"}),
        ("POST", "/actors", None, {"actor_id": unique("x"), "actor_type": "alien",
                                   "name": "x"}),
        ("POST", "/permissions", None, {"actor_id": uid, "artifact_pattern": "**",
                                        "operations": "read"}),
        ("POST", "/permissions", None, {"actor_id": uid, "artifact_pattern": "**",
                                        "operations": ["read", "fly"]}),
        ("POST", "/permissions", None, {"actor_id": uid, "artifact_pattern": "**",
                                        "operations": [1]}),
        ("POST", "/permissions", None, {"actor_id": uid, "agent_class": "c",
                                        "artifact_pattern": "**", "operations": ["read"]}),
        ("POST", "/permissions", None, {"artifact_pattern": "**", "operations": ["read"]}),
        ("POST", "/permissions", None, {"actor_id": uid, "operations": ["read"]}),
        ("POST", "/subscriptions", None, {"pattern": 5}),
        ("POST", "/subscriptions", None, {"pattern": "**", "since": [1]}),
        ("POST", "/suggestions", None, {"uri": 5, "content": "x", "summary": "s",
                                        "base_version": 1}),
        ("POST", "/suggestions", None, {"uri": u, "summary": "s", "base_version": 1}),
        ("POST", "/suggestions", None, {"uri": u, "content": "x", "summary": "s",
                                        "base_version": "one"}),
    ]
    with Unchanged(n):
        for method, path, q, body in cases:
            try:
                expect_error(n.req(method, path, body, query=q), 400, "bad_request")
            except AssertionError as e:
                raise AssertionError("%s %s %r: %s" % (method, path, body, e))


BAD_URIS = [
    "", "acme/docs/x", "http://acme/docs/x", "ctx:/acme/docs/x", "ctx://acme/docs",
    "ctx://acme/docs/", "ctx://acme//x", "ctx:///docs/x", "ctx://acme/docs/x/",
    "ctx://acme/docs//x", "ctx://ac me/docs/x", "ctx://acme/docs/x?y=1",
    "ctx://acme/docs/x#frag", "ctx://acme/docs/caf\u00e9", "ctx://acme/docs/x%20y",
    "ctx://acme/docs/*", "ctx://acme/**", "ctx://acme/docs/x\n", "ctx://acme/docs/x\ty",
    " ctx://acme/docs/x", "ctx://acme/docs/" + "a" * 1100, "ctx://acme/do:cs/x",
    "ctx://acme/docs/a\\b", "ctx://",
]


@test
def invalid_uris_are_invalid_uri():
    n = N()
    with Unchanged(n):
        for bad in BAD_URIS:
            try:
                expect_error(n.req("GET", "/artifacts", query={"uri": bad}), 400, "invalid_uri")
                expect_error(n.req("POST", "/artifacts", {"uri": bad, "content": "x"}),
                             400, "invalid_uri")
                expect_error(n.req("PUT", "/artifacts", {"content": "x"}, query={"uri": bad}),
                             400, "invalid_uri")
                expect_error(n.req("DELETE", "/artifacts", query={"uri": bad}),
                             400, "invalid_uri")
                expect_error(n.req("GET", "/artifacts/history", query={"uri": bad}),
                             400, "invalid_uri")
                expect_error(n.req("GET", "/artifacts/diff",
                                   query={"uri": bad, "from": 1, "to": 2}), 400, "invalid_uri")
            except AssertionError as e:
                raise AssertionError("uri %r: %s" % (bad, e))


@test
def uri_length_limit_is_1024_bytes():
    n = N()
    base = "ctx://bad/long/"
    ok = base + "a" * (1024 - len(base))
    assert len(ok) == 1024
    expect_ok(n.req("POST", "/artifacts", {"uri": ok, "content": "x"}), 201)
    assert expect_ok(n.req("GET", "/artifacts", query={"uri": ok}))["uri"] == ok
    with Unchanged(n):
        expect_error(n.req("POST", "/artifacts", {"uri": ok + "b", "content": "x"}),
                     400, "invalid_uri")


@test
def missing_or_malformed_query_params():
    n = N()
    u, sid = fixture(n)
    with Unchanged(n):
        for method, path, q, body in (
                ("GET", "/artifacts", None, None),
                ("PUT", "/artifacts", None, {"content": "x"}),
                ("DELETE", "/artifacts", None, None),
                ("GET", "/artifacts/history", None, None),
                ("GET", "/artifacts/diff", {"from": 1, "to": 1}, None),
                ("GET", "/permissions/check", {"actor_id": "admin", "op": "read"}, None),
                ("GET", "/search", None, None),
                ("GET", "/artifacts", {"uri": u, "version": "abc"}, None),
                ("GET", "/artifacts/list", {"limit": "many"}, None),
                ("GET", "/changes", {"limit": "x"}, None),
                ("GET", "/changes", {"since": "not-a-time"}, None),
                ("GET", "/artifacts/diff", {"uri": u, "from": 1, "to": 1,
                                            "format": "pdf"}, None),
                ("GET", "/permissions/check", {"actor_id": "admin", "uri": u,
                                               "op": "fly"}, None),
        ):
            try:
                expect_error(n.req(method, path, body, query=q), 400, "bad_request")
            except AssertionError as e:
                raise AssertionError("%s %s %r: %s" % (method, path, q, e))
        # bad percent-encoding in the query string
        st, h, b = n.req("GET", "/artifacts?uri=ctx%3A%2F%2Fbad%2Fdocs%2F%ZZ")
        expect_error((st, h, b), 400, ("bad_request", "invalid_uri"))


@test
def wrong_content_type_is_415():
    n = N()
    u, _ = fixture(n)
    new_uri = "ctx://bad/docs/%s" % unique()
    with Unchanged(n):
        for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            expect_error(n.req("POST", "/artifacts", {"uri": new_uri, "content": "x"},
                               headers={"Content-Type": ct}), 415, "unsupported_media_type")
            expect_error(n.req("PUT", "/artifacts", {"content": "x"}, query={"uri": u},
                               headers={"Content-Type": ct}), 415, "unsupported_media_type")
            expect_error(n.req("POST", "/permissions", {"actor_id": "admin",
                                                        "artifact_pattern": "**",
                                                        "operations": ["read"]},
                               headers={"Content-Type": ct}), 415, "unsupported_media_type")
    # with a charset parameter it is fine
    expect_ok(n.req("POST", "/artifacts", {"uri": new_uri, "content": "x"},
                    headers={"Content-Type": "application/json; charset=utf-8"}), 201)


def _send_and_read(n, head, body_parts, read_timeout=10.0):
    """Send request head, then body parts from a thread (ignoring send errors:
    the node may stop reading), while reading the response concurrently.
    Returns (elapsed seconds until the response was complete, response bytes)."""
    import threading
    s = socket.create_connection(("127.0.0.1", n.port), timeout=read_timeout)
    t0 = time.monotonic()

    def sender():
        try:
            s.sendall(head)
            for p in body_parts:
                s.sendall(p)
        except OSError:
            pass
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    out = b""
    try:
        while not (b"\r\n\r\n" in out and _complete(out)):
            try:
                c = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not c:
                break
            out += c
        dt = time.monotonic() - t0
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        th.join(5)
    return dt, out


def _head(n, method, path, extra):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n%s\r\n"
            % (method, path, n.admin_token, extra)).encode()


def _expect_413(out):
    assert _status(out) == 413, out[:300]
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"x-request-id" in head.lower(), head
    assert b'"payload_too_large"' in body, body[:300]


@test
def oversized_body_is_413():
    n = N()
    u, _ = fixture(n)
    new_uri = "ctx://bad/docs/%s" % unique()
    with Unchanged(n):
        big = b'{"uri": "%s", "content": "%s"}' % (new_uri.encode(), b"x" * (2 * MAX_BODY))
        parts = [big[i:i + 65536] for i in range(0, len(big), 65536)]
        _, out = _send_and_read(n, _head(n, "POST", "/artifacts",
                                         "Content-Length: %d\r\n" % len(big)), parts)
        _expect_413(out)
        _, out = _send_and_read(n, _head(n, "PUT", "/artifacts?uri=" + u.replace(
            ":", "%3A").replace("/", "%2F"), "Content-Length: %d\r\n" % len(big)), parts)
        _expect_413(out)
    # just under the limit is accepted
    fits = "y" * (MAX_BODY - 200)
    expect_ok(n.req("POST", "/artifacts", {"uri": new_uri, "content": fits}), 201)
    assert expect_ok(n.req("GET", "/artifacts", query={"uri": new_uri}))["content"] == fits


@test
def huge_content_length_answered_without_reading_body():
    n = N()
    with Unchanged(n):
        dt, out = _send_and_read(n, _head(n, "POST", "/artifacts",
                                          "Content-Length: %d\r\n" % (100 * 1024 * 1024)),
                                 [], read_timeout=5.0)
        _expect_413(out)
        assert dt < 3.0, "413 took %.1fs: the node waited for the body" % dt
        # chunked upload growing past the limit
        first = b'{"uri":"ctx://bad/docs/chunked","content":"'
        chunk = b"x" * 65536
        parts = [b"%x\r\n%s\r\n" % (len(first), first)]
        parts += [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 40
        parts += [b'2\r\n"}\r\n0\r\n\r\n']
        _, out = _send_and_read(n, _head(n, "POST", "/artifacts",
                                         "Transfer-Encoding: chunked\r\n"), parts)
        _expect_413(out)


def _raw(n, data, read_timeout=5.0, shut=False):
    """Send raw bytes, return (elapsed, response bytes until close/timeout)."""
    s = socket.create_connection(("127.0.0.1", n.port), timeout=read_timeout)
    t0 = time.monotonic()
    out = b""
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and _complete(out):
                break
    finally:
        s.close()
    return time.monotonic() - t0, out


def _complete(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _status(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


@test
def long_query_string_rejected_and_node_keeps_serving():
    n = N()
    with Unchanged(n):
        q = "ctx://bad/docs/" + "a" * (100 * 1024)
        st, h, b = n.req("GET", "/artifacts", query={"uri": q, "pad": "b" * 1000})
        assert st in (400, 414), (st, str(b)[:200])
        assert isinstance(b, dict) and b.get("error"), "no JSON error body: %r" % (
            str(b)[:200],)
        assert h.get("x-request-id"), h
        # huge header
        try:
            st, h, b = n.req("GET", "/health", token=None, headers={"X-Big": "z" * 100000})
            assert st in (200, 400, 431), st
        except (ConnectionError, OSError):
            pass  # closing the connection is acceptable for a 100 KB header


@test
def invalid_utf8_in_json_is_invalid_json():
    n = N()
    with Unchanged(n):
        for raw in (b'{"uri":"ctx://bad/docs/u8","content":"\xff\xfe"}',
                    b'{"uri":"ctx://bad/docs/u8","content":"\xc0\xaf"}',
                    b'{"uri":"ctx://bad/docs/u8","content":"\xed\xa0\x80"}',
                    b'{"uri":"ctx://bad/docs/u8","content":"abc\xe2\x82"}',
                    b'{"uri":"ctx://bad/docs/u8\xff","content":"a"}'):
            expect_error(n.req("POST", "/artifacts", raw_body=raw), 400, "invalid_json")
        # a lone surrogate escape cannot become UTF-8
        expect_error(n.req("POST", "/artifacts",
                           raw_body=b'{"uri":"ctx://bad/docs/u8","content":"\\ud800"}'),
                     400, ("invalid_json", "bad_request"))
        # nesting far beyond any parser's limit
        deep = b'{"uri":"ctx://bad/docs/deep","content":' + b"[" * 200000 + \
            b"]" * 200000 + b"}"
        expect_error(n.req("POST", "/artifacts", raw_body=deep), 400,
                     ("invalid_json", "bad_request"))


@test
def unknown_route_404_and_wrong_method_405():
    n = N()
    with Unchanged(n):
        for path in ("/nope", "/artifactsX", "/artifacts/list/extra", "/", "/actors/a/b/c/d",
                     "/subscriptions/1/feed/extra"):
            expect_error(n.req("GET", path), 404, "not_found")
        for method, path, must in (
                ("PATCH", "/artifacts", {"GET", "POST", "PUT", "DELETE"}),
                ("DELETE", "/health", {"GET"}),
                ("POST", "/changes", {"GET"}),
                ("PUT", "/actors", {"GET", "POST"}),
                ("POST", "/artifacts/history", {"GET"}),
                ("PUT", "/search", {"GET"})):
            st, h, b = n.req(method, path, raw_body=b"{}" if method != "DELETE" else None)
            expect_error((st, h, b), 405)
            allow = {m.strip() for m in h.get("allow", "").split(",")}
            assert must <= allow, (method, path, h.get("allow"))


GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # TLS hello
    b"GET /health HTTP/1.1\r\nHo",                      # truncated
    b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /\x00health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nNoColonHeader\r\n\r\n",
    b"POST /artifacts HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /artifacts HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /artifacts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /artifacts HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"",
    b"\r\n" * 1000,
]


@test
def raw_socket_garbage():
    n = N()
    rnd = random.Random(7)
    with Unchanged(n):
        for data in GARBAGE + [bytes(rnd.getrandbits(8) for _ in range(4096))
                               for _ in range(5)]:
            _raw(n, data, read_timeout=1.0, shut=True)
            assert n.running(), "node died on %r" % data[:60]
            assert n.health(), "no /health after %r" % data[:60]
        # send and close immediately, without reading
        for data in GARBAGE:
            s = socket.create_connection(("127.0.0.1", n.port), timeout=2)
            s.sendall(data)
            s.close()
        assert n.health()


@test
def slowloris_does_not_block_others():
    n = N()
    socks = []
    try:
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", n.port), timeout=2)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
            socks.append(s)
        for _ in range(3):
            t0 = time.monotonic()
            assert n.health(), "node does not answer while slow clients hang"
            assert time.monotonic() - t0 < 2.0
            for s in socks:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    with Unchanged(n):
        pass


@test
def forbidden_bad_requests_write_nothing():
    """Mixed bad requests from a non-admin: no state change either."""
    n = N()
    u, sid = fixture(n)
    _, tok = new_actor(n, "fb")
    with Unchanged(n):
        expect_error(n.req("PUT", "/artifacts", {"content": "x"}, query={"uri": u}, token=tok),
                     403, "forbidden")
        expect_error(n.req("POST", "/suggestions/%s/approve" % sid, {}, token=tok),
                     403, "forbidden")
        expect_error(n.req("POST", "/permissions", {"actor_id": "admin",
                                                    "artifact_pattern": "**",
                                                    "operations": ["read"]}, token=tok),
                     403, "forbidden")
        expect_error(n.req("PUT", "/artifacts", {"content": "x", "base_version": 99},
                           query={"uri": u}), 409, "version_conflict")
        expect_error(n.req("POST", "/artifacts", {"uri": u, "content": "x"}), 409, "conflict")


if __name__ == "__main__":
    run_tests()
