#!/usr/bin/env bash
# Installs the Debian (bookworm) packages ContextSync needs to build and
# test. Idempotent: does nothing when everything is present. Run as root
# (or with sudo available).
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang clang-tidy
      libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libjansson-dev
      libnng-dev libssl-dev
      python3 curl diffutils patch ca-certificates procps)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
