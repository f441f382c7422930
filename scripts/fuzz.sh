#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang and runs
# each for SECONDS (default 30), one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 20
#                                                   scripts/fuzz.sh 600 fuzz_ingest
#
# Seeds: tests/fuzz/corpus/<name without fuzz_>/ (read only). New inputs go
# to build-fuzz/corpus/<name>/ (kept between runs, so longer runs build on
# earlier ones); crashes, leaks and timeouts to build-fuzz/artifacts/<name>/
# (reproduce: build-fuzz/fuzz/<target> build-fuzz/artifacts/<name>/crash-...).
# Environment: BUILD_DIR (default <repo>/build-fuzz), FUZZ_JOBS (parallel
# libFuzzer workers per target, default 1), FUZZ_FLAGS (extra libFuzzer
# flags). Exit status 1 if any target found a problem. See docs/testing.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER=${1:-30}
shift || true
BUILD=${BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${FUZZ_JOBS:-1}

case $SECONDS_PER in
    ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
command -v clang >/dev/null || { echo "fuzz.sh: clang is required" >&2; exit 1; }

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCS_FUZZ=ON -DCS_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.configure.log" 2>&1 ||
    { cat "$BUILD.configure.log"; exit 1; }

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=()
    for f in "$ROOT"/tests/fuzz/fuzz_*.c; do
        TARGETS+=("$(basename "$f" .c)")
    done
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"

PAR=
[ "$JOBS" -gt 1 ] && PAR="-jobs=$JOBS -workers=$JOBS"
fail=0
summary=()
for t in "${TARGETS[@]}"; do
    name=${t#fuzz_}
    seeds=$ROOT/tests/fuzz/corpus/$name
    work=$BUILD/corpus/$name
    art=$BUILD/artifacts/$name
    mkdir -p "$work" "$art"
    [ -d "$seeds" ] || seeds=
    echo "=== $t: ${SECONDS_PER}s (seeds: ${seeds:-none})"
    set +e
    # shellcheck disable=SC2086
    "$BUILD/fuzz/$t" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 \
        -max_len=131072 -print_final_stats=1 -artifact_prefix="$art/" \
        $PAR ${FUZZ_FLAGS:-} "$work" $seeds \
        >"$BUILD/$t.log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$t.log" | awk '{s+=$2} END {print s+0}')
    cov=$(grep -o 'cov: [0-9]*' "$BUILD/$t.log" | tail -1 | awk '{print $2}')
    if [ $rc -ne 0 ] || ls "$art" | grep -q .; then
        fail=1
        summary+=("FAIL $t (rc=$rc, $runs runs): see $BUILD/$t.log and $art/")
        grep -E 'ERROR|invariant|SUMMARY|fuzz:' "$BUILD/$t.log" | head -5 || true
    else
        summary+=("ok   $t: $runs runs, cov ${cov:-?}, corpus $(ls "$work" | wc -l)")
    fi
done
echo "=== fuzz summary (${SECONDS_PER}s per target)"
printf '%s\n' "${summary[@]}"
exit $fail
