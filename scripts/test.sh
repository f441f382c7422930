#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest:
# unit tests per module + integration tests against real processes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 --timeout 600
