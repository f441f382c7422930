"""Change feed, subscriptions and SSE streams: resume without gap or
duplicate under concurrent writes, delivery-time filtering, keepalive and
overflow (node-api.md §3 "Change feed and subscriptions")."""

import datetime
import random
import threading
import time

from harness import (Node, Shared, SSEClient, all_changes, expect_error, expect_ok,
                     grant, new_actor, run_tests, test, unique, wait_until)

N = Shared(node_id="feed1", region="eu")


def mk(n, u, content="x", token=None, **kw):
    body = {"uri": u, "content": content}
    body.update(kw)
    args = {} if token is None else {"token": token}
    return expect_ok(n.req("POST", "/artifacts", body, **args), 201)


def put(n, u, content, **kw):
    body = {"content": content}
    body.update(kw)
    return expect_ok(n.req("PUT", "/artifacts", body, query={"uri": u}))


def stream(n, pattern, token=None, since=None, last_id=None, path=None, **kw):
    q = {"pattern": pattern} if pattern is not None else {}
    if since is not None:
        q["since"] = since
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else None
    args = {} if token is None else {"token": token}
    c = SSEClient(n, path=path or "/subscriptions/stream", query=q, headers=headers,
                  **dict(args, **kw))
    return c


def live(c):
    assert c.status == 200, (c.status, c.lines[:5])
    assert c.headers.get("content-type", "").startswith("text/event-stream"), c.headers
    assert c.wait_retry(5), "no retry line: %r" % c.lines[:5]
    return c


@test
def changes_paging_and_event_fields():
    n = N()
    org = unique("cf")
    h0 = n.head()
    u = "ctx://%s/docs/a" % org
    a1 = mk(n, u, "one", summary="s1")
    a2 = put(n, u, "two", summary="s2")
    t = expect_ok(n.req("DELETE", "/artifacts", query={"uri": u}))
    a4 = mk(n, "ctx://%s/docs/b" % org, {"k": 1})
    a5 = mk(n, "ctx://%s/other/c" % org, "c")
    b = expect_ok(n.req("GET", "/changes", query={"since": h0}))
    ev = b["events"]
    assert len(ev) == 5, ev
    seqs = [e["seq"] for e in ev]
    assert seqs == sorted(set(seqs)) and seqs[0] > h0, seqs
    assert b["head"] == seqs[-1] and b["has_more"] is False, b
    assert b["next_since"] == seqs[-1], b
    assert [e["event_type"] for e in ev] == ["artifact.created", "artifact.updated",
                                            "artifact.deleted", "artifact.created",
                                            "artifact.created"], ev
    assert [e["version"] for e in ev] == [1, 2, 3, 1, 1], ev
    assert ev[0]["previous_version"] in (None, 0), ev[0]
    assert ev[1]["previous_version"] == 1 and ev[2]["previous_version"] == 2, ev
    for e, a in zip(ev, (a1, a2, t, a4, a5)):
        assert e["version_id"] == a["version_id"], (e, a)
        assert e["parent_id"] == a["parent_id"], (e, a)
        assert e["artifact_uri"] == a["uri"] and e["org"] == org, e
        assert e["domain"] == a["uri"].split("/")[3], e
        assert e["author_id"] == n.admin_id and e["actor_type"] == "human", e
        assert e.get("agent_class") is None, e
        assert e["created_at"], e
        o = e["origin"]
        assert o["node_id"] == "feed1" and o["region"] == "eu", o
        assert o["seq"] == e["seq"], (o, e["seq"])
        assert e["event_id"] == "%s:%s" % (o["node_id"], o["seq"]), e
    assert ev[0]["summary"] == "s1" and ev[1]["summary"] == "s2", ev
    assert ev[1]["content_hash"] == a2["content_hash"] and ev[1]["size"] == 3, ev[1]
    assert ev[3]["content_type"] == "application/json", ev[3]
    # limit and paging
    p1 = expect_ok(n.req("GET", "/changes", query={"since": h0, "limit": 2}))
    assert [e["seq"] for e in p1["events"]] == seqs[:2], p1
    assert p1["has_more"] is True and p1["next_since"] == seqs[1], p1
    assert p1["head"] == seqs[-1], p1
    p2 = expect_ok(n.req("GET", "/changes", query={"since": p1["next_since"], "limit": 2}))
    assert [e["seq"] for e in p2["events"]] == seqs[2:4], p2
    p3 = expect_ok(n.req("GET", "/changes", query={"since": p2["next_since"], "limit": 2}))
    assert [e["seq"] for e in p3["events"]] == seqs[4:], p3
    assert p3["has_more"] is False, p3
    p4 = expect_ok(n.req("GET", "/changes", query={"since": seqs[-1]}))
    assert p4["events"] == [] and p4["has_more"] is False, p4
    # since=0 starts at the beginning
    p0 = expect_ok(n.req("GET", "/changes", query={"since": 0, "limit": 1}))
    assert p0["events"][0]["seq"] >= 1 and p0["has_more"] is True, p0
    expect_error(n.req("GET", "/changes", query={"since": "yesterday-ish"}), 400,
                 "bad_request")


def rfc3339_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


@test
def changes_since_time():
    n = N()
    org = unique("tm")
    mk(n, "ctx://%s/d/before" % org)
    time.sleep(0.3)
    t = rfc3339_now()
    time.sleep(0.3)
    after = mk(n, "ctx://%s/d/after" % org)
    b = expect_ok(n.req("GET", "/changes", query={"since": t}))
    uris = [e["artifact_uri"] for e in b["events"]]
    assert uris == [after["uri"]], uris
    # second precision with an offset: same instant
    later = (datetime.datetime.now(datetime.timezone.utc) +
             datetime.timedelta(hours=1)).astimezone(
        datetime.timezone(datetime.timedelta(hours=2))).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    b = expect_ok(n.req("GET", "/changes", query={"since": later}))
    assert b["events"] == [], b


@test
def domain_changes_and_actor_filter():
    n = N()
    org, org2 = unique("dm"), unique("dn")
    h0 = n.head()
    uid, tok = new_actor(n, "dm", grants=[("ctx://%s/**" % org, ["read", "write"])])
    mk(n, "ctx://%s/alpha/1" % org)
    mk(n, "ctx://%s/beta/1" % org)
    mk(n, "ctx://%s/alpha/2" % org, token=tok)
    mk(n, "ctx://%s/alpha/1" % org2)
    b = expect_ok(n.req("GET", "/domains/alpha/changes", query={"since": h0, "org": org}))
    assert [e["artifact_uri"] for e in b["events"]] == [
        "ctx://%s/alpha/1" % org, "ctx://%s/alpha/2" % org], b
    assert b["head"] >= b["events"][-1]["seq"], b
    b = expect_ok(n.req("GET", "/domains/alpha/changes", query={"since": h0}))
    assert len(b["events"]) == 3, b
    b = expect_ok(n.req("GET", "/changes", query={"since": h0, "actor": uid}))
    assert [e["artifact_uri"] for e in b["events"]] == ["ctx://%s/alpha/2" % org], b
    assert b["events"][0]["author_id"] == uid


@test
def subscriptions_crud():
    n = N()
    org = unique("sc")
    mk(n, "ctx://%s/d/x" % org)
    head = n.head()
    s = expect_ok(n.req("POST", "/subscriptions", {"pattern": "ctx://%s/**" % org}), 201)
    assert s["id"] and s["actor_id"] == n.admin_id and s["pattern"] == "ctx://%s/**" % org, s
    assert s["cursor"] == head and s["created_at"], (s, head)
    s2 = expect_ok(n.req("POST", "/subscriptions", {"pattern": "**", "since": 3}), 201)
    assert s2["cursor"] == 3, s2
    lst = expect_ok(n.req("GET", "/subscriptions"))["subscriptions"]
    ids = [x["id"] for x in lst]
    assert s["id"] in ids and s2["id"] in ids, lst
    uid, tok = new_actor(n, "sc")
    s3 = expect_ok(n.req("POST", "/subscriptions", {"pattern": "**"}, token=tok), 201)
    assert s3["actor_id"] == uid
    mine = expect_ok(n.req("GET", "/subscriptions", token=tok))["subscriptions"]
    assert [x["id"] for x in mine] == [s3["id"]], mine
    assert s3["id"] not in [x["id"] for x in
                            expect_ok(n.req("GET", "/subscriptions"))["subscriptions"]]
    expect_error(n.req("DELETE", "/subscriptions/%s" % s["id"], token=tok), 403, "forbidden")
    st, h, _ = n.req("DELETE", "/subscriptions/%s" % s["id"])
    assert st == 204 and h.get("x-request-id"), st
    expect_error(n.req("DELETE", "/subscriptions/%s" % s["id"]), 404, "not_found")
    expect_error(n.req("DELETE", "/subscriptions/%s" % "999999999"), 404, "not_found")
    lst = expect_ok(n.req("GET", "/subscriptions"))["subscriptions"]
    assert s["id"] not in [x["id"] for x in lst], lst
    for bad in ({"pattern": 5}, {}, {"pattern": "**", "since": "x-y"}):
        expect_error(n.req("POST", "/subscriptions", bad), 400)
    st, _, b = n.req("DELETE", "/subscriptions/%s" % s3["id"], token=tok)
    assert st == 204, (st, b)


@test
def sse_stream_frames_and_live_delivery():
    n = N()
    org = unique("ss")
    mk(n, "ctx://%s/d/old" % org)
    with stream(n, "ctx://%s/**" % org) as c:
        live(c)
        assert c.lines[0] == "retry: 2000", c.lines[:3]
        assert c.retries[0] == "2000"
        h0 = n.head()
        made = [mk(n, "ctx://%s/d/n%d" % (org, i)) for i in range(3)]
        assert c.wait_for(3, 10), c.events
        evs = [e for e in c.events if e.event == "change"]
        assert len(evs) == 3, evs  # the old one is not replayed without since
        feed = expect_ok(n.req("GET", "/changes", query={"since": h0}))["events"]
        for e, f, a in zip(evs, feed, made):
            assert e.event == "change" and e.id == str(f["seq"]), (e, f)
            assert e.json["seq"] == f["seq"] and e.json["event_id"] == f["event_id"], e
            assert e.json["artifact_uri"] == a["uri"]
            assert e.json["version_id"] == a["version_id"]
        # raw framing: id, event, data lines in one block
        i = c.lines.index("id: %s" % evs[0].id)
        j = i
        while j > 0 and c.lines[j - 1] != "":
            j -= 1
        k = c.lines.index("", i)
        block = sorted(c.lines[j:k])
        assert len(block) == 3, block
        assert block[0].startswith("data: {") and block[1] == "event: change", block
    c2 = SSEClient(n, token=None, path="/subscriptions/stream", query={"pattern": "**"})
    try:
        assert c2.closed.wait(5) or c2.status == 401
        assert c2.status == 401, c2.status
    finally:
        c2.close()


@test
def sse_pattern_and_read_filtering_at_delivery():
    n = N()
    org = unique("pf")
    uid, tok = new_actor(n, "pf")
    g = grant(n, actor_id=uid, pattern="ctx://%s/pub/**" % org, ops=["read"])
    with stream(n, "ctx://%s/pub/a/**" % org) as ca, \
            stream(n, "ctx://%s/**" % org, token=tok) as cb:
        live(ca)
        live(cb)
        mk(n, "ctx://%s/pub/a/1" % org)
        mk(n, "ctx://%s/pub/b/1" % org)
        mk(n, "ctx://%s/priv/a/1" % org)
        mk(n, "ctx://%s/pub/a/2" % org)
        assert ca.wait_for(2, 10), ca.events
        assert cb.wait_for(3, 10), cb.events
        time.sleep(0.3)
        assert [e["artifact_uri"] for e in ca.changes()] == [
            "ctx://%s/pub/a/1" % org, "ctx://%s/pub/a/2" % org], ca.changes()
        assert [e["artifact_uri"] for e in cb.changes()] == [
            "ctx://%s/pub/a/1" % org, "ctx://%s/pub/b/1" % org,
            "ctx://%s/pub/a/2" % org], cb.changes()
        # revoke while connected: checked at delivery time
        st, _, _ = n.req("DELETE", "/permissions/%s" % g["id"])
        assert st == 204
        mk(n, "ctx://%s/pub/c/after-revoke" % org)
        grant(n, actor_id=uid, pattern="ctx://%s/late/**" % org, ops=["read"])
        mk(n, "ctx://%s/late/x" % org)
        assert cb.wait_for(4, 10), cb.changes()
        got = [e["artifact_uri"] for e in cb.changes()]
        assert got[3:] == ["ctx://%s/late/x" % org], got


def _write_n(n, org, count, domain="d"):
    return [mk(n, "ctx://%s/%s/w%03d" % (org, domain, i)) for i in range(count)]


@test
def sse_resume_last_event_id_and_since():
    n = N()
    org = unique("rs")
    pat = "ctx://%s/d/**" % org
    h0 = n.head()
    _write_n(n, org, 5)
    mk(n, "ctx://%s/other/zz" % org)
    feed = [e["seq"] for e in all_changes(n, since=h0)
            if e["artifact_uri"].startswith("ctx://%s/d/" % org)]
    assert len(feed) == 5
    # since=
    with stream(n, pat, since=feed[1]) as c:
        live(c)
        assert c.wait_for(3, 10), c.events
        extra = mk(n, "ctx://%s/d/live1" % org)
        assert c.wait_for(4, 10), c.events
        assert c.seqs()[:3] == feed[2:], (c.seqs(), feed)
        assert c.changes()[3]["version_id"] == extra["version_id"]
        assert len(c.seqs()) == 4
        live_seq = c.seqs()[3]
    # Last-Event-ID
    with stream(n, pat, last_id=feed[2]) as c:
        live(c)
        assert c.wait_for(3, 10), c.events
        time.sleep(0.3)
        assert c.seqs() == feed[3:] + [live_seq], c.seqs()
    # header wins over since
    with stream(n, pat, since=0, last_id=feed[3]) as c:
        live(c)
        assert c.wait_for(2, 10), c.events
        time.sleep(0.3)
        assert c.seqs() == [feed[4], live_seq], c.seqs()
    # resume from the very end: nothing replayed, then live
    with stream(n, pat, last_id=live_seq) as c:
        live(c)
        time.sleep(0.3)
        assert c.seqs() == [], c.seqs()
        mk(n, "ctx://%s/d/live2" % org)
        assert c.wait_for(1, 10)
        assert c.seqs()[0] > live_seq


@test
def sse_resume_under_concurrent_writes():
    """A writer keeps writing while the client reconnects at random moments,
    each time resuming from the last id it received: the concatenation of
    all received seqs must be exactly the matching feed after S."""
    n = N()
    org = unique("cw")
    pat = "ctx://%s/hot/**" % org
    rnd = random.Random(1234)
    S = n.head()
    for i in range(10):  # something to replay on the first connect
        mk(n, "ctx://%s/hot/pre%d" % (org, i))
    stop = threading.Event()
    errors = []
    acked = []

    def writer(k, domain):
        u = "ctx://%s/%s/w%d" % (org, domain, k)
        st, _, b = n.req("POST", "/artifacts", {"uri": u, "content": "0"})
        if st != 201:
            errors.append((st, b))
            return
        i = 0
        while not stop.is_set():
            i += 1
            st, _, b = n.req("PUT", "/artifacts", {"content": str(i)}, query={"uri": u})
            if st != 200:
                errors.append((st, b))
                return
            acked.append(b["version_id"])

    threads = [threading.Thread(target=writer, args=(k, "hot")) for k in range(3)]
    threads.append(threading.Thread(target=writer, args=(9, "cold")))
    for t in threads:
        t.start()
    received = []
    last = S
    connects = 0
    t_end = time.monotonic() + 4.0
    try:
        while time.monotonic() < t_end:
            mode = connects % 3
            if mode == 0:
                c = stream(n, pat, since=last)
            elif mode == 1:
                c = stream(n, pat, last_id=last)
            else:
                c = stream(n, pat, since=0, last_id=last)  # header must win
            connects += 1
            try:
                live(c)
                time.sleep(rnd.uniform(0.1, 0.6))
            finally:
                c.close()
            seqs = c.seqs()
            assert all(e.json and e.json["seq"] == e.seq for e in c.events
                       if e.event == "change")
            assert seqs == sorted(set(seqs)), "connection %d not increasing: %r" % (
                connects, seqs[:20])
            if seqs:
                assert seqs[0] > last, ("replayed at or before resume point", last, seqs[:5])
                last = seqs[-1]
            received.extend(seqs)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    expected = [e["seq"] for e in all_changes(n, since=S)
                if e["artifact_uri"].startswith("ctx://%s/hot/" % org)]
    assert len(expected) > 50, "writers too slow: %d events" % len(expected)
    # final catch-up connection
    with stream(n, pat, last_id=last) as c:
        live(c)
        want_more = len([s for s in expected if s > last])
        ok = c.wait_for(want_more, 20)
        time.sleep(0.2)
        received.extend(c.seqs())
        assert ok, "catch-up got %d of %d" % (len(c.seqs()), want_more)
    assert connects >= 5, connects
    print("  (%d connections, %d matching events, %d writes acked)"
          % (connects + 1, len(expected), len(acked)))
    if received != expected:
        dup = sorted({s for s in received if received.count(s) > 1})[:10]
        missing = sorted(set(expected) - set(received))[:10]
        extra = sorted(set(received) - set(expected))[:10]
        raise AssertionError("resume mismatch: %d received vs %d expected; "
                             "duplicates %r missing %r extra %r"
                             % (len(received), len(expected), dup, missing, extra))


@test
def persistent_subscription_feed():
    n = N()
    org = unique("ps")
    mk(n, "ctx://%s/d/before" % org)
    s = expect_ok(n.req("POST", "/subscriptions", {"pattern": "ctx://%s/**" % org}), 201)
    a1 = mk(n, "ctx://%s/d/1" % org)
    a2 = mk(n, "ctx://%s/d/2" % org)
    mk(n, "ctx://%s-no/d/3" % org)  # other org: not matching
    path = "/subscriptions/%s/feed" % s["id"]
    with stream(n, None, path=path) as c:
        live(c)
        assert c.wait_for(2, 10), c.events
        time.sleep(0.2)
        assert [e["version_id"] for e in c.changes()] == [a1["version_id"],
                                                           a2["version_id"]], c.changes()
        last = c.seqs()[-1]

        def cursor():
            for x in expect_ok(n.req("GET", "/subscriptions"))["subscriptions"]:
                if x["id"] == s["id"]:
                    return x["cursor"] == last
        wait_until(cursor, 5, msg="subscription cursor did not advance to %d" % last)
    a3 = mk(n, "ctx://%s/d/3" % org)
    a4 = mk(n, "ctx://%s/d/4" % org)
    with stream(n, None, path=path) as c:
        live(c)
        assert c.wait_for(2, 10), c.events
        time.sleep(0.3)
        assert [e["version_id"] for e in c.changes()] == [a3["version_id"],
                                                           a4["version_id"]], c.changes()
        assert c.seqs()[0] > last
        a5 = mk(n, "ctx://%s/d/5" % org)
        assert c.wait_for(3, 10)
        assert c.changes()[2]["version_id"] == a5["version_id"]
    uid, tok = new_actor(n, "ps")
    c = stream(n, None, path=path, token=tok)
    try:
        assert c.status == 403, c.status
    finally:
        c.close()
    c = stream(n, None, path="/subscriptions/999999999/feed")
    try:
        assert c.status == 404, c.status
    finally:
        c.close()


@test
def sse_keepalive_comment():
    with Node(node_id="ka1", extra_args=["--keepalive", "1"]) as n:
        with stream(n, "**") as c:
            live(c)
            assert c.wait_comment("keepalive", 4), (c.lines, c.comments)
            assert ": keepalive" in c.lines, c.lines
            assert not c.closed.is_set()
            assert c.events == [], c.events


@test
def sse_overflow_disconnects_slow_client():
    total = 5000
    with Node(node_id="ov1", extra_args=["--sse-max-lag", "50"]) as n:
        org = unique("ov")
        pat = "ctx://%s/**" % org
        slow = SSEClient(n, path="/subscriptions/stream", query={"pattern": pat},
                         rcvbuf=4096, paused=True)
        fast = live(stream(n, pat))
        time.sleep(0.5)  # let the node register the paused client too
        summary = "s" * 2000  # ~2 KB per event: more than socket buffers hold
        errors = []

        def writer(k):
            for i in range(k, total, 4):
                st, _, b = n.req("POST", "/artifacts",
                                 {"uri": "ctx://%s/d/x%05d" % (org, i), "content": "c",
                                  "summary": summary})
                if st != 201:
                    errors.append((st, b))
                    return
        ts = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not errors, errors[:3]
        wt = time.monotonic() - t0
        try:
            ok = fast.wait_for(total, 30)
            assert ok, "normal client got %d of %d" % (fast.count(), total)
            assert len(set(fast.seqs())) == total
            assert not fast.closed.is_set(), "normal client was disconnected"
            slow.resume()
            assert slow.closed.wait(20), "slow client still connected after %d events" % total
            got = slow.count()
            overflow = [e for e in slow.events if e.event == "overflow"]
            assert got < total, "slow client got all %d events, no overflow" % got
            if overflow:
                assert slow.events[-1].event == "overflow", slow.events[-3:]
            # it resumes from its last id and gets the rest
            last = slow.last_id
            with stream(n, pat, last_id=last if last else 0) as c:
                live(c)
                rest = total - got
                assert c.wait_for(rest, 30), "resume got %d of %d" % (c.count(), rest)
                assert sorted(set(slow.seqs() + c.seqs())) == sorted(fast.seqs())
            # /changes clamps limit to 1000
            b = expect_ok(n.req("GET", "/changes", query={"since": 0, "limit": 5000}))
            assert len(b["events"]) == 1000 and b["has_more"] is True, len(b["events"])
        finally:
            slow.close()
            fast.close()
        print("  (overflow: %d writes in %.1fs, slow client got %d, overflow frame: %s)"
              % (total, wt, got, bool(overflow)))


if __name__ == "__main__":
    run_tests()
