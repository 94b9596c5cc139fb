#!/usr/bin/env bash
# Install a host lock and then dockyard (editable, from this checkout) into a virtual environment:
#   bash scripts/install-lock.sh VENV_PYTHON requirements/lab.txt   (what scripts/lab.sh does)
#   bash scripts/install-lock.sh VENV_PYTHON requirements/dev.txt   (a developer's or CI's test environment)
# The lock has exact versions with hashes (pip's --require-hashes mode), so root and every user get the same bytes
# whatever their pip settings; dockyard is built with the locked hatchling (no build isolation: nothing unpinned is
# downloaded) and without Node (the panel's labextension comes built with the checkout).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=${1:?usage: install-lock.sh VENV_PYTHON LOCK}
lock=${2:?usage: install-lock.sh VENV_PYTHON LOCK}
die() { printf 'install-lock.sh: %s\n' "$*" >&2; exit 1; }

# pip trusts what the system trusts (a TLS-intercepting proxy's CA, once in the system bundle), as pip >= 24.2 does by
# itself; an older pip reads certifi's bundle unless told (Debian's own pip is patched to the system's; others are
# not). A cert the user configured wins.
bundle=/etc/ssl/certs/ca-certificates.crt
if [[ -z ${PIP_CERT:-} && -f $bundle ]] && ! "$py" -m pip config get global.cert >/dev/null 2>&1; then
    export PIP_CERT=$bundle
fi
"$py" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$lock" ||
    die "installing $lock failed (above). Behind a TLS-intercepting proxy: put its CA into the system trust store (/usr/local/share/ca-certificates/, then sudo update-ca-certificates). No access to pypi.org: point pip at a mirror (pip config set global.index-url URL)."
"$py" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . ||
    die "installing dockyard from $PWD failed (above)"
