"""Fault suite: a node restored from a backup (new epoch) and clock skew.

- restore: eu-1 is backed up, takes more writes (replicated to us-1), is
  then restored from the backup and given a new epoch with `ctxsync-node
  new-epoch`; the bridge must stop the eu -> us link with
  `source_epoch_changed` (never skip), `reset-link` resumes it, and in the
  end both nodes hold every version exactly once (docs/operations-node.md
  section 5 describes the procedure). A restore WITHOUT new-epoch must not
  go unnoticed either (`source_behind_checkpoint`).
- skew: eu-1 runs 2 h ahead and us-1 2 h behind (CS_CLOCK_OFFSET_MS, a
  test-only variable read by cs_now_us()); sequential edits that bounce
  between the nodes (each child "older" than its parent by the wall clock)
  are never flagged as forks and the head is the newest edit on both nodes;
  concurrent edits are flagged as forks identically on both nodes.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import time

from faultlib import (all_changes, Bridge, bridged, bin_path, check_acked, check_checkpoint,
                      check_exactly_once, expect_fixed, fed_agent, fixed_node,
                      link, node_url, q, run_tests, version_ids,
                      wait_converged, wait_until, write, Writer)


def new_epoch(data_dir, *args, rc=0):
    r = subprocess.run([bin_path("ctxsync-node"), "new-epoch", "--data", data_dir] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == rc, (r.returncode, r.stderr)
    if rc != 0:
        return r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def peers_file(path, peers):
    """A peers file (docs/residency.md section 2): [(node, url, token)]."""
    with open(path, "w") as f:
        json.dump({"peers": [{"node_id": n.node_id, "region": n.region, "url": u,
                              "token": t} for n, u, t in peers]}, f)
    os.chmod(path, 0o600)
    return path


def backup(node, dest):
    """Cold backup: the node is stopped (clean), its data dir copied."""
    assert node.stop() == 0
    shutil.copytree(node.data_dir, dest)
    node.start()


def restore(node, src):
    assert node.stop() == 0
    shutil.rmtree(node.data_dir)
    shutil.copytree(src, node.data_dir)


@bridged
def restore_from_backup_new_epoch_detected():
    eu = fixed_node("eu-1", "eu")
    us = fixed_node("us-1", "us")
    with eu, us:
        te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu, backoff_max_s=1),
                     link("us-to-eu", node_url(us), tu, node_url(eu), te, backoff_max_s=1)])
        for i in range(40):
            write(eu, "ctx://acme/r/d%02d" % (i % 10), "before backup %d" % i)
        wait_converged([eu, us], 30)
        bdir = os.path.join(eu.tmp, "backup")
        backup(eu, bdir)
        w = Writer(eu, "ctx://acme/r/after", rate=50)
        time.sleep(1)
        w.stop()
        lost_on_eu = [v for _, v, _ in w.acked]
        wait_converged([eu, us], 30)
        old_epoch = eu.req("GET", "/federation/info")[2]["epoch"]
        applied0 = br.link("eu-to-us")["counters"]["applied"]
        eu_max = max(int(e["origin"]["seq"]) for e in all_changes(us)
                     if e["origin"]["node_id"] == "eu-1")
        # disaster: eu-1 goes back to the backup, with a new epoch
        restore(eu, bdir)
        db = sqlite3.connect(os.path.join(eu.data_dir, "ctxsync.db"))
        restored_head = db.execute("SELECT MAX(seq) FROM change_events").fetchone()[0]
        db.close()
        err = new_epoch(eu.data_dir, rc=2)
        assert "--peers FILE" in err and "--seq-floor" in err, err
        pf = peers_file(os.path.join(eu.tmp, "peers.json"), [(us, node_url(us), tu)])
        ep = new_epoch(eu.data_dir, "--peers", pf)
        assert ep["old_epoch"] == old_epoch and ep["epoch"] != old_epoch, ep
        # it asked us-1: the next seq is past every eu-1 seq us-1 holds,
        # and the gap is published as lost
        assert ep["next_seq"] == eu_max + 1, (ep, eu_max)
        assert ep["lost_seqs"] == [restored_head + 1, eu_max], (ep, restored_head)
        eu.start()
        info = eu.req("GET", "/federation/info")[2]
        assert info["lost_seqs"] == [[restored_head + 1, eu_max]], info
        l = br.wait_state("eu-to-us", "failed", 30, reason="source_epoch_changed")
        assert l["source"]["epoch"] == ep["epoch"], l
        assert "BRIDGE-EPOCH" in br.log()
        time.sleep(1)
        l = br.link("eu-to-us")
        assert l["state"] == "failed" and l["counters"]["applied"] == applied0, l
        n_us = len(version_ids(us))
        # the operator resets the link
        rc, out, err = br.ctl("reset-link", "eu-to-us")
        assert rc == 0, (rc, out, err)
        br.wait_state("eu-to-us", ("live", "catching_up"), 30)
        # new writes on the restored node
        w2 = Writer(eu, "ctx://acme/r/restored", rate=50)
        time.sleep(1)
        w2.stop()
        time.sleep(2)
        check_exactly_once(us)
        check_exactly_once(eu)
        have_us = set(version_ids(us))
        missing = [v for _, v, _ in w2.acked if v not in have_us]
        st, _, dl = us.req("GET", "/federation/deadletters")
        # (was RESTORE-EVENTID-REUSE) the restored node's new writes use
        # fresh event ids: none is dead-lettered on us-1
        assert not missing, ("%d of %d writes of the restored eu-1 never reach us-1 (%r)"
                             % (len(missing), len(w2.acked),
                                [d["reason"][:80] for d in dl["deadletters"][:1]]))
        assert not dl["deadletters"], dl["deadletters"][:2]
        # (was RESTORE-LOST-NOT-RETURNED) the versions eu-1 wrote after the
        # backup come back to it through the us -> eu link
        def back():
            have = set(version_ids(eu))
            return [v for v in lost_on_eu if v not in have]
        wait_until(lambda: not back(), 30)
        assert lost_on_eu and not back(), ("%d of %d versions lost by the restore did not "
                                           "come back" % (len(back()), len(lost_on_eu)))
        wait_converged([eu, us], 30)
        check_exactly_once(eu)
        assert n_us <= len(version_ids(us))
        assert br.stop() == 0


@bridged
def restore_without_new_epoch_is_not_silent():
    eu = fixed_node("eu-1", "eu")
    us = fixed_node("us-1", "us")
    with eu, us:
        te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu, backoff_max_s=1)])
        for i in range(10):
            write(eu, "ctx://acme/n/d%02d" % i, "x%d" % i)
        wait_converged([eu, us], 30)
        bdir = os.path.join(eu.tmp, "backup")
        backup(eu, bdir)
        for i in range(20):
            write(eu, "ctx://acme/n/e%02d" % i, "y%d" % i)
        wait_converged([eu, us], 30)
        wait_until(lambda: br.link("eu-to-us")["applied_seq"] == eu.head(), 20)
        restore(eu, bdir)          # forgot new-epoch
        eu.start()
        l = br.wait_state("eu-to-us", "failed", 30, reason="source_behind_checkpoint")
        print("  restored without new-epoch: %s / %s" % (l["reason"], l["last_error"]))
        assert br.stop() == 0


SKEW_MS = 2 * 3600 * 1000


def skewed_pair():
    eu = fixed_node("eu-1", "eu", env={"CS_CLOCK_OFFSET_MS": str(SKEW_MS)})
    us = fixed_node("us-1", "us", env={"CS_CLOCK_OFFSET_MS": str(-SKEW_MS)})
    return eu, us


def open_forks(n):
    st, _, b = n.req("GET", "/forks", query={"status": "all", "limit": 500})
    assert st == 200, (st, b)
    return b


@bridged
def clock_skew_sequential_edits_are_not_forks():
    eu, us = skewed_pair()
    with eu, us:
        te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu),
                     link("us-to-eu", node_url(us), tu, node_url(eu), te)])
        a = write(eu, "ctx://acme/skew/probe", "eu")
        wait_converged([eu, us], 20)
        b = write(us, "ctx://acme/skew/probe", "us")
        wait_converged([eu, us], 20)
        ev = {e["version_id"]: e for e in all_changes(eu)}
        t_a = ev[a["version_id"]]["created_at"]
        t_b = ev[b["version_id"]]["created_at"]
        print("  eu wrote v1 at %s, us wrote v2 (child) at %s" % (t_a, t_b))
        assert t_b < t_a, "the skew is not in effect (CS_CLOCK_OFFSET_MS)"
        uris = ["ctx://acme/skew/d%02d" % i for i in range(8)]
        last = {}
        for rnd in range(6):
            node, other = (eu, us) if rnd % 2 == 0 else (us, eu)
            for u in uris:
                last[u] = write(node, u, "round %d on %s" % (rnd, node.node_id))
            # wait until the other side has them before it edits
            want = {x["version_id"] for x in last.values()}
            wait_until(lambda: want <= set(version_ids(other)), 20)
        wait_converged([eu, us], 20)
        for n in (eu, us):
            f = open_forks(n)
            assert f["counts"]["open"] == 0 and f["counts"]["resolved"] == 0, (
                n.node_id, f["forks"][:2])
            for u in uris:
                st, _, art = n.req("GET", "/artifacts?uri=" + q(u))
                assert st == 200, (st, art)
                assert art["version_id"] == last[u]["version_id"], (n.node_id, u)
                assert art["version"] == 6, art
                st, _, h = n.req("GET", "/artifacts/history?uri=" + q(u))
                vs = sorted(h["versions"], key=lambda v: v["version"])
                assert [v["version"] for v in vs] == list(range(1, 7)), vs
                for p, c in zip(vs, vs[1:]):
                    assert c["parent_id"] == p["version_id"], (u, p, c)
            check_exactly_once(n)
        assert br.stop() == 0


@bridged
def clock_skew_concurrent_edits_flag_same_forks():
    eu, us = skewed_pair()
    with eu, us:
        te, tu = fed_agent(eu, "us"), fed_agent(us, "eu")
        uris = ["ctx://acme/skewc/d%02d" % i for i in range(6)]
        for u in uris:
            write(eu, u, "base")
        br = Bridge([link("eu-to-us", node_url(eu), te, node_url(us), tu),
                     link("us-to-eu", node_url(us), tu, node_url(eu), te)])
        wait_converged([eu, us], 20)
        assert br.stop() == 0           # partition: both edit the same base
        for u in uris:
            write(eu, u, "eu edit")
            write(us, u, "us edit")
        br.start()
        wait_converged([eu, us], 30)
        fe, fu = open_forks(eu), open_forks(us)
        ke = sorted((f["uri"], f["fork_id"]) for f in fe["forks"])
        ku = sorted((f["uri"], f["fork_id"]) for f in fu["forks"])
        assert len(ke) == len(uris), fe
        assert ke == ku, (ke, ku)
        for u in uris:
            a = eu.req("GET", "/artifacts?uri=" + q(u))[2]
            b = us.req("GET", "/artifacts?uri=" + q(u))[2]
            assert a["version_id"] == b["version_id"], (u, a, b)
        check_exactly_once(eu)
        check_exactly_once(us)
        assert br.stop() == 0


if __name__ == "__main__":
    run_tests()
