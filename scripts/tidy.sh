#!/usr/bin/env bash
# Runs clang-tidy (checks in .clang-tidy, warnings are errors) over every C
# source of the programs, using $BUILD_DIR/compile_commands.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/compile_commands.json" ] || scripts/build.sh
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is not installed"; exit 1; }
mapfile -t files < <(python3 - "$BUILD_DIR" <<'PY'
import json, os, sys
root = os.getcwd()
seen = set()
for e in json.load(open(os.path.join(sys.argv[1], "compile_commands.json"))):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if f.split("/")[0] in ("core", "node", "cli", "bridge") and f not in seen:
        seen.add(f)
        print(f)
PY
)
log=$(mktemp)
rc=0
printf '%s\n' "${files[@]}" | xargs -P 2 -n 4 clang-tidy -p "$BUILD_DIR" --quiet >"$log" 2>/dev/null || rc=$?
if grep -E "warning:|error:" "$log"; then
  echo "tidy: findings above (${#files[@]} files checked)"
  rm -f "$log"
  exit 1
fi
rm -f "$log"
[ "$rc" -eq 0 ] || { echo "tidy: clang-tidy failed (exit $rc)"; exit 1; }
echo "tidy: clean (${#files[@]} files)"
