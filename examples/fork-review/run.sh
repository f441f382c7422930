#!/usr/bin/env bash
# Fork review: partition two regions, write the same artifacts on both
# sides, heal, look at the queue (CLI and web page), resolve one fork by
# keeping a branch and another with merged content, and show that both
# regions converge on the same versions with no fork left open.
#   examples/fork-review/run.sh [--keep]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CS_BIN_DIR:-$ROOT/build/bin}
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
[ -x "$BIN/ctxsync-bridge" ] || { echo "build first: scripts/build.sh"; exit 1; }
WORK=$(mktemp -d /tmp/ctxsync-forks.XXXXXX)
. "$ROOT/examples/lib.sh"
if [ "$KEEP" = 0 ]; then trap 'cs_cleanup; rm -rf "$WORK"' EXIT; fi
trap 'exit 130' INT TERM
CS="$BIN/ctxsync"
ctl() { "$BIN/ctxsync-bridge" ctl "$1" "$2" --control "ipc://$WORK/bridge.ipc" >/dev/null; }

say "two regions and a bidirectional bridge"
start_node eu-1 eu
start_node us-1 us
EU_FED=$(fed_agent "$eu_1_URL" "$eu_1_TOKEN" fed-to-us us)
US_FED=$(fed_agent "$us_1_URL" "$us_1_TOKEN" fed-to-eu eu)
cat >"$WORK/bridge.json" <<JSON
{"control": "ipc://$WORK/bridge.ipc", "links": [
  {"name": "eu-to-us", "source": {"url": "$eu_1_URL", "token": "$EU_FED"},
   "target": {"url": "$us_1_URL", "token": "$US_FED"}},
  {"name": "us-to-eu", "source": {"url": "$us_1_URL", "token": "$US_FED"},
   "target": {"url": "$eu_1_URL", "token": "$EU_FED"}}]}
JSON
chmod 600 "$WORK/bridge.json"
start_bridge "$WORK/bridge.json"
wait_for 20 links_live
EU=(--url "$eu_1_URL" --token "$eu_1_TOKEN")
US=(--url "$us_1_URL" --token "$us_1_TOKEN")
"$CS" "${EU[@]}" put ctx://acme/policy/travel --content '"Economy class for flights under 6 hours.\nReceipts within 30 days.\n"' --summary "travel policy"
"$CS" "${EU[@]}" put ctx://acme/policy/oncall --content '{"rotation":"weekly","pager":"eu"}' --summary "on-call"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/policy/travel
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/policy/oncall

say "partition: both regions edit both documents"
ctl pause eu-to-us; ctl pause us-to-eu
"$CS" "${EU[@]}" put ctx://acme/policy/travel --base 1 --summary "EU: 8 hours" \
  --content '"Economy class for flights under 8 hours.\nReceipts within 30 days.\n"'
"$CS" "${US[@]}" put ctx://acme/policy/travel --base 1 --summary "US: 14 days" \
  --content '"Economy class for flights under 6 hours.\nReceipts within 14 days.\n"'
"$CS" "${EU[@]}" put ctx://acme/policy/oncall --base 1 --summary "EU pager" --content '{"rotation":"weekly","pager":"eu","backup":"us"}'
"$CS" "${US[@]}" put ctx://acme/policy/oncall --base 1 --summary "US pager" --content '{"rotation":"daily","pager":"us"}'

say "heal: both forks are flagged in both regions"
ctl resume eu-to-us; ctl resume us-to-eu
nforks() { [ "$(api "$1" "$2" GET /forks | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["open"])')" = 2 ]; }
wait_for 20 nforks "$eu_1_URL" "$eu_1_TOKEN"
wait_for 20 nforks "$us_1_URL" "$us_1_TOKEN"
"$CS" "${EU[@]}" forks list
"$CS" "${US[@]}" forks list

fork_of() { api "$eu_1_URL" "$eu_1_TOKEN" GET /forks | python3 -c 'import json,sys; print([f["fork_id"] for f in json.load(sys.stdin)["forks"] if f["uri"]==sys.argv[1]][0])' "$1"; }
TRAVEL=$(fork_of ctx://acme/policy/travel)
ONCALL=$(fork_of ctx://acme/policy/oncall)

say "review the travel fork: both branches and the diff"
"$CS" "${EU[@]}" forks show "$TRAVEL"
echo
echo "The same queue in a browser: $eu_1_URL/ui/forks  (paste an admin token)"

say "resolve: merge the travel policy by hand, keep the US on-call branch"
printf 'Economy class for flights under 8 hours.\nReceipts within 14 days.\n' >"$WORK/travel.txt"
"$CS" "${EU[@]}" forks resolve "$TRAVEL" --content-file "$WORK/travel.txt" --summary "merge: 8 hours, 14 days"
US_BRANCH=$(api "$eu_1_URL" "$eu_1_TOKEN" GET "/forks/$ONCALL" | python3 -c 'import json,sys; print([b["version_id"] for b in json.load(sys.stdin)["branches"] if b["origin"]["region"]=="us"][0])')
"$CS" "${US[@]}" forks resolve "$ONCALL" --keep "$US_BRANCH" --summary "keep the daily US rotation"

say "both regions converge: no open fork, same heads"
noforks() { [ "$(api "$1" "$2" GET /forks | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["open"])')" = 0 ]; }
wait_for 20 noforks "$eu_1_URL" "$eu_1_TOKEN"
wait_for 20 noforks "$us_1_URL" "$us_1_TOKEN"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/policy/travel
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/policy/oncall
"$CS" "${US[@]}" forks list --status resolved
echo "--- us-1 reads the merged travel policy:"
"$CS" "${US[@]}" get ctx://acme/policy/travel
echo "--- eu-1 reads the kept US on-call rotation:"
"$CS" "${EU[@]}" get ctx://acme/policy/oncall
echo "--- history keeps every branch:"
"$CS" "${EU[@]}" history ctx://acme/policy/travel
if [ "$KEEP" = 1 ]; then
  echo; echo "running in $WORK; admin tokens: eu-1 $eu_1_TOKEN  us-1 $us_1_TOKEN"
  echo "stop with: kill \$(cat $WORK/pids)"
fi
