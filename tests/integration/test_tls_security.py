"""Security between sites (issue 9): HTTPS and mutual TLS on the node,
certificate reload on SIGHUP, the bridge and the CLI over mTLS, the
federation agent's least privilege, header-auth on non-loopback addresses
and the abuse limits. See docs/security.md.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import harness
from harness import (Node, bin_path, create_actor, expect_error, grant,
                     run_tests, test, token_for, unique, wait_until)
from tlsutil import PKI, TLSNode, TLSStream, client_context

# test_bridge.py's Bridge and helpers, without registering its tests here
_n_tests = len(harness._TESTS)
import test_bridge as tb  # noqa: E402
del harness._TESTS[_n_tests:]


def metric(node, name, labels=None):
    st, _, text = node.req("GET", "/metrics", token=None)
    assert st == 200, st
    pat = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    m = re.search("^" + pat + "$", text, re.M)
    return float(m.group(1)) if m else None


def log_text(node):
    with open(node.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def attempt(node, ctx, tls12=False):
    """One HTTPS GET /health with `ctx`. Returns ('ok', status) when an HTTP
    answer came, ('handshake', err) when the TLS handshake failed,
    ('refused', err) when the connection ended without any HTTP byte."""
    s = socket.create_connection(("127.0.0.1", node.port), 10)
    s.settimeout(10)
    try:
        t = ctx.wrap_socket(s, server_hostname="127.0.0.1",
                            do_handshake_on_connect=False)
        try:
            t.do_handshake()
        except (ssl.SSLError, OSError) as e:
            return ("handshake", repr(e))
        try:
            t.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = t.recv(100)
        except (ssl.SSLError, OSError) as e:
            return ("refused", repr(e))
        if not data:
            return ("refused", "EOF")
        return ("ok", data[:20])
    finally:
        s.close()


def plain_http(port):
    """Sends a clear-text request; returns whatever came back."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(5)
    out = b""
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while True:
            d = s.recv(4096)
            if not d:
                break
            out += d
    except OSError:
        pass
    finally:
        s.close()
    return out


# --------------------------------------------------------------------------
# node HTTPS and mutual TLS

@test
def mtls_accepts_ca_clients_and_refuses_others_at_the_handshake():
    pki, other = PKI(), PKI("Some other CA")
    try:
        with TLSNode("eu-1", "eu", pki) as n:
            # a client certificate from the CA: served
            st, _, b = n.req("GET", "/health", token=None)
            assert st == 200 and b["status"] == "ok", (st, b)
            st, _, b = n.req("GET", "/artifacts/list", query={"pattern": "**"})
            assert st == 200, (st, b)
            assert "mutual_tls=on" in log_text(n)
            exp_cert = pki.issue("expired", start="20200101000000Z",
                                 end="20200201000000Z")
            future = pki.issue("future", start="20990101000000Z",
                               end="20991231000000Z")
            wrong = other.issue("intruder")
            cases = [("no certificate", None), ("other CA", wrong),
                     ("expired", exp_cert), ("not yet valid", future)]
            for tls12 in (True, False):
                for what, cert in cases:
                    ctx = client_context(pki.ca, *(cert or (None, None)),
                                         max_tls12=tls12)
                    kind, detail = attempt(n, ctx)
                    if tls12:
                        # TLS 1.2: the server verifies the client certificate
                        # before it finishes the handshake
                        assert kind == "handshake", (what, kind, detail)
                    else:
                        # TLS 1.3: the client's handshake ends first; the
                        # server refuses on its Certificate message, before
                        # reading a request: the client never gets a byte
                        assert kind in ("handshake", "refused"), (what, kind, detail)
                    # with a good certificate the same client is served
                    ok = attempt(n, client_context(pki.ca, n.client_cert,
                                                   n.client_key, max_tls12=tls12))
                    assert ok[0] == "ok" and ok[1].startswith(b"HTTP/1.1 200"), ok
            # three bad certificates per TLS version counted as refused
            assert metric(n, "ctxsync_http_refused_total",
                          'reason="client_certificate"') == 6
            assert metric(n, "ctxsync_tls_handshakes_incomplete_total") >= 2
            time.sleep(1.1)  # refusal log lines are rate-limited to 1/s
            attempt(n, client_context(pki.ca, *exp_cert))
            time.sleep(0.3)
            log = log_text(n)
            assert re.search(r"WARN TLS-REFUSED peer=127\.0\.0\.1 refused at the "
                             r"TLS handshake: client certificate not trusted", log), log
            assert "issuer is unknown" in log or "expired" in log, log
            # plain HTTP to the HTTPS port: no HTTP answer, nothing leaks
            out = plain_http(n.port)
            assert b"HTTP/" not in out and b"status" not in out, out
            # a client that does not trust the private CA refuses the node
            kind, detail = attempt(n, ssl.create_default_context())
            assert kind == "handshake" and "CERTIFICATE_VERIFY_FAILED" in detail, detail
    finally:
        pki.close()
        other.close()


@test
def https_without_client_ca_serves_any_client_but_no_clear_text():
    pki = PKI()
    try:
        with TLSNode("eu-1", "eu", pki, mtls=False) as n:
            st, _, b = n.req("GET", "/health", token=None, cert=None)
            assert st == 200, (st, b)
            assert "mutual_tls=off" in log_text(n)
            # authentication still needs the bearer token
            expect_error(n.req("GET", "/changes", token=None, cert=None), 401,
                         "unauthenticated")
            assert b"HTTP/" not in plain_http(n.port)
    finally:
        pki.close()


@test
def tls_flag_and_file_errors_refuse_to_start():
    pki = PKI()
    try:
        n = Node("eu-1", "eu", start=False)
        crt, key = pki.issue("srv", server=True)
        crt2, key2 = pki.issue("srv2", server=True)
        old = pki.issue("old", server=True, start="20200101000000Z",
                        end="20200201000000Z")
        junk = os.path.join(pki.dir, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")

        def serve(*args):
            r = subprocess.run([bin_path("ctxsync-node"), "serve"] + n.store_args +
                               ["--listen", "127.0.0.1:0"] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=20)
            return r.returncode, (r.stdout + r.stderr).decode()
        rc, out = serve("--tls-cert", crt)
        assert rc == 2 and "--tls-key" in out, (rc, out)
        rc, out = serve("--tls-key", key)
        assert rc == 2, (rc, out)
        rc, out = serve("--tls-client-ca", pki.ca)
        assert rc == 2, (rc, out)
        rc, out = serve("--tls-cert", crt, "--tls-key", key2)
        assert rc == 1 and "do not match" in out, (rc, out)
        rc, out = serve("--tls-cert", old[0], "--tls-key", old[1])
        assert rc == 1 and "expired" in out, (rc, out)
        rc, out = serve("--tls-cert", junk, "--tls-key", key)
        assert rc == 1 and "not a PEM file" in out, (rc, out)
        rc, out = serve("--tls-cert", crt, "--tls-key", key, "--tls-client-ca",
                        os.path.join(pki.dir, "missing.pem"))
        assert rc == 1 and "cannot open" in out, (rc, out)
        # a group-readable key is served, with a warning
        os.chmod(key, 0o640)
        ready = os.path.join(n.tmp, "ready-tls")
        p = subprocess.Popen([bin_path("ctxsync-node"), "serve"] + n.store_args +
                             ["--listen", "127.0.0.1:0",
                              "--ready-file", ready, "--tls-cert", crt,
                              "--tls-key", key], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: os.path.exists(ready), 10)
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=10)[0].decode()
        assert p.returncode == 0 and "WARN TLS-KEY-MODE" in out, out
        n.close()
    finally:
        pki.close()


@test
def sighup_reloads_certificates_without_dropping_connections():
    pki = PKI()
    try:
        n = TLSNode("eu-1", "eu", pki, start=False)
        # the node reads fixed paths; we swap what they contain
        live_crt = os.path.join(n.tmp, "tls.pem")
        live_key = os.path.join(n.tmp, "tls.key")
        shutil.copy(n.cert_path, live_crt)
        shutil.copy(n.key_path, live_key)
        os.chmod(live_key, 0o600)
        n.extra_args = ["--tls-cert", live_crt, "--tls-key", live_key,
                        "--tls-client-ca", pki.ca, "--keepalive", "1"]
        n.start()
        assert n.peer_cn() == "eu-1"
        # an open stream, a keep-alive connection, then the reload
        stream = TLSStream(n, "/subscriptions/stream", query={"pattern": "**"})
        assert stream.status == 200 and stream.wait_for("retry:")
        import http.client
        ka = http.client.HTTPSConnection("127.0.0.1", n.port, timeout=10,
                                         context=n.context())
        st, _, _ = n.req("GET", "/health", conn=ka)
        assert st == 200
        crt_b, key_b = pki.issue("eu-1-renewed", cn="eu-1-renewed", server=True)
        shutil.copy(crt_b, live_crt)
        shutil.copy(key_b, live_key)
        n.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "certificates reloaded (generation 2)" in log_text(n), 10)
        # new connections get the new certificate
        assert n.peer_cn() == "eu-1-renewed"
        # the stream opened before the reload still delivers
        st, _, _ = n.req("POST", "/artifacts", {"uri": "ctx://acme/reload/a",
                                                "content": "after reload"})
        assert st == 201
        assert stream.wait_for("ctx://acme/reload/a"), stream.text[-500:]
        assert not stream.closed.is_set()
        # the keep-alive connection too (served by the previous server)
        st, _, _ = n.req("GET", "/health", conn=ka)
        assert st == 200
        ka.close()
        # a broken file: the reload fails and the current certificate stays
        with open(live_crt, "w") as f:
            f.write("garbage\n")
        n.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed, still serving the previous "
                           "certificates" in log_text(n), 10)
        assert n.peer_cn() == "eu-1-renewed"
        assert metric(n, "ctxsync_tls_reloads_total", 'result="failed"') == 1
        assert metric(n, "ctxsync_tls_reloads_total", 'result="ok"') == 1
        # once its last connection ends, the previous server stops
        stream.close()
        wait_until(lambda: "previous server (generation 1) stopped" in log_text(n), 10)
        # a stream open on a retired server does not hold the shutdown
        shutil.copy(crt_b, live_crt)
        s2 = TLSStream(n, "/subscriptions/stream")
        assert s2.status == 200
        n.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "certificates reloaded (generation 3)" in log_text(n), 10)
        assert n.stop() == 0
        assert s2.closed.wait(5)
        n.close()
    finally:
        pki.close()


# --------------------------------------------------------------------------
# bridge and CLI over mutual TLS

@tb.bridged
def bridge_replicates_both_ways_over_mtls_and_refuses_without_certs():
    pki = PKI()
    try:
        eu = TLSNode("eu-1", "eu", pki)
        us = TLSNode("us-1", "us", pki)
        eu_tok, us_tok = tb.fed_agent(eu, "us"), tb.fed_agent(us, "eu")
        bcert, bkey = pki.issue("bridge", cn="bridge")

        def end(node, tok, **kw):
            d = {"url": node.url, "token": tok, "ca": pki.ca, "cert": bcert,
                 "key": bkey}
            d.update(kw)
            return d
        links = [
            {"name": "eu-to-us", "source": end(eu, eu_tok),
             "target": end(us, us_tok), "mode": "full"},
            {"name": "us-to-eu", "source": end(us, us_tok),
             "target": end(eu, eu_tok), "mode": "full"},
        ]
        br = tb.Bridge(links)
        br.wait_state("eu-to-us", "live")
        br.wait_state("us-to-eu", "live")
        tb.write(eu, "ctx://acme/eu/doc", "from eu")
        tb.write(us, "ctx://acme/us/doc", {"from": "us"})
        tb.wait_converged(eu, us, 30, "eu<->us over mTLS")
        assert "BRIDGE-INSECURE" not in br.log()
        # ctxsync over https
        base = [bin_path("ctxsync"), "--url", us.url, "--token", us.admin_token,
                "--ca", pki.ca]
        r = subprocess.run(base + ["--cert", bcert, "--key", bkey, "get",
                                   "ctx://acme/eu/doc"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 0 and b"from eu" in r.stdout, r
        r = subprocess.run(base + ["status"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 1 and b"connection to https://" in r.stderr, r
        r = subprocess.run([bin_path("ctxsync"), "--url", us.url, "--token",
                            us.admin_token, "--cert", bcert, "--key", bkey,
                            "status"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 1 and b"TLS with https://" in r.stderr, r
        br.stop()

        # without a client certificate the target refuses the handshake
        nocert = [{"name": "nocert",
                   "source": end(eu, eu_tok),
                   "target": {"url": us.url, "token": us_tok, "ca": pki.ca},
                   "mode": "full"}]
        br2 = tb.Bridge(nocert)
        wait_until(lambda: (br2.link("nocert").get("reason") or "") != "", 20)
        l = br2.link("nocert")
        print("    no client certificate -> %s: %s" % (l["state"], l["reason"]))
        assert l["state"] != "live", l
        assert "client certificate" in l["reason"], l
        br2.stop()
        # without the CA, the bridge does not trust the node
        noca = [{"name": "noca", "source": {"url": eu.url, "token": eu_tok,
                                            "cert": bcert, "key": bkey},
                 "target": end(us, us_tok), "mode": "full"}]
        br3 = tb.Bridge(noca)
        wait_until(lambda: "certificate" in (br3.link("noca").get("reason") or ""), 20)
        print("    no CA -> %s" % br3.link("noca")["reason"])
        br3.stop()
        # insecure: true is logged at every start
        insecure = [{"name": "insec",
                     "source": {"url": eu.url, "token": eu_tok, "insecure": True,
                                "cert": bcert, "key": bkey},
                     "target": end(us, us_tok), "mode": "full"}]
        br4 = tb.Bridge(insecure)
        br4.wait_state("insec", "live")
        br4.stop()
        br4.start()
        br4.wait_state("insec", "live")
        br4.stop()
        assert br4.log().count("WARN BRIDGE-INSECURE") == 2, br4.log()
    finally:
        pki.close()


# --------------------------------------------------------------------------
# least privilege of the federation agent

@test
def federation_agent_is_denied_every_non_federation_endpoint():
    with Node("eu-1", "eu") as n:
        st, _, _ = n.req("POST", "/actors", {
            "actor_id": "fed", "actor_type": "agent", "name": "fed",
            "agent_class": "federation", "region": "us"})
        assert st == 201
        grant(n, actor_id="fed", pattern="ctx://acme/**", ops=("replicate",))
        tok = token_for(n, "fed")
        uri = "ctx://acme/a/secret"
        st, _, _ = n.req("POST", "/artifacts", {"uri": uri, "content": "top secret"})
        assert st == 201
        st, _, sug = n.req("POST", "/suggestions", {"uri": uri, "content": "s2"})
        assert st == 201, sug
        _, _, perms = n.req("GET", "/permissions")
        admin_grant = [g for g in perms["permissions"] if g["actor_id"] == "admin"][0]["id"]
        _, _, toks = n.req("GET", "/actors/admin/tokens")
        admin_tok_id = toks["tokens"][0]["token_id"] if toks.get("tokens") else "tok_x"
        forbidden = [
            ("POST", "/artifacts", {"uri": "ctx://acme/a/new", "content": "x"}, None),
            ("GET", "/artifacts", None, {"uri": uri}),
            ("PUT", "/artifacts", {"content": "y"}, {"uri": uri}),
            ("DELETE", "/artifacts", None, {"uri": uri}),
            ("GET", "/artifacts/history", None, {"uri": uri}),
            ("GET", "/artifacts/diff", None, {"uri": uri, "from": 1, "to": 1}),
            ("POST", "/actors", {"actor_id": "evil", "actor_type": "human", "name": "e"}, None),
            ("POST", "/actors/admin/tokens", None, None),
            ("POST", "/actors/fed/tokens", None, None),
            ("GET", "/actors/admin/tokens", None, None),
            ("DELETE", "/actors/admin/tokens/" + admin_tok_id, None, None),
            ("POST", "/permissions", {"actor_id": "fed", "artifact_pattern": "**",
                                      "operations": ["admin"]}, None),
            ("POST", "/permissions", {"actor_id": "fed", "artifact_pattern": uri,
                                      "operations": ["read"]}, None),
            ("DELETE", "/permissions/" + admin_grant, None, None),
            ("GET", "/provenance", None, {"uri": uri}),
            ("POST", "/suggestions", {"uri": uri, "content": "z"}, None),
            ("POST", "/suggestions/%s/approve" % sug["id"], None, None),
            ("POST", "/suggestions/%s/reject" % sug["id"], None, None),
        ]
        for m, p, body, q in forbidden:
            st, _, b = n.req(m, p, body, token=tok, query=q)
            assert st == 403 and b["error"] == "forbidden", (m, p, st, b)
        # lists and feeds leave out what it cannot read: nothing
        empty = [("/artifacts/list", {"pattern": "**"}, "artifacts"),
                 ("/changes", {"since": 0}, "events"),
                 ("/domains/acme/changes", {"since": 0}, "events"),
                 ("/search", {"q": "secret"}, "results"),
                 ("/suggestions", None, "suggestions"),
                 ("/forks", None, "forks")]
        for p, q, key in empty:
            st, _, b = n.req("GET", p, token=tok, query=q)
            assert st == 200 and b[key] == [], (p, st, b)
        st, _, b = n.req("GET", "/permissions", token=tok)
        assert [g["actor_id"] for g in b["permissions"]] == ["fed"], b
        # nothing of the artifact in any answer it got
        for m, p, body, q in forbidden:
            assert "top secret" not in json.dumps(n.req(m, p, body, token=tok, query=q)[2])
        # the grants are unchanged, no actor was created, nothing written
        _, _, after = n.req("GET", "/permissions")
        assert after == perms
        st, _, _ = n.req("GET", "/actors/evil")
        assert st == 404
        st, _, b = n.req("GET", "/artifacts", query={"uri": uri})
        assert st == 200 and b["content"] == "top secret" and b["version"] == 1
        # what it may do: federation, within its patterns
        st, _, b = n.req("GET", "/federation/changes", token=tok,
                         query={"since": 0, "mode": "full"})
        assert st == 200 and [e["artifact_uri"] for e in b["events"]] == [uri], b


@test
def peer_without_replicate_on_a_uri_gets_that_event_rejected():
    with Node("eu-1", "eu") as eu, Node("us-1", "us") as us:
        for u in ("ctx://acme/shared/a", "ctx://acme/private/b"):
            st, _, _ = eu.req("POST", "/artifacts", {"uri": u, "content": "c " + u})
            assert st == 201
        # us's agent for eu replicates ctx://acme/shared/** only
        st, _, _ = us.req("POST", "/actors", {
            "actor_id": "fed", "actor_type": "agent", "name": "fed",
            "agent_class": "federation", "region": "eu"})
        grant(us, actor_id="fed", pattern="ctx://acme/shared/**", ops=("replicate",))
        tok = token_for(us, "fed")
        _, _, page = eu.req("GET", "/federation/changes",
                            query={"since": 0, "mode": "full"})
        _, _, info = eu.req("GET", "/federation/info")
        st, _, res = us.req("POST", "/federation/ingest", {
            "source": {"node_id": info["node_id"], "epoch": info["epoch"]},
            "events": page["events"], "checkpoint": {"seq": page["next_since"]}},
            token=tok)
        assert st == 200, res
        by_uri = {e["artifact_uri"]: r["status"]
                  for e, r in zip(page["events"], res["results"])}
        assert by_uri == {"ctx://acme/shared/a": "applied",
                          "ctx://acme/private/b": "rejected"}, res
        st, _, _ = us.req("GET", "/artifacts", query={"uri": "ctx://acme/private/b"})
        assert st == 404
        st, _, b = us.req("GET", "/artifacts", query={"uri": "ctx://acme/shared/a"})
        assert st == 200 and b["content"] == "c ctx://acme/shared/a"
        _, _, ch = us.req("GET", "/changes", query={"since": 0})
        assert [e["artifact_uri"] for e in ch["events"]] == ["ctx://acme/shared/a"]


# --------------------------------------------------------------------------
# header auth

@test
def header_auth_refuses_a_non_loopback_address_without_the_explicit_flag():
    n = Node("eu-1", "eu", auth="header", start=False)
    try:
        r = subprocess.run([bin_path("ctxsync-node"), "serve"] + n.store_args +
                           ["--auth", "header", "--listen", "0.0.0.0:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert r.returncode == 2, r
        assert b"--allow-insecure-header-auth" in r.stderr, r.stderr
        ready = os.path.join(n.tmp, "ready-any")
        p = subprocess.Popen([bin_path("ctxsync-node"), "serve"] + n.store_args +
                             ["--auth", "header", "--listen", "0.0.0.0:0",
                              "--allow-insecure-header-auth", "--ready-file", ready],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: os.path.exists(ready), 10)
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=10)[0]
        assert p.returncode == 0, out
        assert b"NODE-HEADER-AUTH" in out, out
        # on loopback header auth starts as before
        n.start()
        st, _, _ = n.req("GET", "/changes", token="admin")
        assert st == 200
    finally:
        n.close()


# --------------------------------------------------------------------------
# abuse limits

@test
def sse_streams_per_actor_are_limited_with_a_clear_error():
    with Node("eu-1", "eu", extra_args=["--sse-max-per-actor", "2",
                                        "--keepalive", "1"]) as n:
        a = harness.SSEClient(n)
        b = harness.SSEClient(n, path="/subscriptions/stream")
        assert a.status == 200 and b.status == 200
        st, h, body = n.req("GET", "/subscriptions/stream")
        b3 = expect_error((st, h, body), 429, "too_many_streams")
        assert "--sse-max-per-actor" in b3["message"] and b3["limit"] == 2, b3
        assert h.get("retry-after")
        # another actor is not affected
        create_actor(n, "bob")
        grant(n, actor_id="bob", pattern="**", ops=("read",))
        c = harness.SSEClient(n, token=token_for(n, "bob"))
        assert c.status == 200
        # a closed stream gives its slot back (when the node notices the
        # close: at the latest on the next keepalive)
        a.close()
        d = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            d = harness.SSEClient(n)
            if d.status == 200:
                break
            d.close()
            time.sleep(0.2)
        assert d is not None and d.status == 200
        assert metric(n, "ctxsync_http_refused_total", 'reason="sse_max_per_actor"') >= 1
        for s in (b, c, d):
            s.close()


@test
def connection_limits_answer_a_clear_error():
    with Node("eu-1", "eu", extra_args=["--max-connections", "4"]) as n:
        idle = [socket.create_connection(("127.0.0.1", n.port)) for _ in range(4)]
        time.sleep(0.2)
        b = expect_error(n.req("GET", "/health", token=None), 503, "too_many_connections")
        assert "--max-connections" in b["message"], b
        for s in idle:
            s.close()
        wait_until(lambda: n.req("GET", "/health", token=None)[0] == 200, 10)
        assert metric(n, "ctxsync_http_refused_total", 'reason="max_connections"') >= 1
    with Node("eu-1", "eu", extra_args=["--max-connections-per-ip", "3"]) as n:
        idle = [socket.create_connection(("127.0.0.1", n.port)) for _ in range(3)]
        time.sleep(0.2)
        st, h, b = n.req("GET", "/health", token=None)
        b = expect_error((st, h, b), 429, "too_many_connections")
        assert "127.0.0.1" in b["message"] and "--max-connections-per-ip" in b["message"]
        assert h.get("connection", "").lower() == "close"
        for s in idle:
            s.close()
        wait_until(lambda: n.req("GET", "/health", token=None)[0] == 200, 10)


@test
def request_timeout_closes_slow_clients_but_not_streams():
    with Node("eu-1", "eu", extra_args=["--request-timeout", "2",
                                        "--keepalive", "5"]) as n:
        stream = harness.SSEClient(n)
        assert stream.status == 200
        # a client that never finishes its headers is closed after ~2 s
        s = socket.create_connection(("127.0.0.1", n.port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(10)
        t0 = time.monotonic()
        data = s.recv(100)
        took = time.monotonic() - t0
        s.close()
        assert data == b"" and 1.5 <= took <= 6, (data, took)
        # the idle stream (no byte for 5 s > 2 s) is still open and delivers
        time.sleep(3)
        assert not stream.closed.is_set()
        st, _, _ = n.req("POST", "/artifacts", {"uri": "ctx://acme/t/x", "content": "x"})
        assert st == 201
        assert stream.wait_for(1, 10), stream.lines[-5:]
        wait_until(lambda: stream.comments, 10, msg="no keepalive comment seen")
        stream.close()


@test
def oversized_headers_and_bodies_are_refused():
    with Node("eu-1", "eu", extra_args=["--conn-memory-limit", "65536",
                                        "--max-body", "1000"]) as n:
        s = socket.create_connection(("127.0.0.1", n.port))
        s.settimeout(10)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 +
                  b"\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                out += d
        except OSError:
            pass
        s.close()
        assert out.startswith(b"HTTP/1.1 431"), out[:200]
        expect_error(n.req("POST", "/artifacts", {"uri": "ctx://acme/big",
                                                  "content": "x" * 5000}),
                     413, "payload_too_large")
        st, _, _ = n.req("GET", "/health", token=None)
        assert st == 200


@test
def limit_flags_are_validated():
    n = Node("eu-1", "eu", start=False)
    try:
        for args in (["--max-connections", "0"], ["--request-timeout", "x"],
                     ["--conn-memory-limit", "100"], ["--sse-max-per-actor", "-1"],
                     ["--max-connections-per-ip", "abc"]):
            r = subprocess.run([bin_path("ctxsync-node"), "serve"] + n.store_args +
                               ["--listen", "127.0.0.1:0"] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=20)
            assert r.returncode == 2 and args[0].encode() in r.stderr, (args, r)
    finally:
        n.close()


if __name__ == "__main__":
    run_tests()
