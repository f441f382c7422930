"""Tokens never appear in logs, metrics, status output, error messages or
replicated data (issue 9), and token rotation without downtime.

One full scenario: two nodes with mutual TLS (eu-1, us-1), a bidirectional
bridge whose tokens come from token files, writes on both sides, errors
(unknown, revoked and wrong tokens, forbidden requests, a bridge link with
a bad token, the CLI with a bad token), a rotation of the us federation
agent's token with the bridge running (issue the new token, update the
token file, restart the bridge, revoke the old token). Then every log,
status document, metrics page, CLI output, feed, stream and data file is
searched for every token value (and its first 12 characters).

The only places a token may appear are where it is handed out: the output
of `ctxsync-node init`, the answer of POST /actors/{id}/tokens, the token
files and the CLI's `actors token`.
"""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import harness
from harness import bin_path, run_tests, test, token_for, wait_until
from tlsutil import PKI, TLSNode, TLSStream

_n_tests = len(harness._TESTS)
import test_bridge as tb  # noqa: E402
del harness._TESTS[_n_tests:]


def issue(node, actor_id):
    st, _, b = node.req("POST", "/actors/%s/tokens" % actor_id, {})
    assert st == 201, (st, b)
    return b["token"], b["token_id"]


@tb.bridged
def no_token_in_any_log_output_feed_or_data_file_and_rotation_without_downtime():
    pki = PKI()
    work = tempfile.mkdtemp(prefix="cs-it-hygiene-")
    corpus = {}  # name -> text (or bytes) searched at the end
    try:
        eu = TLSNode("eu-1", "eu", pki)
        us = TLSNode("us-1", "us", pki)
        tokens = {"eu admin": eu.admin_token, "us admin": us.admin_token}
        tokens["eu fed"] = tb.fed_agent(eu, "us")
        tokens["us fed (old)"] = tb.fed_agent(us, "eu")
        _, _, tl = us.req("GET", "/actors/fed/tokens")
        old_us_fed_id = tl["tokens"][0]["token_id"]
        harness.create_actor(eu, "alice")
        harness.grant(eu, actor_id="alice", pattern="ctx://acme/**",
                      ops=("read", "write"))
        tokens["alice"] = token_for(eu, "alice")
        harness.create_actor(eu, "bob")
        tokens["bob (revoked)"], bob_id = issue(eu, "bob")
        st, _, _ = eu.req("DELETE", "/actors/bob/tokens/" + bob_id)
        assert st in (200, 204), st
        tokens["made up"] = secrets.token_urlsafe(32)

        bcert, bkey = pki.issue("bridge", cn="bridge")
        files = {}
        for name, key in (("eu-fed.token", "eu fed"),
                          ("us-fed.token", "us fed (old)")):
            files[name] = os.path.join(work, name)
            with open(files[name], "w") as f:
                f.write(tokens[key] + "\n")
            os.chmod(files[name], 0o600)

        def end(node, token_file):
            return {"url": node.url, "token_file": files[token_file],
                    "ca": pki.ca, "cert": bcert, "key": bkey}
        links = [{"name": "eu-to-us", "source": end(eu, "eu-fed.token"),
                  "target": end(us, "us-fed.token"), "mode": "full"},
                 {"name": "us-to-eu", "source": end(us, "us-fed.token"),
                  "target": end(eu, "eu-fed.token"), "mode": "full"}]
        br = tb.Bridge(links)
        br.wait_state("eu-to-us", "live")
        br.wait_state("us-to-eu", "live")
        tb.write(eu, "ctx://acme/eu/plan", "eu plan v1", token=tokens["alice"])
        tb.write(us, "ctx://acme/us/plan", {"us": 1})
        tb.wait_converged(eu, us, 30, "before rotation")

        # ---- errors, each with a token in play
        for key in ("made up", "bob (revoked)"):
            st, h, b = eu.req("GET", "/changes", token=tokens[key])
            assert st == 401, (st, b)
            corpus["401 answer (%s)" % key] = json.dumps([st, h, b])
        st, h, b = eu.req("GET", "/artifacts", query={"uri": "ctx://other/d/x"},
                          token=tokens["alice"])
        assert st == 403, (st, b)
        corpus["403 answer"] = json.dumps([st, h, b])
        st, h, b = us.req("POST", "/federation/ingest", {"events": []},
                          token=tokens["us fed (old)"])
        corpus["ingest error"] = json.dumps([st, h, b])
        # a bridge whose target token is revoked, one with a made-up token
        bad = tb.Bridge([
            {"name": "revoked", "source": end(eu, "eu-fed.token"),
             "target": {"url": us.url, "token": tokens["bob (revoked)"],
                        "ca": pki.ca, "cert": bcert, "key": bkey}},
            {"name": "madeup", "source": {"url": us.url,
                                          "token": tokens["made up"],
                                          "ca": pki.ca, "cert": bcert,
                                          "key": bkey},
             "target": end(eu, "eu-fed.token")}])
        wait_until(lambda: all(l["state"] == "failed" and l["reason"]
                               for l in bad.status().values()), 20)
        _, _, corpus["bad bridge status"] = bad.get("/status")
        _, _, corpus["bad bridge metrics"] = bad.get("/metrics")
        bad.stop()
        corpus["bad bridge log"] = bad.log()
        assert "401" in corpus["bad bridge log"], corpus["bad bridge log"][-2000:]

        # ---- the CLI (outputs and errors)
        def cli(*args, token):
            r = subprocess.run([bin_path("ctxsync"), "--url", eu.url, "--token",
                                token, "--ca", pki.ca, "--cert", eu.client_cert,
                                "--key", eu.client_key] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30)
            corpus["cli %s (%s)" % (" ".join(args), r.returncode)] = \
                r.stdout.decode() + r.stderr.decode()
            return r
        assert cli("status", token=tokens["eu admin"]).returncode == 0
        assert cli("get", "ctx://acme/us/plan", token=tokens["alice"]).returncode == 0
        assert cli("history", "ctx://acme/eu/plan", token=tokens["alice"]).returncode == 0
        assert cli("actors", "list", token=tokens["eu admin"]).returncode == 0
        assert cli("actors", "show", "fed", token=tokens["eu admin"]).returncode == 0
        assert cli("--json", "actors", "show", "fed",
                   token=tokens["eu admin"]).returncode == 0
        assert cli("status", token=tokens["made up"]).returncode in (0, 1)
        assert cli("get", "ctx://acme/eu/plan", token=tokens["made up"]).returncode == 1
        assert cli("get", "ctx://acme/eu/plan", token=tokens["bob (revoked)"]).returncode == 1
        assert cli("grant", "--actor", "alice", "**", "admin",
                   token=tokens["alice"]).returncode == 1

        # ---- rotation of us's federation token with the bridge running
        tokens["us fed (new)"], _ = issue(us, "fed")
        # two valid tokens during the rotation
        for key in ("us fed (old)", "us fed (new)"):
            st, _, _ = us.req("GET", "/federation/info", token=tokens[key])
            assert st == 200, key
        tmp = files["us-fed.token"] + ".tmp"
        with open(tmp, "w") as f:
            f.write(tokens["us fed (new)"] + "\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, files["us-fed.token"])
        tb.write(eu, "ctx://acme/eu/plan", "eu plan v2 (during the restart)",
                 token=tokens["alice"])
        br.stop()
        br.start()
        br.wait_state("eu-to-us", "live")
        br.wait_state("us-to-eu", "live")
        st, _, _ = us.req("DELETE", "/actors/fed/tokens/" + old_us_fed_id)
        assert st in (200, 204), st
        st, _, _ = us.req("GET", "/federation/info", token=tokens["us fed (old)"])
        assert st == 401
        tb.write(us, "ctx://acme/us/plan", {"us": 2})
        tb.write(eu, "ctx://acme/eu/plan", "eu plan v3", token=tokens["alice"])
        tb.wait_converged(eu, us, 30, "after rotation")
        for l in br.status().values():
            assert l["state"] == "live", l

        # ---- collect every output
        for node in (eu, us):
            for path in ("/metrics", "/health"):
                corpus["%s %s" % (node.node_id, path)] = json.dumps(
                    node.req("GET", path, token=None))
            for path, q in (("/changes", {"since": 0}),
                            ("/federation/changes", {"since": 0, "mode": "full"}),
                            ("/actors", None), ("/actors/fed", None),
                            ("/actors/fed/tokens", None), ("/permissions", None),
                            ("/federation/deadletters", None),
                            ("/artifacts/history", {"uri": "ctx://acme/eu/plan"})):
                corpus["%s %s" % (node.node_id, path)] = json.dumps(
                    node.req("GET", path, query=q))
            s = TLSStream(node, "/federation/stream", query={"since": 0,
                                                             "mode": "full"})
            assert s.wait_for("ctx://acme/us/plan")
            s.close()
            corpus["%s federation stream" % node.node_id] = s.text
        _, _, corpus["bridge status"] = br.get("/status")
        _, _, corpus["bridge metrics"] = br.get("/metrics")
        r = subprocess.run([bin_path("ctxsync-bridge"), "status", "--status",
                            br.status_addr], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        corpus["bridge status command"] = (r.stdout + r.stderr).decode()
        br.stop()
        eu.stop()
        us.stop()
        corpus["bridge log"] = br.log()
        for node in (eu, us):
            with open(node.log_path, "rb") as f:
                log = f.read()
            # the init line of the harness log holds no token (init prints
            # it on stdout, which the harness does not log)
            corpus["%s log" % node.node_id] = log
            # SQLite: every file of the data dir; PostgreSQL: the database
            for name, data in node.at_rest().items():
                corpus["%s data file %s" % (node.node_id, name)] = data
        for root, _, names in os.walk(br.tmp):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    corpus["bridge dir %s" % name] = f.read()

        # ---- the search
        assert len(corpus) > 40, sorted(corpus)

        def find_leaks(where_text):
            out = []
            for where, text in where_text.items():
                blob = text if isinstance(text, bytes) else text.encode("utf-8")
                for key, tok in tokens.items():
                    for needle in (tok, tok[:12]):
                        if needle.encode() in blob:
                            out.append("%s: token '%s'%s" % (
                                where, key, "" if needle == tok else " (prefix)"))
            return out
        # the search finds what it looks for (a canary)
        assert find_leaks({"canary": b"x" + tokens["alice"][:12].encode()})
        leaks = find_leaks(corpus)
        assert not leaks, "tokens leaked:\n  " + "\n  ".join(leaks)
        print("    searched %d outputs (%d bytes) for %d tokens: none found" % (
            len(corpus), sum(len(v) for v in corpus.values()), len(tokens)))
        eu.close()
        us.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        pki.close()


if __name__ == "__main__":
    run_tests()
