#!/usr/bin/env bash
# Soak test (not in the default CI run): bidirectional replication at a
# steady rate with periodic kills and partitions for SECONDS (default 600),
# then a report of events lost (must be 0), duplicates (0), max lag and the
# RSS growth of a node and the bridge (must be flat). See tests/fault/soak.py
# and docs/testing.md.
#
#   scripts/soak.sh [SECONDS] [soak.py options...]    e.g. scripts/soak.sh 600
#
# BUILD_DIR (default <repo>/build) is built first; CS_BIN_DIR overrides the
# binaries used. The report is also written to $BUILD_DIR/soak-report.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${1:-600}
shift || true
BUILD=${BUILD_DIR:-$ROOT/build}
if [ -z "${CS_BIN_DIR:-}" ]; then
    cmake -S "$ROOT" -B "$BUILD" >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target ctxsync-node ctxsync-bridge >/dev/null
    export CS_BIN_DIR=$BUILD/bin
fi
exec python3 "$ROOT/tests/fault/soak.py" --duration "$DURATION" \
    --json "$BUILD/soak-report.json" "$@"
