#!/usr/bin/env bash
# Installs the Debian (bookworm) packages ContextSync needs to build and
# test. Idempotent: does nothing when everything is present. Run as root
# (or with sudo available).
#
# PostgreSQL 15 and nginx are installed as programs only: the tests start
# their own throwaway cluster (scripts/pg-cluster.sh) and never use the
# system services, so this script keeps the packages' maintainer scripts
# from starting them (a temporary /usr/sbin/policy-rc.d, the Debian way)
# and enables nothing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang clang-tidy libclang-rt-14-dev
      libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libjansson-dev
      libnng-dev libssl-dev libgnutls28-dev
      postgresql-15 postgresql-client-15 libpq-dev   # the PostgreSQL store (issue 10)
      nginx                                          # scale-out example (several nodes, one database)
      python3 curl diffutils patch ca-certificates procps
      chromium)   # the fork review page's browser test (tests/ui)
missing=()
# Node.js for the browser test: any >= 18 on PATH will do; else Debian's.
command -v node >/dev/null || missing+=(nodejs npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
# No service may start during the install (postgresql-15 would start a
# "main" cluster on port 5432, nginx a server on port 80): policy-rc.d
# exit 101 = "action forbidden" for invoke-rc.d. Only ours is removed.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, scripts/install-deps.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
