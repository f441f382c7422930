#!/usr/bin/env bash
# Two regions (eu-1 in "eu", us-1 in "us") linked by a bidirectional
# ctxsync-bridge: writes on either side arrive on the other, the bridge
# reports its links, and two concurrent edits of one artifact become a
# fork that both regions flag the same way.
#   examples/eu-us/run.sh [--keep]   (--keep: leave everything running)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CS_BIN_DIR:-$ROOT/build/bin}
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
[ -x "$BIN/ctxsync-bridge" ] || { echo "build first: scripts/build.sh"; exit 1; }
WORK=$(mktemp -d /tmp/ctxsync-eu-us.XXXXXX)
. "$ROOT/examples/lib.sh"
if [ "$KEEP" = 0 ]; then trap 'cs_cleanup; rm -rf "$WORK"' EXIT; fi
trap 'exit 130' INT TERM

say "two regions"
start_node eu-1 eu
start_node us-1 us
export CTXSYNC_TOKEN=   # each command below names its node and token

say "federation agents: replicate only, one per direction"
EU_FED=$(fed_agent "$eu_1_URL" "$eu_1_TOKEN" fed-to-us us)   # on eu-1, delivers to us
US_FED=$(fed_agent "$us_1_URL" "$us_1_TOKEN" fed-to-eu eu)   # on us-1, delivers to eu
echo "eu-1: agent fed-to-us (region us, replicate on **); us-1: agent fed-to-eu (region eu)"

say "a bidirectional bridge (two links)"
cat >"$WORK/bridge.json" <<JSON
{
  "control": "ipc://$WORK/bridge.ipc",
  "links": [
    {"name": "eu-to-us", "mode": "full", "patterns": ["**"],
     "source": {"url": "$eu_1_URL", "token": "$EU_FED"},
     "target": {"url": "$us_1_URL", "token": "$US_FED"}},
    {"name": "us-to-eu", "mode": "full", "patterns": ["**"],
     "source": {"url": "$us_1_URL", "token": "$US_FED"},
     "target": {"url": "$eu_1_URL", "token": "$EU_FED"}}
  ]
}
JSON
chmod 600 "$WORK/bridge.json"
start_bridge "$WORK/bridge.json"
wait_for 20 links_live

say "write in the EU, read in the US (and back)"
CS="$BIN/ctxsync"
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" put ctx://acme/docs/handbook \
  --content '"Welcome to ACME.\nWe ship on Fridays.\n"' --summary "EU draft"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" put ctx://acme/decisions/pricing \
  --content '{"plan":"per-seat","currency":"USD"}' --summary "US pricing"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/docs/handbook
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/decisions/pricing
echo "--- us-1 has the EU document:"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" get ctx://acme/docs/handbook
echo "--- eu-1 has the US decision:"
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" get ctx://acme/decisions/pricing

say "bridge status"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS"

say "a partition: both regions edit the handbook at the same time"
"$BIN/ctxsync-bridge" ctl pause eu-to-us --control "ipc://$WORK/bridge.ipc" >/dev/null
"$BIN/ctxsync-bridge" ctl pause us-to-eu --control "ipc://$WORK/bridge.ipc" >/dev/null
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" put ctx://acme/docs/handbook \
  --content '"Welcome to ACME.\nWe ship on Thursdays.\n"' --summary "EU: ship Thursdays" --base 1
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" put ctx://acme/docs/handbook \
  --content '"Welcome to ACME.\nWe ship on Fridays and Mondays.\n"' --summary "US: add Mondays" --base 1
echo "--- heal the partition"
"$BIN/ctxsync-bridge" ctl resume eu-to-us --control "ipc://$WORK/bridge.ipc" >/dev/null
"$BIN/ctxsync-bridge" ctl resume us-to-eu --control "ipc://$WORK/bridge.ipc" >/dev/null
forked() { api "$1" "$2" GET "/artifacts?uri=ctx://acme/docs/handbook" | grep -q '"forked":true'; }
wait_for 20 forked "$eu_1_URL" "$eu_1_TOKEN"
wait_for 20 forked "$us_1_URL" "$us_1_TOKEN"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/docs/handbook

say "the fork is flagged in both regions, with the same id and provisional head"
echo "--- eu-1:"
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" forks list
echo "--- us-1:"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" forks list
FORK=$(api "$eu_1_URL" "$eu_1_TOKEN" GET /forks | python3 -c 'import json,sys; print(json.load(sys.stdin)["forks"][0]["fork_id"])')
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" forks show "$FORK"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS"

cat <<EOT

Both versions are kept; nothing was overwritten. An admin resolves the fork
once, on either node, and the merge replicates and closes it everywhere:
  $CS --url $eu_1_URL --token <admin token of eu-1> forks resolve $FORK --keep <version_id>
or in a browser: $eu_1_URL/ui/forks   (examples/fork-review/ walks through it)
EOT
if [ "$KEEP" = 1 ]; then
  echo
  echo "running in $WORK; admin tokens: eu-1 $eu_1_TOKEN  us-1 $us_1_TOKEN"
  echo "stop with: kill \$(cat $WORK/pids)"
fi
