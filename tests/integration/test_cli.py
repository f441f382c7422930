#!/usr/bin/env python3
"""Integration tests for the `ctxsync` client CLI against a real node.

Runs <CS_BIN_DIR>/ctxsync as a subprocess against a ctxsync-node started by
the shared harness (harness.py), and checks output, --json output and exit
status (0 success, 1 error, 2 usage) as docs/cli.md describes.
Standard library only; prints "N passed, M failed" last.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Shared, bin_path, run_tests, test, unique  # noqa: E402


N = Shared()                 # token-auth node shared by the tests
NH = Shared(auth="header")   # header-auth node (X-Actor-Id)
CLI = bin_path("ctxsync")


def cli(*args, token="admin", url=None, stdin=None, env_extra=None,
        timeout=60):
    """Runs ctxsync; returns (rc, stdout, stderr) as text.  token="admin"
    uses the node's admin token via CTXSYNC_TOKEN, None sends none."""
    env = dict(os.environ)
    env.pop("CTXSYNC_URL", None)
    env.pop("CTXSYNC_TOKEN", None)
    if url is None:
        url = N().url
    if url:
        env["CTXSYNC_URL"] = url
    if token == "admin":
        token = N().admin_token
    if token:
        env["CTXSYNC_TOKEN"] = token
    env.update(env_extra or {})
    r = subprocess.run([CLI] + list(args), env=env,
                       input=stdin if stdin is not None else b"",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def ok(*args, **kw):
    rc, out, err = cli(*args, **kw)
    assert rc == 0, "ctxsync %s: rc=%d\nstdout: %s\nstderr: %s" % (
        " ".join(args), rc, out, err)
    return out


def ok_json(*args, **kw):
    out = ok("--json", *args, **kw)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("--json output is not JSON: %r" % out)


def fails(rc_want, *args, **kw):
    rc, out, err = cli(*args, **kw)
    assert rc == rc_want, "ctxsync %s: want rc=%d, got %d\nstdout: %s\n" \
        "stderr: %s" % (" ".join(args), rc_want, rc, out, err)
    return out, err


def uri(kind="doc"):
    return "ctx://acme/%s/%s" % (kind, unique("a"))


def header_field(out, key):
    """Value of 'key:' in the header block of `ctxsync get`."""
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line[len(key) + 1:].strip()
    raise AssertionError("no %s: line in %r" % (key, out))


def body_of(out):
    """Content part of `ctxsync get` (after the first blank line)."""
    return out.split("\n\n", 1)[1]


# --------------------------------------------------------------------------
# no node needed

@test
def help_and_version():
    rc, out, err = cli("--help", url="", token=None)
    assert rc == 0 and "usage: ctxsync" in out, (rc, out, err)
    for cmd in ("get", "put", "history", "diff", "actors", "grant", "status"):
        assert cmd in out, cmd
    rc, out, _ = cli("--version", url="", token=None)
    assert rc == 0 and out.strip() == "ctxsync 0.1.0", out
    # global flags may come after the command
    rc, out, _ = cli("status", "--version", url="", token=None)
    assert rc == 0 and out.startswith("ctxsync "), out
    rc, out, _ = cli("get", "--help", url="", token=None)
    assert rc == 0 and "usage:" in out, out


@test
def usage_errors_exit_2():
    for args in (["--bogus"], ["frob"], [], ["get"], ["get", "ctx://a/b/c",
                 "--version", "x"], ["put", "ctx://a/b/c"],
                 ["put", "ctx://a/b/c", "--content", "1", "--file", "f"],
                 ["diff", "ctx://a/b/c", "1"],
                 ["diff", "ctx://a/b/c", "1", "2", "--format", "words"],
                 ["grant", "ctx://a/**", "read"],
                 ["grant", "--actor", "x", "ctx://a/**", "fly"],
                 ["actors", "create", "x", "--type", "robot"],
                 ["actors", "frob"], ["status", "-x"]):
        rc, out, err = cli(*args, url="http://127.0.0.1:1", token=None)
        assert rc == 2, "%r: rc=%d err=%s" % (args, rc, err)
        assert "usage: ctxsync" in err, (args, err)
        assert out == "", (args, out)


@test
def unreachable_node_exits_1():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = "http://127.0.0.1:%d" % port
    rc, out, err = cli("status", url=url, token="x")
    assert rc == 1, (rc, out, err)
    assert "cannot reach node at " + url in err, err
    rc, _, err = cli("get", "ctx://acme/x/y", url=url, token="x")
    assert rc == 1 and "cannot reach node at" in err, err


# --------------------------------------------------------------------------
# against a node

@test
def status_shows_node():
    out = ok("status")
    assert header_field(out, "node_id") == "n1", out
    assert header_field(out, "region") == "eu", out
    assert "feed head" in out, out
    j = ok_json("status")
    assert j["node_id"] == "n1" and j["region"] == "eu", j
    assert isinstance(j["head"], int), j
    # flags after the command and --url on the command line
    j2 = json.loads(ok("status", "--json", "--url", N().url, url=""))
    assert j2["node_id"] == "n1", j2


@test
def put_get_text_and_versions():
    u = uri()
    out = ok("put", u, "--content", "hello\nworld", "--summary", "first")
    assert out.strip().startswith(u + " version 1 (version_id "), out
    out = ok("get", u)
    assert header_field(out, "uri") == u, out
    assert header_field(out, "version") == "1", out
    assert header_field(out, "author") == N().admin_id, out
    assert header_field(out, "content_type").startswith("text/plain"), out
    assert header_field(out, "forked") == "no", out
    assert body_of(out) == "hello\nworld\n", repr(out)

    # update without --base: the POST answers 409 conflict, the CLI PUTs
    out = ok("put", u, "--content", "hello\nthere\nworld\n", "--summary",
             "second")
    assert out.startswith(u + " version 2 "), out
    # update with the right --base
    out = ok("put", u, "--content", "v3", "--base", "2")
    assert out.startswith(u + " version 3 "), out
    # stale --base: the server's version_conflict, exit 1
    _, err = fails(1, "put", u, "--content", "v4", "--base", "2")
    assert err.startswith("error: "), err
    assert "(version_conflict, HTTP 409)" in err, err

    out = ok("get", u, "--version", "1")
    assert header_field(out, "version") == "1", out
    assert body_of(out) == "hello\nworld\n", repr(out)
    j = ok_json("get", u)
    assert j["version"] == 3 and j["content"] == "v3", j
    vid1 = ok_json("get", u, "--version", "1")["version_id"]
    j = ok_json("get", u, "--version-id", vid1)
    assert j["version"] == 1 and j["content"] == "hello\nworld", j
    # a global flag after the command's options
    j = json.loads(ok("get", u, "--version", "2", "--json"))
    assert j["version"] == 2 and j["summary"] == "second", j


@test
def put_json_content_and_files():
    d = tempfile.mkdtemp(prefix="cs-cli-files-")
    u = uri("cfg")
    # --content that parses as JSON is sent as that JSON value
    ok("put", u, "--content", '{"b": [1, 2], "a": "x"}', "--name", "settings")
    j = ok_json("get", u)
    assert j["content"] == {"a": "x", "b": [1, 2]}, j
    assert j["content_type"].startswith("application/json"), j
    assert j["name"] == "settings", j
    out = ok("get", u)
    assert json.loads(body_of(out)) == {"a": "x", "b": [1, 2]}, out
    # --file x.json: JSON value
    p = os.path.join(d, "new.json")
    with open(p, "w") as f:
        json.dump({"a": "y", "b": [1, 2, 3]}, f)
    out = ok("put", u, "--file", p, "--summary", "from file")
    assert " version 2 " in out, out
    assert ok_json("get", u)["content"] == {"a": "y", "b": [1, 2, 3]}
    # a .txt file is text, even when it looks like JSON
    u2 = uri()
    p2 = os.path.join(d, "note.txt")
    with open(p2, "w", encoding="utf-8") as f:
        f.write('{"not": "parsed"}\nGrüße\n')
    ok("put", u2, "--file", p2)
    assert ok_json("get", u2)["content"] == '{"not": "parsed"}\nGrüße\n'
    # --file - reads stdin
    out = ok("put", u2, "--file", "-", stdin="from stdin\n".encode())
    assert " version 2 " in out, out
    assert ok_json("get", u2)["content"] == "from stdin\n"
    # a .json file that does not parse is sent as text
    p3 = os.path.join(d, "broken.json")
    with open(p3, "w") as f:
        f.write("{nope")
    ok("put", u2, "--file", p3)
    assert ok_json("get", u2)["content"] == "{nope"
    # invalid UTF-8 is refused locally
    p4 = os.path.join(d, "bin.txt")
    with open(p4, "wb") as f:
        f.write(b"ok \xff\xfe bad")
    _, err = fails(1, "put", u2, "--file", p4)
    assert "UTF-8" in err, err
    # a quoted JSON string stays a string
    u3 = uri()
    ok("put", u3, "--content", '"42"')
    assert ok_json("get", u3)["content"] == "42"
    ok("put", u3, "--content", "42")
    assert ok_json("get", u3)["content"] == 42
    # --json output of put
    j = ok_json("put", u3, "--content", "[1]")
    assert j["version"] == 3 and j["uri"] == u3, j


@test
def get_errors():
    u = uri()
    _, err = fails(1, "get", u)
    assert "(not_found, HTTP 404)" in err, err
    _, err = fails(1, "get", "not-a-uri")
    assert "(invalid_uri, HTTP 400)" in err, err
    _, err = fails(1, "get", u, token=None)
    assert "(unauthenticated, HTTP 401)" in err, err
    _, err = fails(1, "get", u, token="not-a-real-token")
    assert "HTTP 401" in err, err


@test
def history_table_and_json():
    u = uri()
    ok("put", u, "--content", "one", "--summary", "s1")
    ok("put", u, "--content", "two", "--summary", "s2 with spaces")
    ok("put", u, "--content", "three")
    out = ok("history", u)
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == ["VERSION", "VERSION_ID", "AUTHOR", "CREATED",
                                "SUMMARY", "DELETED"], lines[0]
    assert len(lines) == 4, out
    assert [l.split()[0] for l in lines[1:]] == ["3", "2", "1"], out
    assert "s2 with spaces" in lines[2] and "admin" in lines[2], out
    j = ok_json("history", u)
    assert j["uri"] == u and [v["version"] for v in j["versions"]] == [3, 2, 1]
    short = lines[1].split()[1]
    assert j["versions"][0]["version_id"].startswith(short), (short, j)
    assert len(short) <= 14, short


@test
def diff_three_formats():
    u = uri()
    ok("put", u, "--content", "a\nb\nc\n")
    ok("put", u, "--content", "a\nB\nc\nd\n")
    out = ok("diff", u, "1", "2")
    lines = out.rstrip("\n").split("\n")
    assert " a" in lines and "-b" in lines and "+B" in lines, out
    assert "+d" in lines and " c" in lines, out
    assert "2 added, 1 removed, 2 unchanged" in lines[-1], out
    j = ok_json("diff", u, "1", "2")
    assert j["stats"] == {"added": 2, "removed": 1, "unchanged": 2}, j
    out = ok("diff", u, "1", "2", "--format", "unified")
    assert "@@" in out and "-b\n" in out and "+B\n" in out, out
    assert "+d\n" in out, out

    uj = uri("cfg")
    ok("put", uj, "--content", '{"a": 1, "keep": true}')
    ok("put", uj, "--content", '{"a": 2, "keep": true, "n": [1]}')
    out = ok("diff", uj, "1", "2", "--format", "json-patch")
    patch = json.loads(out)
    assert isinstance(patch, list) and patch, patch
    ops = {(p["op"], p["path"]) for p in patch}
    assert ("replace", "/a") in ops and ("add", "/n") in ops, patch
    j = ok_json("diff", uj, "1", "2", "--format", "json-patch")
    assert j["patch"] == patch, j
    # json-patch on text content: the server's not_json
    _, err = fails(1, "diff", u, "1", "2", "--format", "json-patch")
    assert "(not_json, HTTP 400)" in err, err


@test
def actors_tokens_and_grants():
    bob = unique("bob")
    out = ok("actors", "create", bob, "--type", "human", "--name", "Bob B")
    assert header_field(out, "actor_id") == bob, out
    assert header_field(out, "name") == "Bob B", out
    summ = unique("sum")
    j = ok_json("actors", "create", summ, "--type", "agent", "--class",
                "summarizer")
    assert j["actor_id"] == summ and j["agent_class"] == "summarizer", j
    assert j["actor_type"] == "agent", j
    _, err = fails(1, "actors", "create", bob, "--type", "human")
    assert "HTTP 409" in err, err

    out = ok("actors")
    assert out.split("\n")[0].split() == ["ACTOR_ID", "TYPE", "CLASS", "NAME",
                                          "CREATED"], out
    rows = {l.split()[0]: l for l in out.strip().split("\n")[1:]}
    assert bob in rows and summ in rows and N().admin_id in rows, out
    assert "summarizer" in rows[summ] and "Bob B" in rows[bob], out
    ids = [a["actor_id"] for a in ok_json("actors", "list")["actors"]]
    assert bob in ids and summ in ids, ids
    assert header_field(ok("actors", "show", bob), "actor_type") == "human"

    # a token for bob; bob can do nothing before a grant
    rc, tok, err = cli("actors", "token", bob)
    assert rc == 0, err
    tok = tok.strip()
    assert tok and "\n" not in tok, tok
    u = "ctx://acme/%s/doc" % unique("d")
    ok("put", u, "--content", "secret")
    _, err = fails(1, "get", u, token=tok)
    assert "(forbidden, HTTP 403)" in err, err

    out = ok("grant", "--actor", bob, u.rsplit("/", 1)[0] + "/**", "read")
    assert out.startswith("grant "), out
    g = ok_json("grant", "--class", "summarizer", "ctx://acme/**",
                "read,suggest")
    assert g["agent_class"] == "summarizer", g
    assert sorted(g["operations"]) == ["read", "suggest"], g
    assert g.get("id") is not None, g
    assert body_of(ok("get", u, token=tok)) == "secret\n"
    _, err = fails(1, "put", u, "--content", "x", token=tok)
    assert "(forbidden, HTTP 403)" in err, err
    # the --token flag (instead of CTXSYNC_TOKEN) wins
    assert body_of(ok("get", u, "--token", tok, token=None)) == "secret\n"
    # bob is no admin
    _, err = fails(1, "grant", "--actor", bob, "ctx://acme/**", "write",
                   token=tok)
    assert "HTTP 403" in err, err


@test
def header_auth_with_actor_flag():
    node = NH()
    admin = node.admin_id
    u = uri()
    out = ok("--actor", admin, "put", u, "--content", "via header",
             url=node.url, token=None)
    assert out.startswith(u + " version 1 "), out
    j = ok_json("get", u, "--actor", admin, url=node.url, token=None)
    assert j["content"] == "via header" and j["author_id"] == admin, j
    # grant's own --actor names the grantee; the global one comes first
    carol = unique("carol")
    ok("--actor", admin, "actors", "create", carol, "--type", "human",
       url=node.url, token=None)
    out = ok("--actor", admin, "grant", "--actor", carol, u, "read",
             url=node.url, token=None)
    assert ("actor %s may read" % carol) in out, out
    assert ok_json("--actor", carol, "get", u, url=node.url,
                   token=None)["content"] == "via header"
    _, err = fails(1, "--actor", carol, "put", u, "--content", "x",
                   url=node.url, token=None)
    assert "(forbidden, HTTP 403)" in err, err
    _, err = fails(1, "get", u, url=node.url, token=None)
    assert "(unauthenticated, HTTP 401)" in err, err
    # --token and --actor together are a usage error
    fails(2, "--actor", admin, "--token", "t", "status", url=node.url,
          token=None)


if __name__ == "__main__":
    run_tests()
