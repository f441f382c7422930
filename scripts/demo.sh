#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts one ContextSync
# node with sample artifacts, shows the CLI and curl at work, and keeps the
# node serving until Ctrl-C (pass --no-wait to stop at the end instead).
set -euo pipefail
cd "$(dirname "$0")/.."
WAIT=1
[ "${1:-}" = "--no-wait" ] && WAIT=0

scripts/install-deps.sh
scripts/build.sh
BIN=$PWD/build/bin
DEMO=$(mktemp -d /tmp/ctxsync-demo.XXXXXX)
NODE_PID=""
cleanup() {
  [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  rm -rf "$DEMO"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "init: a node eu-1 in region eu, admin alice"
INIT=$("$BIN/ctxsync-node" init --data "$DEMO/eu-1" --node-id eu-1 --region eu --admin alice)
echo "$INIT" | sed -E 's/"token":"[^"]+"/"token":"<shown once, hidden here>"/'
TOKEN=$(printf '%s' "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

say "serve on a free loopback port"
"$BIN/ctxsync-node" serve --data "$DEMO/eu-1" --listen 127.0.0.1:0 \
  --ready-file "$DEMO/ready" 2>"$DEMO/node.log" &
NODE_PID=$!
for _ in $(seq 100); do [ -s "$DEMO/ready" ] && break; sleep 0.05; done
URL="http://$(cat "$DEMO/ready")"
export CTXSYNC_URL=$URL CTXSYNC_TOKEN=$TOKEN
echo "listening on $URL (pid $NODE_PID, log $DEMO/node.log)"

say "write sample artifacts with the ctxsync CLI"
"$BIN/ctxsync" put ctx://acme/docs/handbook --content '"Welcome to ACME.\nWe ship on Fridays.\n"' --summary "first draft"
"$BIN/ctxsync" put ctx://acme/docs/handbook --content '"Welcome to ACME.\nWe ship on Thursdays.\nFridays are for docs.\n"' --summary "ship day moved" --base 1
"$BIN/ctxsync" put ctx://acme/decisions/db --content '{"choice":"sqlite","why":["embedded","WAL"]}' --summary "store decision"
"$BIN/ctxsync" put ctx://acme/decisions/db --content '{"choice":"sqlite","why":["embedded","WAL","FTS5"],"review":"2027-01"}' --summary "add review date"

say "an agent with read-only access"
"$BIN/ctxsync" actors create summarizer-1 --type agent --class summarizer --name "Summarizer bot"
"$BIN/ctxsync" grant --class summarizer 'ctx://acme/docs/**' read

say "read, history and diffs"
"$BIN/ctxsync" get ctx://acme/docs/handbook
"$BIN/ctxsync" history ctx://acme/docs/handbook
"$BIN/ctxsync" diff ctx://acme/docs/handbook 1 2 --format unified
"$BIN/ctxsync" diff ctx://acme/decisions/db 1 2 --format json-patch
"$BIN/ctxsync" status

say "the change feed and provenance over plain HTTP"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/changes?since=0&limit=2" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d["events"][0], indent=2)); print("... head=%s has_more=%s" % (d["head"], d["has_more"]))'
curl -s -H "Authorization: Bearer $TOKEN" "$URL/provenance?uri=ctx://acme/docs/handbook&limit=3" | python3 -m json.tool

cat <<EOT

Try it yourself (the node keeps running until Ctrl-C):
  export CTXSYNC_URL=$URL CTXSYNC_TOKEN=<the token above: in \$CTXSYNC_TOKEN of this script>
  $BIN/ctxsync get ctx://acme/decisions/db
  curl -s -H "Authorization: Bearer \$CTXSYNC_TOKEN" "$URL/artifacts/list?org=acme"
  curl -sN -H "Authorization: Bearer \$CTXSYNC_TOKEN" "$URL/subscriptions/stream?pattern=ctx://acme/**&since=0"
  curl -s "$URL/metrics" | head
EOT
if [ "$WAIT" = 1 ]; then
  echo "admin token for this demo session: $TOKEN"
  wait "$NODE_PID"
fi
