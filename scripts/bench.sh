#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench.sh [--quick] [bench.py options]: build in Release and run every
# benchmark workload against real processes on 127.0.0.1. Prints one JSON
# line per workload and writes them to bench-results.json at the repo root.
#   --quick   small sizes, ~1 minute of workloads (CI); default: full run,
#             3 runs of each workload (not for CI)
# bench.sh --scaleout [bench_scaleout.py options]: instead, the scale-out
#   workload (1, 2, 3 node processes on one PostgreSQL vs SQLite, ~5 min;
#   needs PostgreSQL 15, see scripts/pg-cluster.sh). Prints one JSON object
#   and writes it to build-release/bench-scaleout.json.
# Environment: BENCH_TMPDIR (where data dirs go; default $TMPDIR or /tmp),
#   CS_BRIDGE_BIN (ctxsync-bridge to use; default build-release/bin/...),
#   BENCH_JOBS (build parallelism, default 2), BENCH_BIN_DIR (use the
#   ctxsync-node/ctxsync-bridge already built there instead of building the
#   project; the bench programs are always built).
# See docs/performance.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-release"
JOBS="${BENCH_JOBS:-2}"
SCRIPT="$ROOT/tests/bench/bench.py"
OUT="$ROOT/bench-results.json"
if [ "${1:-}" = "--scaleout" ]; then
    shift
    SCRIPT="$ROOT/tests/bench/bench_scaleout.py"
    OUT="$BUILD/bench-scaleout.json"
fi

BIN_DIR="${BENCH_BIN_DIR:-$BUILD/bin}"
if [ -z "${BENCH_BIN_DIR:-}" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF >/dev/null
    cmake --build "$BUILD" -j"$JOBS" >/dev/null
fi
cmake -S "$ROOT/tests/bench" -B "$BUILD/bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD/bench" -j"$JOBS" >/dev/null

TMP_ROOT="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"
PY_PID=""
cleanup() {
    # bench.py kills its own children by PID at exit; stop it if we are
    # interrupted first.
    if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
        kill -TERM "$PY_PID" 2>/dev/null || true
        wait "$PY_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

cd "$ROOT"
python3 "$SCRIPT" --bin-dir "$BIN_DIR" \
    --bench-bin-dir "$BUILD/bench" --tmp-dir "$TMP_ROOT" \
    --out "$OUT" "$@" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
exit "$RC"
