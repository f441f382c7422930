"""Fault suite: mutated JSON bodies on every endpoint that takes one, sent
to a real node over HTTP (the HTTP-surface half of the request-body fuzzing;
the in-process half is tests/fuzz/fuzz_request_bodies.c).

For each body endpoint, a valid seed body is mutated (members deleted or
retyped, huge/unicode/NUL strings, numbers at the edges, deep nesting,
byte-level flips, truncation) a few hundred times with a fixed seed
(CS_BODY_FUZZ_SEED to vary it). Every answer must be < 500 and, when an
error, the {"error","message","request_id"} shape; the node must stay up,
and at the end its feed still holds every version exactly once.
"""

import json
import os
import random

from faultlib import (Node, check_exactly_once, fed_agent, run_tests, test,
                      write)

SEED = int(os.environ.get("CS_BODY_FUZZ_SEED", "8"))
N = int(os.environ.get("CS_BODY_FUZZ_N", "250"))

WEIRD = [None, True, False, 0, -1, 2 ** 63, -2 ** 63 - 1, 1e308, -0.0, 1.5,
         "", " ", "\u0000", "\ud7ff\ue000", "\U0001F600" * 3, "a" * 70000,
         "ctx://acme/docs/x", "ctx://../x/y", "**", "ctx://*/**", [], {},
         [1, [2, [3]]], {"a": {"b": {"c": None}}}, "v:" + "0" * 64,
         "application/json", "text/plain; charset=utf-8", "x/y+json"]


def mutate_value(rng, v, depth=0):
    r = rng.random()
    if r < 0.35 or depth > 3:
        return rng.choice(WEIRD)
    if isinstance(v, dict):
        return mutate_obj(rng, v, depth + 1)
    if isinstance(v, list):
        v = list(v)
        if v and rng.random() < 0.5:
            i = rng.randrange(len(v))
            v[i] = mutate_value(rng, v[i], depth + 1)
        else:
            v.append(rng.choice(WEIRD))
        return v
    if isinstance(v, str):
        return rng.choice([v * rng.randint(2, 50), v[: len(v) // 2], v + "\u00e9\u0301",
                           v.upper(), "/" + v, v.replace("/", "//")])
    return rng.choice(WEIRD)


def mutate_obj(rng, obj, depth=0):
    o = dict(obj)
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        keys = list(o)
        if r < 0.25 and keys:
            del o[rng.choice(keys)]
        elif r < 0.35:
            o[rng.choice(["extra", "", "\u00fc", "content", "uri", "__proto__"])] = rng.choice(WEIRD)
        elif keys:
            k = rng.choice(keys)
            o[k] = mutate_value(rng, o[k], depth)
    return o


def mutate_bytes(rng, body):
    b = bytearray(json.dumps(body).encode())
    r = rng.random()
    if r < 0.3 and b:
        del b[rng.randrange(len(b)):]                       # truncate
    elif r < 0.6 and b:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)   # flip
    elif r < 0.8:
        d = rng.randint(50, 3000)
        b = bytearray(b"[" * d + b"]" * d)                  # deep
    else:
        b = bytearray(b"\xef\xbb\xbf") + b                  # BOM
    return bytes(b)


def check_answer(n, method, path, st, b, sent):
    assert st < 500, "%s %s -> %s %r for body %.300r" % (method, path, st, b, sent)
    if st >= 400:
        assert isinstance(b, dict) and set(b) >= {"error", "message", "request_id"}, (
            method, path, st, b)


@test
def mutated_bodies_on_every_endpoint():
    rng = random.Random(SEED)
    with Node("body-1", "eu") as n:
        fed_agent(n, "us")
        a = write(n, "ctx://acme/docs/base", "base")
        info = n.req("GET", "/federation/info")[2]
        st, _, ch = n.req("GET", "/federation/changes", query={"since": 0, "mode": "full"})
        ev = ch["events"][0]
        ev_src = {"node_id": "eu-9", "epoch": info["epoch"]}
        seeds = [
            ("POST", "/artifacts", {"uri": "ctx://acme/docs/new", "content": "x",
                                    "content_type": "text/plain", "name": "n", "summary": "s"}),
            ("PUT", "/artifacts?uri=ctx%3A%2F%2Facme%2Fdocs%2Fbase",
             {"content": {"k": 1}, "base_version": 1, "summary": "s"}),
            ("POST", "/actors", {"actor_id": "bob", "actor_type": "human", "name": "Bob"}),
            ("POST", "/permissions", {"actor_id": "fed", "pattern": "ctx://acme/**",
                                      "ops": ["read", "write"]}),
            ("POST", "/subscriptions", {"pattern": "ctx://acme/**", "name": "s"}),
            ("POST", "/suggestions", {"uri": "ctx://acme/docs/base", "content": "proposal",
                                      "base_version": 1, "summary": "s"}),
            ("POST", "/forks/fk_0000/resolve", {"keep": a["version_id"], "summary": "m"}),
            ("POST", "/federation/ingest", {"source": ev_src, "events": [ev],
                                            "checkpoint": {"seq": 1}}),
        ]
        counts = {}
        for method, path, seed in seeds:
            for i in range(N):
                if rng.random() < 0.8:
                    body = mutate_obj(rng, seed)
                    try:
                        raw = json.dumps(body).encode()
                    except (ValueError, UnicodeEncodeError):
                        continue
                else:
                    raw = mutate_bytes(rng, seed)
                st, _, b = n.req(method, path, raw_body=raw)
                check_answer(n, method, path, st, b, raw)
                counts[st] = counts.get(st, 0) + 1
            assert n.health(), (method, path)
        print("  %d requests, statuses %s" % (sum(counts.values()), dict(sorted(counts.items()))))
        check_exactly_once(n)


if __name__ == "__main__":
    run_tests()
