#!/usr/bin/env bash
# Runs the fork review browser test: installs playwright-core from the
# lock file when missing (no browser download: Debian's /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "ui test: node (Node.js) is not installed"; exit 1; }
[ -x /usr/bin/chromium ] || { echo "ui test: /usr/bin/chromium is not installed (apt-get install chromium)"; exit 1; }
if [ ! -d node_modules/playwright-core ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
exec node fork_review.test.mjs
