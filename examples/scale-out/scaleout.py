#!/usr/bin/env python3
"""Helpers of examples/scale-out/run.sh (Python 3 standard library only).

  scaleout.py watch URL TOKEN OUT [--since N | --last-event-id N]
      An SSE client of GET /subscriptions/stream?pattern=ctx://acme/**.
      Appends to OUT, flushed line by line:
          connected <unix time>              (the `retry:` line arrived)
          event <seq> <recv time> <created_at as unix time> <uri>
          end <reason> <unix time>           (the stream ended)
      Runs until the stream ends or it is killed (the script kills it).

  scaleout.py page URL TOKEN OUT --until N [--limit L] [--timeout S]
      Pages GET /changes?since= (next_since each time) while the writes
      happen, until it has seen seq N; writes {"seqs": [...], "pages": P}
      to OUT. Through the balancer each page may come from another process.

  scaleout.py check-watch FIRST LAST FILE...
      The events of the FILEs (one stream, or a stream and its resumption)
      are exactly FIRST..LAST, in order, each once. Prints one line with
      the count and the delays (arrival - created_at); exit 1 otherwise.

  scaleout.py check-page FILE N
      The pager saw seqs 1..N strictly increasing with no gap; exit 1
      otherwise.
"""
import datetime
import http.client
import json
import sys
import time
import urllib.parse


def parse_time(s):
    # 2026-11-25T19:40:47.866796Z
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def hostport(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


def watch(argv):
    url, token, out = argv[0], argv[1], argv[2]
    since, last_id = "0", None
    rest = argv[3:]
    while rest:
        if rest[0] == "--since":
            since = rest[1]
        elif rest[0] == "--last-event-id":
            last_id = rest[1]
        else:
            sys.exit("watch: unknown flag %s" % rest[0])
        rest = rest[2:]
    host, port = hostport(url)
    f = open(out, "a", buffering=1)
    headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
    path = "/subscriptions/stream?pattern=" + urllib.parse.quote("ctx://acme/**", safe="")
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    else:
        path += "&since=" + since
    reason = "eof"
    try:
        conn = http.client.HTTPConnection(host, port, timeout=300)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            reason = "http_%d" % resp.status
            raise EOFError
        ev_id, data = None, []
        while True:
            line = resp.readline()
            if not line:
                break
            now = time.time()
            line = line.decode("utf-8").rstrip("\r\n")
            if line.startswith("retry:"):
                f.write("connected %.6f\n" % now)
            elif line.startswith("id:"):
                ev_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "":
                if ev_id is not None and data:
                    ev = json.loads("\n".join(data))
                    f.write("event %d %.6f %.6f %s\n" % (
                        ev["seq"], now, parse_time(ev["created_at"]), ev["artifact_uri"]))
                ev_id, data = None, []
    except EOFError:
        pass
    except Exception as e:  # reset by a killed node, refused, ...
        reason = type(e).__name__
    f.write("end %s %.6f\n" % (reason, time.time()))


def page(argv):
    url, token, out = argv[0], argv[1], argv[2]
    until, limit, timeout = None, 7, 60.0
    rest = argv[3:]
    while rest:
        if rest[0] == "--until":
            until = int(rest[1])
        elif rest[0] == "--limit":
            limit = int(rest[1])
        elif rest[0] == "--timeout":
            timeout = float(rest[1])
        else:
            sys.exit("page: unknown flag %s" % rest[0])
        rest = rest[2:]
    host, port = hostport(url)
    seqs, pages, since = [], 0, 0
    deadline = time.time() + timeout
    conn = None
    while time.time() < deadline and (not seqs or seqs[-1] < until):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/changes?since=%d&limit=%d" % (since, limit),
                         headers={"Authorization": "Bearer " + token})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError("GET /changes: %d %s" % (resp.status, body[:200]))
            d = json.loads(body)
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.05)
            continue
        pages += 1
        seqs.extend(e["seq"] for e in d["events"])
        since = d["next_since"]
        if not d["events"]:
            time.sleep(0.02)
    with open(out, "w") as f:
        json.dump({"seqs": seqs, "pages": pages}, f)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def check_watch(argv):
    first, last, files = int(argv[0]), int(argv[1]), argv[2:]
    seqs, delays = [], []
    for fn in files:
        for line in open(fn):
            w = line.split()
            if w and w[0] == "event":
                seqs.append(int(w[1]))
                delays.append((float(w[2]) - float(w[3])) * 1000.0)
    want = list(range(first, last + 1))
    ok = seqs == want
    if delays:
        stats = "delay ms: p50 %.1f  p95 %.1f  max %.1f" % (
            pct(delays, 50), pct(delays, 95), max(delays))
    else:
        stats = "no events"
    if ok:
        print("%d events, seq %d..%d in order, none missing or twice; %s"
              % (len(seqs), first, last, stats))
        return 0
    missing = sorted(set(want) - set(seqs))
    dup = len(seqs) - len(set(seqs))
    print("%d events (want %d); missing %s%s; duplicates %d; in order: %s"
          % (len(seqs), len(want), missing[:10], "..." if len(missing) > 10 else "",
             dup, seqs == sorted(seqs)))
    return 1


def check_page(argv):
    fn, n = argv[0], int(argv[1])
    d = json.load(open(fn))
    seqs = d["seqs"]
    increasing = all(b > a for a, b in zip(seqs, seqs[1:]))
    ok = increasing and seqs == list(range(1, n + 1))
    print("%d pages, %d events, seq %s..%s, strictly increasing: %s, gap-free 1..%d: %s"
          % (d["pages"], len(seqs), seqs[0] if seqs else "-", seqs[-1] if seqs else "-",
             "yes" if increasing else "NO", n, "yes" if ok else "NO"))
    return 0 if ok else 1


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == "watch":
        watch(argv)
    elif cmd == "page":
        page(argv)
    elif cmd == "check-watch":
        sys.exit(check_watch(argv))
    elif cmd == "check-page":
        sys.exit(check_page(argv))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
