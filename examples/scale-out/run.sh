#!/usr/bin/env bash
# Scale-out: one node (eu-1, region eu) served by THREE ctxsync-node
# processes that share one PostgreSQL database, behind nginx; a second
# region (us-1, SQLite) replicates from the balancer's URL.
#
#   1. a throwaway PostgreSQL 15 cluster (scripts/pg-cluster.sh) and a
#      database with bytewise collation; `init --store postgres://...`
#   2. three `serve --store postgres://...` processes, nginx in front
#   3. us-1 (SQLite) and a bridge eu (balancer URL) -> us
#   4. N creates through the balancer, spread over the three processes,
#      while one SSE client per process (connected to it DIRECTLY) and a
#      /changes pager (through the balancer) watch
#   5. checks: every SSE client got every event, in order (and how long it
#      took); the feed has no gap; the bridge brought everything to us-1
#   6. kill -9 of one process: writes through the balancer still succeed,
#      its SSE client resumes through the balancer with Last-Event-ID
#      without a gap, the bridge keeps replicating
#   7. a summary; exit 0 only when every check passed (77: nginx or
#      PostgreSQL 15 is not installed, nothing was run)
#
#   examples/scale-out/run.sh [--keep]   (--keep: leave everything running)
# Environment: CS_BIN_DIR (default build/bin), CS_SCALEOUT_N (writes in
# step 4, default 200), CS_SCALEOUT_TIMEOUT (global limit in s, default 150).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/examples/scale-out
BIN=${CS_BIN_DIR:-$ROOT/build/bin}
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
N=${CS_SCALEOUT_N:-200}       # writes while watching
M=30                          # writes after the kill -9 (two halves)
PAR=8                         # concurrent writers
TIMEOUT=${CS_SCALEOUT_TIMEOUT:-150}
T0=$SECONDS

[ -x "$BIN/ctxsync-node" ] && [ -x "$BIN/ctxsync-bridge" ] && [ -x "$BIN/ctxsync" ] ||
  { echo "build first: scripts/build.sh"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=$(command -v psql || echo "$PGBIN/psql")
if [ ! -x "$NGINX" ] || [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PSQL" ]; then
  echo "scale-out: needs nginx and PostgreSQL 15 (scripts/install-deps.sh installs both): skipped"
  exit 77
fi
for c in python3 curl; do command -v $c >/dev/null || { echo "scale-out: needs $c"; exit 1; }; done

WORK=$(mktemp -d /tmp/ctxsync-scale-out.XXXXXX)
# as root the cluster runs as the postgres user, which must reach $WORK/pg
chmod 711 "$WORK"
. "$ROOT/examples/lib.sh"
say() { printf '\n\033[1m== %s\033[0m  (%d s)\n' "$*" $((SECONDS - T0)); }
PG_DIR=$WORK/pg
PG_STARTED=0
WATCHDOG=

# lib.sh's api() with a time limit (every wait here is bounded)
api() {
  local url=$1 token=$2 method=$3 path=$4 body=${5:-}
  if [ -n "$body" ]; then
    curl -sS --max-time 15 -X "$method" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "$body" "$url$path"
  else
    curl -sS --max-time 15 -X "$method" -H "Authorization: Bearer $token" "$url$path"
  fi
}

cleanup() {
  local rc=$?
  if [ -n "$WATCHDOG" ]; then
    kill "$WATCHDOG" 2>/dev/null || true
    [ -s "$WORK/watchdog.pid" ] && kill "$(cat "$WORK/watchdog.pid")" 2>/dev/null || true
  fi
  cs_cleanup                                   # every PID in $WORK/pids
  if [ "$PG_STARTED" = 1 ]; then
    PGBIN=$PGBIN "$ROOT/scripts/pg-cluster.sh" stop "$PG_DIR" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
if [ "$KEEP" = 0 ]; then
  trap cleanup EXIT
  # the global time limit: TERM to this shell (traps run between commands;
  # every command here is bounded)
  ( sleep "$TIMEOUT" & echo $! >"$WORK/watchdog.pid"; wait $!
    echo "scale-out: FAIL: global time limit of $TIMEOUT s reached" >&2
    kill -TERM $$ ) &
  WATCHDOG=$!
fi
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- checks ----
RESULTS=()
FAILED=0
pass() { RESULTS+=("PASS  $1"); echo "  PASS: $1"; }
fail() { RESULTS+=("FAIL  $1"); echo "  FAIL: $1"; FAILED=$((FAILED + 1)); }
check() {  # check "what" CMD...: PASS when CMD exits 0
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
logs_tail() { for f in "$WORK"/*.log "$WORK"/nginx/error.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done; return 0; }
die() { echo "scale-out: $*"; logs_tail; exit 1; }

# ---------------------------------------------------------------------------
say "PostgreSQL: a throwaway cluster, and a database with bytewise collation"
PG_STARTED=1
PGURL=$(PGBIN=$PGBIN "$ROOT/scripts/pg-cluster.sh" start "$PG_DIR") || die "cannot start PostgreSQL"
psql_do() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "${PGURL}postgres" -c "$1"; }
psql_do "CREATE DATABASE ctxsync_eu TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
echo "CREATE DATABASE ctxsync_eu TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
STORE="${PGURL}ctxsync_eu"

# a database without bytewise order / UTF-8 is refused, with the fix
psql_do "CREATE DATABASE wrong_encoding TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C'"
if OUT=$("$BIN/ctxsync-node" init --store "${PGURL}wrong_encoding" --node-id x --region x --admin admin 2>&1); then
  fail "init refuses a database that is not UTF8 with C collation"
else
  echo "$OUT" | sed 's/^/  /'
  check "init refuses a database that is not UTF8 with C collation" grep -q "ENCODING 'UTF8'" <<<"$OUT"
fi

say "eu-1: init on the database (once), then three serve processes"
INIT=$("$BIN/ctxsync-node" init --store "$STORE" --node-id eu-1 --region eu --admin admin 2>>"$WORK/eu-init.log") ||
  die "init failed"
EU_TOKEN=$(printf '%s' "$INIT" | json_get token)
echo "ctxsync-node init --store $STORE --node-id eu-1 --region eu --admin admin"
NAMES=(eu-a eu-b eu-c)
declare -A PID URL
for p in "${NAMES[@]}"; do
  "$BIN/ctxsync-node" serve --store "$STORE" --listen 127.0.0.1:0 \
    --ready-file "$WORK/$p.ready" 2>>"$WORK/$p.log" &
  PID[$p]=$!
  echo "${PID[$p]}" >>"$WORK/pids"
done
for p in "${NAMES[@]}"; do
  for _ in $(seq 200); do [ -s "$WORK/$p.ready" ] && break; sleep 0.05; done
  [ -s "$WORK/$p.ready" ] || die "process $p did not start"
  URL[$p]=http://$(cat "$WORK/$p.ready")
  echo "$p: pid ${PID[$p]}, ${URL[$p]}  $(curl -s --max-time 5 "${URL[$p]}/health")"
done
same_identity() {
  local ids
  ids=$(for p in "${NAMES[@]}"; do curl -s --max-time 5 "${URL[$p]}/health" | jq_py '"%s/%s/%s" % (d["node_id"], d["region"], d["epoch"])'; done | sort -u | wc -l)
  [ "$ids" = 1 ]
}
check "the three processes are one node (same node_id, region, epoch)" same_identity

say "nginx in front of them (its own config and files in $WORK/nginx)"
mkdir -p "$WORK/nginx"
NGINX_USER=""; [ "$(id -u)" = 0 ] && NGINX_USER="user root;"
SERVERS=""
for p in "${NAMES[@]}"; do
  SERVERS+="        server ${URL[$p]#http://} max_fails=1 fail_timeout=10s;   # $p"$'\n'
done
LB=
for try in 1 2 3; do
  LB_PORT=$(free_port)
  python3 - "$HERE/nginx.conf.in" "$WORK/nginx/nginx.conf" <<PY
import sys
t = open(sys.argv[1]).read()
for k, v in {"@PREFIX@": "$WORK/nginx", "@LISTEN@": "127.0.0.1:$LB_PORT",
             "@USER@": "$NGINX_USER", "@SERVERS@": """$SERVERS""".rstrip("\n")}.items():
    t = t.replace(k, v)
open(sys.argv[2], "w").write(t)
PY
  "$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
  NGINX_PID=$!
  echo "$NGINX_PID" >>"$WORK/pids"
  for _ in $(seq 100); do
    curl -sf --max-time 2 "http://127.0.0.1:$LB_PORT/health" >/dev/null 2>&1 && { LB=http://127.0.0.1:$LB_PORT; break; }
    kill -0 "$NGINX_PID" 2>/dev/null || break      # port taken meanwhile: another one
    sleep 0.05
  done
  [ -n "$LB" ] && break
done
[ -n "$LB" ] || die "nginx did not start"
echo "balancer: $LB (nginx pid $NGINX_PID) -> ${URL[eu-a]#http://}, ${URL[eu-b]#http://}, ${URL[eu-c]#http://}"
grep -E "^ *(server 127|proxy_(buffering|http_version|read_timeout|next_upstream|set_header Connection) )" "$WORK/nginx/nginx.conf" | sed 's/^ */  /'

say "us-1 (region us, SQLite) and a bridge from the balancer's URL"
start_node us-1 us
# The agent is created through the balancer (one process); the bridge's
# requests land on the others: their permission caches reload on NOTIFY.
EU_FED=$(fed_agent "$LB" "$EU_TOKEN" fed-to-us us)
US_FED=$(fed_agent "$us_1_URL" "$us_1_TOKEN" fed-from-eu eu)
grant_everywhere() {
  local p
  for p in "${NAMES[@]}"; do
    wait_for 5 curl -sf --max-time 5 -H "Authorization: Bearer $EU_FED" "${URL[$p]}/federation/info" || return 1
    echo "  $p: GET /federation/info with the agent's token: 200"
  done
}
check "the replicate grant made through the balancer holds on all three processes" grant_everywhere
cat >"$WORK/bridge.json" <<JSON
{
  "control": "ipc://$WORK/bridge.ipc",
  "links": [
    {"name": "eu-to-us", "mode": "full", "patterns": ["**"],
     "source": {"url": "$LB", "token": "$EU_FED"},
     "target": {"url": "$us_1_URL", "token": "$US_FED"}}
  ]
}
JSON
chmod 600 "$WORK/bridge.json"
start_bridge "$WORK/bridge.json"
wait_for 20 links_live || die "the bridge's link did not become live"
echo "link eu-to-us: source $LB (the balancer), target $us_1_URL: live"

# ---------------------------------------------------------------------------
say "SSE: one client connected DIRECTLY to each process (pattern ctx://acme/**, since=0)"
for p in "${NAMES[@]}"; do
  python3 "$HERE/scaleout.py" watch "${URL[$p]}" "$EU_TOKEN" "$WORK/watch-$p.txt" --since 0 \
    2>>"$WORK/watch.log" &
  echo $! >>"$WORK/pids"
done
connected() { grep -q '^connected' "$1" 2>/dev/null; }
for p in "${NAMES[@]}"; do
  wait_for 10 connected "$WORK/watch-$p.txt" || die "SSE client of $p did not connect"
  echo "client on $p (${URL[$p]}): connected"
done
events_in() { grep -c '^event' "$@" 2>/dev/null | awk -F: '{s += $NF} END {print s + 0}'; }
has_events() { local n=$1; shift; [ "$(events_in "$@")" -ge "$n" ]; }

say "$N creates through the balancer ($PAR at a time), a /changes pager reading meanwhile"
python3 "$HERE/scaleout.py" page "$LB" "$EU_TOKEN" "$WORK/pager.json" --until "$N" --limit 7 --timeout 60 \
  2>>"$WORK/pager.log" &
PAGER=$!
echo "$PAGER" >>"$WORK/pids"
write_docs() {  # FROM TO PARALLEL: POST ctx://acme/scale/doc-I via the balancer; status codes on stdout
  seq "$1" "$2" | xargs -P "$3" -I{} curl -sS -o /dev/null -w '%{http_code}\n' --max-time 20 \
    -X POST -H "Authorization: Bearer $EU_TOKEN" -H 'Content-Type: application/json' \
    -d '{"uri":"ctx://acme/scale/doc-{}","content":"document {}, written through the balancer","summary":"doc {}"}' \
    "$LB/artifacts" || true
}
count_201() { grep -c '^201$' <<<"$1" || true; }
ACC_BEFORE=$(wc -l <"$WORK/nginx/access.log")
W0=$(date +%s.%N)
CODES=$(write_docs 1 "$N" "$PAR")
W1=$(date +%s.%N)
OK=$(count_201 "$CODES")
echo "$OK of $N answered 201 in $(python3 -c "print('%.1f s' % ($W1 - $W0))") (not a benchmark: docs/performance.md)"
[ "$OK" = "$N" ] || echo "status codes: $(sort <<<"$CODES" | uniq -c | tr '\n' ' ')"
check "$N writes through the balancer all answered 201" test "$OK" = "$N"
echo "--- which process answered them (nginx access log):"
ACC=$(tail -n +"$((ACC_BEFORE + 1))" "$WORK/nginx/access.log" | grep ' POST /artifacts ' || true)
answered_by() { awk -F'"' '{n = split($2, a, ", "); print a[n]}' <<<"$ACC"; }
upstreams() { awk -F'"' '{print $2}' <<<"$ACC" | sort | uniq -c | sed 's/^/  /'; }
upstreams
spread() {
  local p
  for p in "${NAMES[@]}"; do answered_by | grep -qx "${URL[$p]#http://}" || return 1; done
}
check "the writes were spread over all three processes" spread

say "every SSE client received every event (delay = arrival - the version's created_at)"
for p in "${NAMES[@]}"; do wait_for 20 has_events "$N" "$WORK/watch-$p.txt" || true; done
for p in "${NAMES[@]}"; do
  printf '  %s: ' "$p"
  if python3 "$HERE/scaleout.py" check-watch 1 "$N" "$WORK/watch-$p.txt"; then
    pass "SSE client on $p got seq 1..$N, in order, none twice"
  else
    fail "SSE client on $p got seq 1..$N, in order, none twice"
  fi
done

say "the change feed through the balancer has no gap"
for _ in $(seq 300); do kill -0 "$PAGER" 2>/dev/null || break; sleep 0.1; done
printf '  pager during the writes: '
check "a /changes pager (7 per page, via the balancer, during the writes) saw 1..$N without a gap" \
  python3 "$HERE/scaleout.py" check-page "$WORK/pager.json" "$N"
feed_ok() {  # feed_ok N: /changes through the balancer = seq 1..N
  api "$LB" "$EU_TOKEN" GET "/changes?since=0&limit=5000" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); s=[e["seq"] for e in d["events"]]; n=int(sys.argv[1]); print("  feed via the balancer: %d events, head %d, strictly increasing: %s" % (len(s), d["head"], all(b > a for a, b in zip(s, s[1:])))); sys.exit(0 if s == list(range(1, n + 1)) and d["head"] == n else 1)' "$1"
}
check "GET /changes via the balancer: $N events, seq 1..$N" feed_ok "$N"
CONNS=$(psql_do "SELECT count(*) FROM pg_stat_activity WHERE datname = 'ctxsync_eu'")
echo "  PostgreSQL connections to ctxsync_eu: $CONNS for 3 processes with --workers 16 (docs/scale-out.md: 3 x (16 + 4) = 60)"

say "the bridge brought everything to us-1"
us_head() { api "$us_1_URL" "$us_1_TOKEN" GET "/changes?since=0&limit=1" | jq_py 'd["head"]'; }
us_has() { [ "$(us_head)" -ge "$1" ]; }
wait_for 30 us_has "$N" || true
echo "  us-1 feed head: $(us_head)"
check "us-1 holds all $N versions" us_has "$N"
same_doc() {  # same version and content on us-1 and through the balancer
  local a b
  a=$(api "$LB" "$EU_TOKEN" GET "/artifacts?uri=$1" | jq_py '"%s %s" % (d["version_id"], d["content"])')
  b=$(api "$us_1_URL" "$us_1_TOKEN" GET "/artifacts?uri=$1" | jq_py '"%s %s" % (d["version_id"], d["content"])')
  echo "  eu (balancer): $a"
  echo "  us-1:          $b"
  [ -n "$a" ] && [ "$a" = "$b" ]
}
check "ctx://acme/scale/doc-$N is the same version on us-1" same_doc "ctx://acme/scale/doc-$N"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS" | sed 's/^/  /'

# ---------------------------------------------------------------------------
VICTIM=eu-b
say "kill -9 $VICTIM (pid ${PID[$VICTIM]}): the balancer routes around it"
kill -9 "${PID[$VICTIM]}"
ended() { grep -q '^end' "$1" 2>/dev/null; }
wait_for 10 ended "$WORK/watch-$VICTIM.txt" || true
sleep 0.5   # nginx drops its idle keep-alive connections to the dead process
echo "  the SSE client on $VICTIM: $(grep '^end' "$WORK/watch-$VICTIM.txt" | cut -d' ' -f1,2) (connection lost)"
LAST_ID=$(grep '^event' "$WORK/watch-$VICTIM.txt" | tail -n 1 | cut -d' ' -f2)
ACC_BEFORE=$(wc -l <"$WORK/nginx/access.log")
H=$((M / 2))
CODES=$(write_docs "$((N + 1))" "$((N + H))" 4)
echo "  $(count_201 "$CODES") of $H creates answered 201 while its SSE client is away"
echo "  the client reconnects through the balancer with Last-Event-ID: $LAST_ID"
python3 "$HERE/scaleout.py" watch "$LB" "$EU_TOKEN" "$WORK/watch-$VICTIM-resumed.txt" --last-event-id "$LAST_ID" \
  2>>"$WORK/watch.log" &
echo $! >>"$WORK/pids"
wait_for 10 connected "$WORK/watch-$VICTIM-resumed.txt" || true
CODES2=$(write_docs "$((N + H + 1))" "$((N + M))" 4)
CODES=$(printf '%s\n%s' "$CODES" "$CODES2")
OK=$(count_201 "$CODES")
echo "  $(count_201 "$CODES2") of $((M - H)) more creates answered 201 after it reconnected"
check "$M writes after the kill -9 all answered 201" test "$OK" = "$M"
ACC=$(tail -n +"$((ACC_BEFORE + 1))" "$WORK/nginx/access.log" | grep ' POST /artifacts ' || true)
echo "--- which process answered (\"A, B\" = A refused the connection, B answered):"
upstreams
not_answered_by_victim() { [ -n "$ACC" ] && ! answered_by | grep -qx "${URL[$VICTIM]#http://}"; }
check "no write was answered by the dead process (nginx went on to the next one)" not_answered_by_victim

say "after the kill: the SSE clients, the feed, the bridge"
TOTAL=$((N + M))
for p in eu-a eu-c; do
  wait_for 20 has_events "$TOTAL" "$WORK/watch-$p.txt" || true
  printf '  %s: ' "$p"
  if python3 "$HERE/scaleout.py" check-watch 1 "$TOTAL" "$WORK/watch-$p.txt"; then
    pass "SSE client on $p got seq 1..$TOTAL, in order, none twice"
  else
    fail "SSE client on $p got seq 1..$TOTAL, in order, none twice"
  fi
done
wait_for 20 has_events "$TOTAL" "$WORK/watch-$VICTIM.txt" "$WORK/watch-$VICTIM-resumed.txt" || true
echo "  (the client of $VICTIM: the events written while it was away count their wait in its delays)"
printf '  %s then the balancer: ' "$VICTIM"
if python3 "$HERE/scaleout.py" check-watch 1 "$TOTAL" "$WORK/watch-$VICTIM.txt" "$WORK/watch-$VICTIM-resumed.txt"; then
  pass "the client of $VICTIM, resumed via the balancer (Last-Event-ID $LAST_ID), got 1..$TOTAL without a gap or duplicate"
else
  fail "the client of $VICTIM, resumed via the balancer (Last-Event-ID $LAST_ID), got 1..$TOTAL without a gap or duplicate"
fi
check "GET /changes via the balancer: $TOTAL events, seq 1..$TOTAL" feed_ok "$TOTAL"
wait_for 30 us_has "$TOTAL" || true
echo "  us-1 feed head: $(us_head)"
check "us-1 holds all $TOTAL versions (the bridge's stream survived the kill)" us_has "$TOTAL"
check "ctx://acme/scale/doc-$TOTAL is the same version on us-1" same_doc "ctx://acme/scale/doc-$TOTAL"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS" | sed 's/^/  /'

echo "--- and with the CLI, through the balancer:"
cli_demo() {
  "$BIN/ctxsync" --url "$LB" --token "$EU_TOKEN" put ctx://acme/docs/scale-out \
    --content '"Three processes, one node."' --summary "via nginx" | sed 's/^/  /' &&
  "$BIN/ctxsync" --url "$LB" --token "$EU_TOKEN" get ctx://acme/docs/scale-out | sed 's/^/  /'
}
check "ctxsync put and get through the balancer" cli_demo

# ---------------------------------------------------------------------------
say "summary"
printf '%s\n' "${RESULTS[@]}"
if [ "$KEEP" = 1 ]; then
  cat <<EOT

running in $WORK
  balancer $LB, processes ${URL[eu-a]} ${URL[eu-c]} (eu-b was killed), us-1 $us_1_URL
  admin tokens: eu-1 $EU_TOKEN  us-1 $us_1_TOKEN
  PostgreSQL: $STORE
stop with: kill \$(cat $WORK/pids); $ROOT/scripts/pg-cluster.sh stop $PG_DIR; rm -rf $WORK
EOT
fi
if [ "$FAILED" -gt 0 ]; then
  echo "scale-out: $FAILED check(s) FAILED"
  logs_tail
  exit 1
fi
echo "scale-out: all ${#RESULTS[@]} checks passed"
