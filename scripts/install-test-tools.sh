#!/usr/bin/env bash
# Install the tools the tests drive from outside Python: Debian's docker-compose (1.29, for `dockyard compose`;
# Compose v2 is not packaged for bookworm), Debian's Chromium for the panel's browser tests (Playwright, from the
# test extras, drives it: it cannot download its own browsers here), and, pinned, into the git-ignored .tools/,
# the dev containers CLI (@devcontainers/cli, what VS Code's "Reopen in Container" uses).
# Idempotent (a no-op when the pinned version is there). Prints the CLI's path on stdout.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEVCONTAINERS_CLI_VERSION="${DEVCONTAINERS_CLI_VERSION:-0.89.0}"
PREFIX="$PWD/.tools"
BIN="$PREFIX/node_modules/.bin/devcontainer"
log() { echo "[install-test-tools] $*" >&2; }

if ! command -v docker-compose >/dev/null; then
    log "installing docker-compose (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >&2; }
fi
docker-compose version >&2

command -v npm >/dev/null || { log "npm not found: install Node.js 20+ (apt-get install -y nodejs npm)"; exit 1; }
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) == 0 ]]; then
        log "installing Debian's chromium (the panel's browser tests)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    else
        log "no /usr/bin/chromium: the browser tests will skip (as root: apt-get install -y chromium)"
    fi
fi
installed=$(node -p "require('$PREFIX/node_modules/@devcontainers/cli/package.json').version" 2>/dev/null || true)
if [[ $installed != "$DEVCONTAINERS_CLI_VERSION" ]]; then
    log "installing @devcontainers/cli@$DEVCONTAINERS_CLI_VERSION into $PREFIX"
    mkdir -p "$PREFIX"
    # --prefix keeps it out of the repo's (absent) package.json and out of global node_modules.
    npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error \
        "@devcontainers/cli@$DEVCONTAINERS_CLI_VERSION" >&2
fi
# The tests run the CLI as an unprivileged user too: make the tree readable and traversable.
chmod -R a+rX "$PREFIX"
"$BIN" --version >/dev/null
echo "$BIN"
