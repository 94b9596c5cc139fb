#!/usr/bin/env bash
# A developer step: rebuild the panel's labextension (dockyard/frontends/panel/labextension, checked in, so that
# installing from a clone needs neither Node nor npm) from its sources in extension/, and record the sources' hashes
# in the tree (sources.sha256; tests/test_labextension.py checks them offline, so an unrebuilt change fails).
#
#   bash scripts/build-labextension.sh           rebuild the checked-in tree
#   bash scripts/build-labextension.sh --check   rebuild elsewhere and compare byte for byte; exit 1 when they differ
#   bash scripts/build-labextension.sh --check-sources   offline (the pre-commit hook): extension/ unchanged since the build
#
# Needs Node 18+, jlpm (JupyterLab's yarn: pip install -r requirements/dev.txt) and the npm registry; behind a
# TLS-intercepting proxy Node needs the CA too: export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt.
# The build runs in one fixed directory: the bundler (rspack) numbers the exposed module from its absolute path, so the
# same sources give the same bytes only when built at the same path. Measured: identical trees from two clones.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
check=0
[[ ${1:-} == --check ]] && check=1
TREE=dockyard/frontends/panel/labextension
SOURCES=(package.json yarn.lock .yarnrc.yml tsconfig.json src)
BUILD_ROOT=${DOCKYARD_LABEXTENSION_BUILD_ROOT:-/tmp/dockyard-labextension-build}
log() { echo "[build-labextension] $*" >&2; }

if [[ ${1:-} == --check-sources ]]; then
    listed=$(cut -d' ' -f3- "$TREE/sources.sha256")
    present=$(cd extension && find "${SOURCES[@]}" -type f | LC_ALL=C sort)
    if [[ $listed == "$present" ]] && (cd extension && sha256sum --quiet --strict -c "../$TREE/sources.sha256" >&2); then
        exit 0
    fi
    log "extension/ changed since $TREE was built: run bash scripts/build-labextension.sh and commit the result"
    exit 1
fi

command -v jlpm >/dev/null || { log "jlpm not found: pip install -r requirements/dev.txt (JupyterLab ships it)"; exit 1; }
mkdir -p "$BUILD_ROOT"
exec 9>"$BUILD_ROOT.lock"
flock 9  # one build at a time in the fixed directory
# Fresh sources every time; node_modules is kept between runs (jlpm install --immutable then only verifies it).
rm -rf "$BUILD_ROOT/dockyard" "$BUILD_ROOT/extension/src"
mkdir -p "$BUILD_ROOT/extension" "$BUILD_ROOT/$(dirname "$TREE")"
for source in "${SOURCES[@]}"; do cp -R "extension/$source" "$BUILD_ROOT/extension/"; done
(
    cd "$BUILD_ROOT/extension"
    log "jlpm install (npm registry; node_modules kept in $BUILD_ROOT)"
    jlpm install --immutable >/dev/null
    log "jlpm build:prod"
    jlpm build:prod >/dev/null
)
# The hashes of the sources the tree was built from, in sha256sum's format (`sha256sum -c` reads it).
(cd extension && find "${SOURCES[@]}" -type f | LC_ALL=C sort | xargs sha256sum) >"$BUILD_ROOT/$TREE/sources.sha256"

if ((check)); then
    # A check (tests, CI) leaves nothing behind outside the checkout; a developer's rebuild keeps node_modules.
    trap 'rm -rf "$BUILD_ROOT"' EXIT
    if ! diff -r "$BUILD_ROOT/$TREE" "$TREE" >&2; then
        log "$TREE differs from a fresh build of extension/: run bash scripts/build-labextension.sh and commit the result"
        exit 1
    fi
    log "$TREE matches a fresh build of extension/"
else
    rm -rf "$TREE"
    cp -R "$BUILD_ROOT/$TREE" "$TREE"
    log "rebuilt $TREE (commit it)"
fi
