#!/usr/bin/env bash
# Data residency: payloads under ctx://acme/hr/** stay in the EU.
#   eu-1 (region eu) holds the policy: ctx://acme/hr/** is home-only in eu,
#   on-demand reads allowed, not cached. us-1 (region us) mirrors eu-1
#   through a bridge in full mode: it gets every payload except HR, and HR
#   metadata (who changed what, when and why). A US user with read on
#   ctx://acme/hr/** in the EU reads an HR artifact on demand; another
#   without the EU grant is refused. Last, a byte search over the whole US
#   data directory (SQLite file, WAL, blobs) proves that no HR payload byte
#   exists there.
#   examples/residency/run.sh [--keep]   (--keep: leave everything running)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CS_BIN_DIR:-$ROOT/build/bin}
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
[ -x "$BIN/ctxsync-bridge" ] || { echo "build first: scripts/build.sh"; exit 1; }
WORK=$(mktemp -d /tmp/ctxsync-residency.XXXXXX)
. "$ROOT/examples/lib.sh"
if [ "$KEEP" = 0 ]; then trap 'cs_cleanup; rm -rf "$WORK"' EXIT; fi
trap 'exit 130' INT TERM
CS="$BIN/ctxsync"
pretty() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d.get(k) for k in sys.argv[1:]} if len(sys.argv) > 1 else d, indent=1))' "$@"; }
# A marker that only the HR payload contains.
MARKER="HR-PAYLOAD-MARKER-$$-$RANDOM$RANDOM"

say "the residency policy (the same file on every node and on the bridge)"
cat >"$WORK/policy.json" <<JSON
{
  "regions": ["eu", "us"],
  "rules": [
    {"pattern": "ctx://acme/hr/**", "home_region": "eu",
     "payload": "home-only", "on_demand": "allow", "cache": false}
  ]
}
JSON
cat "$WORK/policy.json"

say "eu-1 (region eu) with the policy"
start_node eu-1 eu --residency "$WORK/policy.json"
# On eu-1, the agent that delivers to the US: the bridge reads eu-1 with it,
# and us-1 uses it for on-demand fetches.
EU_FED=$(fed_agent "$eu_1_URL" "$eu_1_TOKEN" fed-to-us us)

say "us-1 (region us): a mirror that fetches HR payloads from eu-1 on demand"
cat >"$WORK/peers.json" <<JSON
{"peers": [{"node_id": "eu-1", "region": "eu", "url": "$eu_1_URL", "token": "$EU_FED"}]}
JSON
chmod 600 "$WORK/peers.json"
start_node us-1 us --residency "$WORK/policy.json" --peers "$WORK/peers.json"
US_FED=$(fed_agent "$us_1_URL" "$us_1_TOKEN" fed-from-eu eu)
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" residency check ctx://acme/hr/salaries-2026

say "people: alice and bob work in the US; only alice may read HR in the EU"
for who in alice bob; do
  api "$us_1_URL" "$us_1_TOKEN" POST /actors "{\"actor_id\":\"$who\",\"actor_type\":\"human\",\"name\":\"$who\"}" >/dev/null
  api "$us_1_URL" "$us_1_TOKEN" POST /permissions "{\"actor_id\":\"$who\",\"artifact_pattern\":\"ctx://acme/**\",\"operations\":[\"read\"]}" >/dev/null
  api "$eu_1_URL" "$eu_1_TOKEN" POST /actors "{\"actor_id\":\"$who\",\"actor_type\":\"human\",\"name\":\"$who\"}" >/dev/null
done
api "$eu_1_URL" "$eu_1_TOKEN" POST /permissions '{"actor_id":"alice","artifact_pattern":"ctx://acme/hr/**","operations":["read"]}' >/dev/null
ALICE=$(api "$us_1_URL" "$us_1_TOKEN" POST /actors/alice/tokens '{}' | json_get token)
BOB=$(api "$us_1_URL" "$us_1_TOKEN" POST /actors/bob/tokens '{}' | json_get token)
echo "us-1: alice and bob read ctx://acme/**; eu-1: alice reads ctx://acme/hr/**, bob nothing"

say "the bridge eu-1 -> us-1 (full mode, residency configured)"
cat >"$WORK/bridge.json" <<JSON
{
  "control": "ipc://$WORK/bridge.ipc",
  "residency": "policy.json",
  "links": [
    {"name": "eu-to-us", "mode": "full", "patterns": ["**"],
     "source": {"url": "$eu_1_URL", "token": "$EU_FED"},
     "target": {"url": "$us_1_URL", "token": "$US_FED"}}
  ]
}
JSON
chmod 600 "$WORK/bridge.json"
start_bridge "$WORK/bridge.json"
wait_for 20 links_live

say "write in the EU: one HR artifact, one handbook"
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" put ctx://acme/hr/salaries-2026 \
  --content "\"Salary bands 2026 ($MARKER): L5 90k-120k EUR\"" --summary "2026 salary bands"
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" put ctx://acme/docs/handbook \
  --content '"Welcome to ACME. We ship on Fridays."' --summary "handbook v1"
arrived() { api "$us_1_URL" "$us_1_TOKEN" GET "/artifacts?uri=$1&metadata_only=1" | grep -q '"version_id"'; }
wait_for 20 arrived ctx://acme/hr/salaries-2026
wait_for 20 arrived ctx://acme/docs/handbook

say "us-1 has the handbook's payload and the HR artifact's metadata only"
api "$us_1_URL" "$us_1_TOKEN" GET "/artifacts?uri=ctx://acme/docs/handbook" | pretty uri content payload_state
api "$us_1_URL" "$us_1_TOKEN" GET "/artifacts?uri=ctx://acme/hr/salaries-2026&metadata_only=1" |
  pretty uri author_id summary updated_at content_hash payload_state origin
echo "--- history and search work on the metadata:"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" history ctx://acme/hr/salaries-2026
api "$us_1_URL" "$us_1_TOKEN" GET "/search?q=salary" | pretty results

say "alice (US) reads the HR artifact on demand: allowed by eu-1"
OUT=$(api "$us_1_URL" "$ALICE" GET "/artifacts?uri=ctx://acme/hr/salaries-2026")
echo "$OUT" | pretty uri content payload_state fetched_from
echo "$OUT" | grep -q "$MARKER"   # the payload, verified against its SHA-256
echo "(kept in memory for this answer only: home-only payloads are never cached outside eu)"

say "bob (US) is refused: eu-1 does not grant him read on HR"
OUT=$(api "$us_1_URL" "$BOB" GET "/artifacts?uri=ctx://acme/hr/salaries-2026")
echo "$OUT" | pretty
echo "$OUT" | grep -q '"error":"forbidden"'

say "provenance: a remote_fetch row on both nodes"
echo "--- us-1:"
api "$us_1_URL" "$us_1_TOKEN" GET "/provenance?uri=ctx://acme/hr/salaries-2026" |
  python3 -c 'import json,sys; [print(json.dumps({k: r.get(k) for k in ("actor_id","operation","version_touched","detail")})) for r in json.load(sys.stdin)["records"] if r["operation"]=="remote_fetch"]'
echo "--- eu-1:"
api "$eu_1_URL" "$eu_1_TOKEN" GET "/provenance?uri=ctx://acme/hr/salaries-2026" |
  python3 -c 'import json,sys; [print(json.dumps({k: r.get(k) for k in ("actor_id","operation","version_touched","detail")})) for r in json.load(sys.stdin)["records"] if r["operation"]=="remote_fetch"]'

say "the bridge's status"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS"

say "proof: no HR payload byte under the US data directory"
ls -la "$WORK/us-1" "$WORK/us-1"/blobs 2>/dev/null | sed 's/^/  /' || true
# The marker is in the EU (so the search below can find it) ...
grep -r -a -q -F "$MARKER" "$WORK/eu-1" || { echo "FAIL: the marker is not even in the EU data"; exit 1; }
# ... and in no file under the US data directory: database, WAL, blobs.
if grep -r -a -l -F "$MARKER" "$WORK/us-1"; then
  echo "FAIL: HR payload bytes found under the US data directory (files above)"; exit 1
fi
python3 - "$WORK/us-1" "$MARKER" <<'PY'
import os, sys
root, needle = sys.argv[1], sys.argv[2].encode()
n = 0
for d, _, files in os.walk(root):
    for f in files:
        n += 1
        with open(os.path.join(d, f), "rb") as fh:
            if needle in fh.read():
                sys.exit("FAIL: %s holds HR payload bytes" % os.path.join(d, f))
print("checked %d files under %s: no HR payload byte" % (n, root))
PY
echo "OK: the HR payload stayed in the EU"
