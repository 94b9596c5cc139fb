#!/usr/bin/env bash
# The main job on a fresh machine: Docker engine, dockyard and JupyterLab on the host, the
# environment images built, their kernelspecs installed, then JupyterLab on 127.0.0.1.
#
#   bash scripts/lab.sh [--local-base] [--envs "minimal:cpu pytorch:cpu"] [--no-lab] [-- jupyter lab args]
#
# --local-base: for machines that reach no container registry (our CI machines): build a Debian base
#   image locally and map the specs' upstream bases to it, trust the host's CA bundle (TLS-intercepting
#   proxy) and use the host pip's find-links directory as wheelhouse. It records these site settings in
#   the dockyard config file (when none exists) so later `dockyard` commands and the kernels agree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

local_base=0
lab=1
envs="minimal:cpu pytorch:cpu"
while (($#)); do
    case $1 in
        --local-base) local_base=1 ;;
        --no-lab) lab=0 ;;
        --envs) envs=$2; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "lab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '\n=== %s\n' "$*"; }

if [[ $(id -u) == 0 ]]; then
    say "Docker engine"
    bash scripts/start-dockerd.sh
fi

say "dockyard and JupyterLab on the host"
if ! python3 -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip >/dev/null
fi
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q -e . jupyterlab ipywidgets
dockyard() { python3 -m dockyard "$@"; }

if ((local_base)); then
    say "local base image (no registry)"
    bash scripts/make-base-image.sh
    export DOCKYARD_BASE_OVERRIDES="${DOCKYARD_BASE_OVERRIDES:-python:3.11-slim-bookworm=dockyard-local/python:3.11-bookworm}"
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && export DOCKYARD_CA_CERTS="${DOCKYARD_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
    links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
    links=${links:-${PIP_FIND_LINKS:-}}  # pip's environment variable counts too
    if [[ -n $links && -d $links ]]; then
        export DOCKYARD_WHEELHOUSE="${DOCKYARD_WHEELHOUSE:-$links}"
        export DOCKYARD_IGNORE_SPEC_INDEXES="${DOCKYARD_IGNORE_SPEC_INDEXES:-1}"
    fi
    cfg=$(python3 -c 'from dockyard.paths import config_file; print(config_file())')
    if [[ ! -f $cfg ]]; then
        mkdir -p "$(dirname "$cfg")"
        python3 - "$cfg" <<'PY'
import os, sys, yaml
build = {}
if os.environ.get("DOCKYARD_CA_CERTS"):
    build["ca_certs"] = os.environ["DOCKYARD_CA_CERTS"].split(os.pathsep)
if os.environ.get("DOCKYARD_WHEELHOUSE"):
    build["wheelhouse"] = os.environ["DOCKYARD_WHEELHOUSE"]
    build["ignore_spec_indexes"] = os.environ.get("DOCKYARD_IGNORE_SPEC_INDEXES") == "1"
build["pull"] = "never"  # no registry here: never try one
overrides = dict(item.split("=", 1) for item in os.environ["DOCKYARD_BASE_OVERRIDES"].split(","))
with open(sys.argv[1], "w") as f:
    f.write("# Written by scripts/lab.sh --local-base: site settings for a machine without a registry.\n")
    yaml.safe_dump({"build": build, "base_overrides": overrides}, f, sort_keys=True)
PY
        echo "site settings recorded in $cfg"
    fi
fi

say "doctor"
dockyard doctor || true

say "images: $envs"
# shellcheck disable=SC2086  # a list of refs
dockyard build $envs

say "kernelspecs"
dockyard kernels install --sys-prefix
dockyard kernels list

if ((lab)); then
    say "JupyterLab on http://127.0.0.1:8888 (pick a '(..., container)' kernel)"
    root=()
    [[ $(id -u) == 0 ]] && root=(--allow-root)
    exec python3 -m jupyter lab --ip 127.0.0.1 --port 8888 --no-browser "${root[@]}" --notebook-dir "$PWD/notebooks" "$@"
fi
