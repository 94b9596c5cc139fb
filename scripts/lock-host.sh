#!/usr/bin/env bash
# Relock the host side (a developer step; needs the package index): after changing dependencies in pyproject.toml.
#   requirements/lab.txt  dockyard + JupyterLab + the build tools: what scripts/lab.sh installs
#   requirements/dev.txt  the same + the test/lint tools: what .ci/run and a developer's venv install
# Universal (every platform, Python >= 3.10) with hashes, so one file serves every host; pins already in a lock are
# kept unless --upgrade is given (uv prefers the output file's versions). torch stays out: see requirements/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
upgrade=()
[[ ${1:-} == --upgrade ]] && upgrade=(--upgrade)
compile() {  # compile OUTPUT EXTRA...
    local out=$1 extras=()
    shift
    for extra in "$@"; do extras+=(--extra "$extra"); done
    uv pip compile --quiet --universal --python-version 3.10 --generate-hashes --no-strip-extras \
        --custom-compile-command "bash scripts/lock-host.sh" "${upgrade[@]}" "${extras[@]}" \
        -o "$out" pyproject.toml requirements/build.in
}
compile requirements/lab.txt lab
compile requirements/dev.txt lab test
echo "locked: requirements/lab.txt requirements/dev.txt"
