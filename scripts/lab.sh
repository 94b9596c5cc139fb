#!/usr/bin/env bash
# The main job on a fresh machine: Docker engine, dockyard and JupyterLab on the host (in a virtual
# environment this script creates), the environment images built, their kernelspecs installed into that
# virtual environment, then JupyterLab on 127.0.0.1.
#
#   bash scripts/lab.sh [--local-base] [--envs "minimal:cpu pytorch:cpu"] [--venv DIR] [--port N] [--no-lab]
#                       [-- jupyter lab args]
#
# Root or not: as root it also installs and starts Docker; as any other user Docker must be running and
#   the user in the `docker` group. Nothing is installed outside the virtual environment (default: .venv
#   in this checkout; --venv DIR or DOCKYARD_VENV elsewhere), so no system Python is touched and the
#   kernelspecs go where this user may write and where the environment's `jupyter` looks (its sys-prefix).
#   Later: `source .venv/bin/activate` and run `jupyter lab` or `dockyard ...`.
# --local-base: for machines that reach no container registry (our CI machines): build a Debian base
#   image locally and map the specs' upstream bases to it, trust the host's CA bundle (TLS-intercepting
#   proxy) and use this user's pip find-links directory (or DOCKYARD_WHEELHOUSE) as wheelhouse. It records these
#   site settings in the dockyard config file (when none exists) so later `dockyard` commands and the kernels agree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

local_base=0
lab=1
envs="minimal:cpu pytorch:cpu"
venv=${DOCKYARD_VENV:-$PWD/.venv}
port=${JUPYTER_PORT:-8888}
while (($#)); do
    case $1 in
        --local-base) local_base=1 ;;
        --no-lab) lab=0 ;;
        --envs) envs=$2; shift ;;
        --venv) venv=$2; shift ;;
        --port) port=$2; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "lab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'lab.sh: %s\n' "$*" >&2; exit 1; }
root=0
[[ $(id -u) == 0 ]] && root=1

if ((root)); then
    say "Docker engine"
    bash scripts/start-dockerd.sh
elif [[ -z ${DOCKER_HOST:-} ]]; then
    # Fail now, not after the installs: the engine is the one thing this script cannot set up for you.
    sock=/var/run/docker.sock
    [[ -S $sock ]] || die "no Docker engine answers at $sock. Start Docker (as root: bash scripts/start-dockerd.sh, or systemctl start docker) and run this again."
    [[ -r $sock && -w $sock ]] || die "$(id -un) may not use $sock ($(stat -c '%U:%G %a' "$sock")). Add yourself to its group (sudo usermod -aG $(stat -c %G "$sock") $(id -un)), log in again, and run this again."
fi

say "dockyard and JupyterLab on the host (virtual environment $venv)"
python=${PYTHON:-python3}
make_venv() {  # creates $venv; on failure removes what it made and prints venv's own message
    local out
    out=$("$python" -m venv "$venv" 2>&1) && return 0
    rm -rf "$venv"  # only ever one this function created: a half-made venv would pass for a whole one next time
    printf '%s\n' "$out" | tail -n 5 >&2
    return 1
}
if [[ ! -x $venv/bin/python ]]; then
    [[ -e $venv ]] && die "$venv exists but is not a virtual environment. Remove it, or pass --venv DIR (or set DOCKYARD_VENV) to use another place."
    parent=$(dirname "$venv")
    mkdir -p "$parent" 2>/dev/null && [[ -w $parent ]] ||
        die "$(id -un) may not create $venv. Clone the repository where you may write (e.g. your home), or pass --venv DIR."
    if ! make_venv; then
        ((root)) || die "'$python -m venv' failed (above). On Debian/Ubuntu: sudo apt-get install python3-venv, then run this again (or set PYTHON to another Python 3.10 or newer)."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        make_venv || die "'$python -m venv' failed (above)"
    fi
fi
py=$venv/bin/python
# From the host lock (requirements/lab.txt): the same versions for root and every user, and no Node needed.
bash scripts/install-lock.sh "$py" requirements/lab.txt || exit 1
dockyard() { "$py" -m dockyard "$@"; }

if ((local_base)); then
    say "local base image (no registry)"
    base=dockyard-local/python:3.11-bookworm
    if ((root)); then
        bash scripts/make-base-image.sh
    else
        "$py" -c 'import docker, sys; docker.from_env().images.get(sys.argv[1])' "$base" 2>/dev/null ||
            die "the local base image $base is missing and building it needs root: sudo bash scripts/make-base-image.sh, then run this again."
        echo "$base is there"
    fi
    export DOCKYARD_BASE_OVERRIDES="${DOCKYARD_BASE_OVERRIDES:-python:3.11-slim-bookworm=$base}"
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && export DOCKYARD_CA_CERTS="${DOCKYARD_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
    links=$("$py" -m pip config get global.find-links 2>/dev/null || true)
    links=${links:-${PIP_FIND_LINKS:-}}  # pip's environment variable counts too
    if [[ -n $links && -d $links ]]; then
        export DOCKYARD_WHEELHOUSE="${DOCKYARD_WHEELHOUSE:-$links}"
    fi
    # A wheelhouse here stands in for the spec's extra indexes (the PyTorch index), which such machines cannot reach,
    # whoever gives it: their pip's find-links, or DOCKYARD_WHEELHOUSE (another account's pip settings are not theirs).
    if [[ -n ${DOCKYARD_WHEELHOUSE:-} ]]; then
        export DOCKYARD_IGNORE_SPEC_INDEXES="${DOCKYARD_IGNORE_SPEC_INDEXES:-1}"
    elif [[ -z ${DOCKYARD_WHEELHOUSE:-} ]]; then
        echo "no wheelhouse: pip has no find-links directory for $(id -un) (pip config global.find-links, PIP_FIND_LINKS);" \
            "images install from the package indexes alone, which the build checks first"
    fi
    cfg=$("$py" -c 'from dockyard.paths import config_file; print(config_file())')
    if [[ ! -f $cfg ]]; then
        mkdir -p "$(dirname "$cfg")"
        "$py" - "$cfg" <<'PY'
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
dockyard build --no-kernels $envs

say "kernelspecs (those whose images are built) into $venv"
dockyard kernels install --sys-prefix
dockyard kernels list

if ((lab)); then
    say "JupyterLab on http://127.0.0.1:$port (pick a '(..., container)' kernel)"
    echo "Next time: source $venv/bin/activate && jupyter lab  (dockyard build NAME adds a kernel)"
    as_root=()
    ((root)) && as_root=(--allow-root)
    exec "$venv/bin/jupyter" lab --ip 127.0.0.1 --port "$port" --no-browser "${as_root[@]}" \
        --notebook-dir "$PWD/notebooks" "$@"
fi
