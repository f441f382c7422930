#!/usr/bin/env bash
# Installs the Debian (bookworm) packages ContextSync needs to build and
# test. Idempotent: does nothing when everything is present. Run as root
# (or with sudo available).
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang clang-tidy libclang-rt-14-dev
      libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libjansson-dev
      libnng-dev libssl-dev libgnutls28-dev
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
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
