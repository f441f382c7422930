# Shared helpers for the example scenarios (sourced, not run).
# Requires: BIN (dir with ctxsync-node, ctxsync-bridge, ctxsync), WORK (a
# scratch dir), python3 and curl. Every process started is recorded in
# $WORK/pids and stopped by cs_cleanup (by PID).

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# json_get FIELD  <json on stdin>
json_get() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# start_node NAME REGION [extra serve args...]: init + serve on a free port.
# Sets NAME_URL and NAME_TOKEN (admin) as shell variables, e.g. eu_1_URL.
start_node() {
  local name=$1 region=$2; shift 2
  local var=${name//-/_} dir=$WORK/$name init
  init=$("$BIN/ctxsync-node" init --data "$dir" --node-id "$name" --region "$region" --admin admin 2>>"$WORK/$name.log")
  "$BIN/ctxsync-node" serve --data "$dir" --listen 127.0.0.1:0 \
    --ready-file "$WORK/$name.ready" "$@" 2>>"$WORK/$name.log" &
  echo $! >>"$WORK/pids"
  for _ in $(seq 200); do [ -s "$WORK/$name.ready" ] && break; sleep 0.05; done
  [ -s "$WORK/$name.ready" ] || { echo "node $name did not start; log:"; tail "$WORK/$name.log"; return 1; }
  printf -v "${var}_URL" 'http://%s' "$(cat "$WORK/$name.ready")"
  printf -v "${var}_TOKEN" '%s' "$(printf '%s' "$init" | json_get token)"
  echo "$name ($region) listening on http://$(cat "$WORK/$name.ready")"
}

# api URL TOKEN METHOD PATH [JSON]: a request with the admin token.
api() {
  local url=$1 token=$2 method=$3 path=$4 body=${5:-}
  if [ -n "$body" ]; then
    curl -sS -X "$method" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "$body" "$url$path"
  else
    curl -sS -X "$method" -H "Authorization: Bearer $token" "$url$path"
  fi
}

# fed_agent URL ADMIN_TOKEN ACTOR_ID REGION: a federation agent holding
# replicate (only) on **; prints its token.
fed_agent() {
  api "$1" "$2" POST /actors "{\"actor_id\":\"$3\",\"actor_type\":\"agent\",\"name\":\"$3\",\"agent_class\":\"federation\",\"region\":\"$4\"}" >/dev/null
  api "$1" "$2" POST /permissions "{\"actor_id\":\"$3\",\"artifact_pattern\":\"**\",\"operations\":[\"replicate\"]}" >/dev/null
  api "$1" "$2" POST "/actors/$3/tokens" '{}' | json_get token
}

# start_bridge CONFIG_JSON_FILE: runs ctxsync-bridge; sets BRIDGE_STATUS.
start_bridge() {
  "$BIN/ctxsync-bridge" run --config "$1" --status 127.0.0.1:0 \
    --ready-file "$WORK/bridge.ready" 2>>"$WORK/bridge.log" &
  echo $! >>"$WORK/pids"
  for _ in $(seq 200); do [ -s "$WORK/bridge.ready" ] && break; sleep 0.05; done
  BRIDGE_STATUS=$(sed -n 's/^status=//p' "$WORK/bridge.ready")
  [ -n "$BRIDGE_STATUS" ] || { echo "bridge did not start; log:"; tail "$WORK/bridge.log"; return 1; }
  echo "bridge status on http://$BRIDGE_STATUS (ctxsync-bridge status --status $BRIDGE_STATUS)"
}

# wait_for SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && { echo "timed out waiting for: $*"; return 1; }
    sleep 0.1
  done
}

# links_live: every link of the bridge is live.
links_live() {
  curl -sf "http://$BRIDGE_STATUS/status" |
    python3 -c 'import json,sys; l=json.load(sys.stdin)["links"]; sys.exit(0 if l and all(x["state"]=="live" for x in l) else 1)'
}

# same_content URL1 TOKEN1 URL2 TOKEN2 URI: both nodes serve the same head.
same_head() {
  local a b
  a=$(api "$1" "$2" GET "/artifacts?uri=$5" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("version_id"))')
  b=$(api "$3" "$4" GET "/artifacts?uri=$5" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("version_id"))')
  [ "$a" != "None" ] && [ "$a" = "$b" ]
}

cs_cleanup() {
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$WORK/pids"
    while read -r pid; do
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done <"$WORK/pids"
  fi
}
