#!/bin/sh
# Installs the browser test's npm packages (playwright-core, pinned in
# package.json and package-lock.json) into test/browser/node_modules, once.
# The browser itself is Debian's chromium (scripts/deps.sh), never a
# download of playwright's own.
set -eu
cd "$(dirname "$0")"
if [ -d node_modules/playwright-core ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || {
    echo "setup.sh: npm is missing (make deps installs it: apt-get install nodejs npm)" >&2
    exit 1
}
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing,
# but say so in case a future version tries.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
