#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (ctest:
# unit tests per module + integration tests against real processes, the
# integration suites a second time against PostgreSQL: label pg).
# CS_TEST_PG=ON: the pg tests are required (configuring fails with a clear
# message if PostgreSQL 15 is missing); pass -DCS_TEST_PG=OFF to drop them.
# CS_CTEST_ARGS: extra ctest arguments (word-split), e.g. "-LE pg".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DCS_TEST_PG=ON "$@"
BUILD_DIR=${BUILD_DIR:-build}
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 --timeout 600 ${CS_CTEST_ARGS:-}
