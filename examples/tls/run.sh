#!/usr/bin/env bash
# EU <-> US over mutual TLS: a private CA made with openssl, two nodes that
# serve HTTPS and refuse at the handshake any client without a certificate
# from that CA, a bidirectional bridge and the CLI with client
# certificates, a certificate renewal on SIGHUP while the bridge streams,
# and a rotation of a federation token without downtime.
#   examples/tls/run.sh [--keep]   (--keep: leave everything running)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CS_BIN_DIR:-$ROOT/build/bin}
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
[ -x "$BIN/ctxsync-bridge" ] || { echo "build first: scripts/build.sh"; exit 1; }
command -v openssl >/dev/null || { echo "openssl is needed"; exit 1; }
WORK=$(mktemp -d /tmp/ctxsync-tls.XXXXXX)
. "$ROOT/examples/lib.sh"
if [ "$KEEP" = 0 ]; then trap 'cs_cleanup; rm -rf "$WORK"' EXIT; fi
trap 'exit 130' INT TERM
PKI=$WORK/pki
mkdir -m 700 "$PKI"

# ---- a private CA and certificates ---------------------------------------
# issue NAME CN server|client: NAME.pem + NAME.key signed by the CA (90 days;
# server certificates name 127.0.0.1 and localhost).
issue() {
  local name=$1 cn=$2 kind=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "/CN=$cn" 2>/dev/null
  chmod 600 "$PKI/$name.key"
  if [ "$kind" = server ]; then
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
  else
    printf 'extendedKeyUsage=clientAuth\n'
  fi >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 90 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem" 2>/dev/null
}

say "a private CA, server certificates for eu-1 and us-1, client certificates"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$PKI/ca.key" -out "$PKI/ca.pem" -days 365 -subj "/CN=ContextSync demo CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
chmod 600 "$PKI/ca.key"
issue eu-1 eu-1 server
issue us-1 us-1 server
issue bridge ctxsync-bridge client
issue ops operator client
for c in eu-1 us-1 bridge ops; do
  printf '%-7s %s\n' "$c" "$(openssl x509 -in "$PKI/$c.pem" -noout -subject -enddate | tr '\n' ' ')"
done

# every request of this script presents the operator's client certificate
api() {
  local url=$1 token=$2 method=$3 path=$4 body=${5:-}
  local tls=(--cacert "$PKI/ca.pem" --cert "$PKI/ops.pem" --key "$PKI/ops.key")
  if [ -n "$body" ]; then
    curl -sS "${tls[@]}" -X "$method" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -d "$body" "$url$path"
  else
    curl -sS "${tls[@]}" -X "$method" -H "Authorization: Bearer $token" "$url$path"
  fi
}
export CTXSYNC_CA=$PKI/ca.pem CTXSYNC_CERT=$PKI/ops.pem CTXSYNC_KEY=$PKI/ops.key
CS="$BIN/ctxsync"

# start_tls_node NAME REGION: init + serve HTTPS with mutual TLS.
start_tls_node() {
  local name=$1 region=$2 var=${1//-/_} init
  init=$("$BIN/ctxsync-node" init --data "$WORK/$name" --node-id "$name" --region "$region" --admin admin 2>>"$WORK/$name.log")
  "$BIN/ctxsync-node" serve --data "$WORK/$name" --listen 127.0.0.1:0 \
    --ready-file "$WORK/$name.ready" --tls-cert "$PKI/$name.pem" \
    --tls-key "$PKI/$name.key" --tls-client-ca "$PKI/ca.pem" 2>>"$WORK/$name.log" &
  echo $! >>"$WORK/pids"
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 200); do [ -s "$WORK/$name.ready" ] && break; sleep 0.05; done
  [ -s "$WORK/$name.ready" ] || { echo "node $name did not start; log:"; tail "$WORK/$name.log"; return 1; }
  printf -v "${var}_URL" 'https://%s' "$(cat "$WORK/$name.ready")"
  printf -v "${var}_TOKEN" '%s' "$(printf '%s' "$init" | json_get token)"
  echo "$name ($region) listening on https://$(cat "$WORK/$name.ready") (mutual TLS)"
}

say "two regions serving HTTPS with mutual TLS"
start_tls_node eu-1 eu
start_tls_node us-1 us
export CTXSYNC_TOKEN=

say "refused at the handshake: no client certificate, or plain HTTP"
curl -sS --cacert "$PKI/ca.pem" "$eu_1_URL/health" 2>&1 | sed 's/^/  no client cert: /' || true
curl -sS "http://${eu_1_URL#https://}/health" 2>&1 | sed 's/^/  plain http:     /' || true
echo "  with the operator's certificate:"
api "$eu_1_URL" "" GET /health; echo
sleep 0.3
grep -h 'TLS-REFUSED' "$WORK/eu-1.log" | sed 's/^/  eu-1 log: /' || true

say "federation agents (replicate only); tokens in files readable by the bridge only"
fed_agent "$eu_1_URL" "$eu_1_TOKEN" fed-to-us us >"$WORK/eu-fed.token"
fed_agent "$us_1_URL" "$us_1_TOKEN" fed-to-eu eu >"$WORK/us-fed.token"
chmod 600 "$WORK/eu-fed.token" "$WORK/us-fed.token"

say "a bidirectional bridge over mutual TLS (ca, cert, key per end)"
end() { printf '{"url": "%s", "token_file": "%s", "ca": "%s", "cert": "%s", "key": "%s"}' \
  "$1" "$2" "$PKI/ca.pem" "$PKI/bridge.pem" "$PKI/bridge.key"; }
cat >"$WORK/bridge.json" <<JSON
{
  "control": "ipc://$WORK/bridge.ipc",
  "links": [
    {"name": "eu-to-us", "mode": "full", "patterns": ["**"],
     "source": $(end "$eu_1_URL" "$WORK/eu-fed.token"),
     "target": $(end "$us_1_URL" "$WORK/us-fed.token")},
    {"name": "us-to-eu", "mode": "full", "patterns": ["**"],
     "source": $(end "$us_1_URL" "$WORK/us-fed.token"),
     "target": $(end "$eu_1_URL" "$WORK/eu-fed.token")}
  ]
}
JSON
chmod 600 "$WORK/bridge.json"
start_bridge "$WORK/bridge.json"
echo $! >"$WORK/bridge.pid"
wait_for 20 links_live

say "write in the EU, read in the US (and back), all over HTTPS"
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
echo "--- ctxsync status over https:"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" status
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS"

say "renew eu-1's certificate: new files + SIGHUP, no connection dropped"
serial() { openssl s_client -connect "${eu_1_URL#https://}" -CAfile "$PKI/ca.pem" \
  -cert "$PKI/ops.pem" -key "$PKI/ops.key" </dev/null 2>/dev/null | openssl x509 -noout -serial; }
echo "before: $(serial)"
issue eu-1 eu-1 server          # same paths, new certificate and key
kill -HUP "$(cat "$WORK/eu-1.pid")"
sleep 0.5
echo "after:  $(serial)"
grep -h 'TLS-RELOAD' "$WORK/eu-1.log" | sed 's/^/  eu-1 log: /'
"$CS" --url "$eu_1_URL" --token "$eu_1_TOKEN" put ctx://acme/docs/handbook \
  --content '"Welcome to ACME.\nWe ship on Fridays.\nRenewed certificates do not stop us.\n"' \
  --summary "after the renewal"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/docs/handbook
echo "the bridge's stream from eu-1 (opened before the renewal) delivered it:"
"$BIN/ctxsync-bridge" status --status "$BRIDGE_STATUS"

say "rotate us-1's federation token without downtime"
OLD_ID=$(api "$us_1_URL" "$us_1_TOKEN" GET /actors/fed-to-eu/tokens | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"][0]["token_id"])')
api "$us_1_URL" "$us_1_TOKEN" POST /actors/fed-to-eu/tokens '{}' | json_get token >"$WORK/us-fed.token.new"
chmod 600 "$WORK/us-fed.token.new"
mv "$WORK/us-fed.token.new" "$WORK/us-fed.token"     # two valid tokens now
echo "1. new token issued and written to the token file (the old one still works)"
kill "$(cat "$WORK/bridge.pid")"; wait "$(cat "$WORK/bridge.pid")" 2>/dev/null || true
rm -f "$WORK/bridge.ready"
start_bridge "$WORK/bridge.json"
echo $! >"$WORK/bridge.pid"
wait_for 20 links_live
echo "2. bridge restarted with the new token: links live"
api "$us_1_URL" "$us_1_TOKEN" DELETE "/actors/fed-to-eu/tokens/$OLD_ID" >/dev/null
echo "3. old token $OLD_ID revoked"
"$CS" --url "$us_1_URL" --token "$us_1_TOKEN" put ctx://acme/decisions/pricing \
  --content '{"plan":"per-seat","currency":"USD","annual_discount":0.1}' --summary "after rotation"
wait_for 20 same_head "$eu_1_URL" "$eu_1_TOKEN" "$us_1_URL" "$us_1_TOKEN" ctx://acme/decisions/pricing
echo "4. replication goes on"

say "no token in any log"
leaks=0
for t in "$eu_1_TOKEN" "$us_1_TOKEN" "$(cat "$WORK/eu-fed.token")" "$(cat "$WORK/us-fed.token")"; do
  if grep -rlF -- "$t" "$WORK"/*.log; then leaks=1; fi
done
[ "$leaks" = 0 ] && echo "searched eu-1.log, us-1.log, bridge.log: no token found"

if [ "$KEEP" = 1 ]; then
  echo
  echo "running in $WORK (CA and certificates in $PKI)"
  echo "  export CTXSYNC_CA=$PKI/ca.pem CTXSYNC_CERT=$PKI/ops.pem CTXSYNC_KEY=$PKI/ops.key"
  echo "  $CS --url $eu_1_URL --token $eu_1_TOKEN status"
  echo "stop with: kill \$(cat $WORK/pids)"
fi
[ "$leaks" = 0 ]
