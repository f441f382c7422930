#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the EU<->US demo
# (examples/eu-us/run.sh): two regions, a bidirectional bridge, replication
# both ways, and a fork flagged the same way in both regions.
#   scripts/demo.sh [--keep]   (--keep leaves the nodes and bridge running)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec examples/eu-us/run.sh "$@"
