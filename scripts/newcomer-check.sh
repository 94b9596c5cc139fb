#!/usr/bin/env bash
# The newcomer's path, proved (.ci/run's phase "newcomer"; run as root, after the engine and the local base image).
#
# A fresh unprivileged account (in the docker group) gets its own clone of this checkout and, in a login shell
# (runuser -l: an environment with nothing of root's: no proxy, CA, pip or node variables), runs
#   1. the README's first command with --no-lab (scripts/lab.sh --local-base: minimal:cpu and pytorch:cpu);
#   2. the JupyterLab that made, and a notebook on a container kernel over the REST API (scripts/run-notebook.py);
#   3. the unit half (pytest -m "not engine and not index") from a venv made from the host lock (requirements/dev.txt).
# pip's config files are off for the account (PIP_CONFIG_FILE=/dev/null): this machine's /etc/pip.conf names the
# proxy's CA, which a typical laptop's does not; what vouches for the proxy is the system trust store alone.
# pytorch:cpu needs torch 2.13.0, which on the CI machines lies only in root's pip find-links: the account is told
# where, as the README tells a user (DOCKYARD_WHEELHOUSE). After the test phase both images are built (same tags).
# The account, its home (clone, venvs, config) and its containers are removed at the end, pass or fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) == 0 ]] || { echo "newcomer-check.sh: run as root (it creates and removes an account)" >&2; exit 2; }

user=${DOCKYARD_NEWCOMER_USER:-dockyard-newcomer}
port=${DOCKYARD_NEWCOMER_PORT:-18888}
log() { echo "[newcomer] $(date +%T) $*" >&2; }
as_user() { runuser -l "$user" -c "cd ~/dockyard && export PIP_CONFIG_FILE=/dev/null && $1"; }

owned_by() {  # owned_by PID: the containers whose dockyard owner label names process PID of this host
    docker ps -a --filter label=org.dockyard.owner --format '{{.ID}} {{.Label "org.dockyard.owner"}}' |
        awk -v owner="$(hostname):$1:" 'index($2, owner) == 1 {print $1}'
}

cleanup() {
    local rc=$? pid
    if [[ -f /home/$user/lab.pid ]]; then
        pid=$(cat "/home/$user/lab.pid")
        kill "$pid" 2>/dev/null && for _ in {1..30}; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -KILL "$pid" 2>/dev/null || true
        owned_by "$pid" | xargs -r docker rm -f >/dev/null 2>&1 || true
    fi
    ((rc == 0)) || { log "JupyterLab's log (last lines):"; tail -n 40 "/home/$user/lab.log" 2>/dev/null >&2 || true; }
    userdel --force --remove "$user" 2>/dev/null || true
    exit "$rc"
}

if id "$user" >/dev/null 2>&1; then
    log "removing a leftover account $user"
    userdel --force --remove "$user"
fi
getent group docker >/dev/null || { echo "newcomer-check.sh: no docker group (start dockerd first)" >&2; exit 1; }
useradd --create-home --shell /bin/bash --groups docker "$user"
trap cleanup EXIT
log "account $user ($(id "$user"))"

# The account's own clone of what CI checked out (root's checkout may sit where the account cannot read).
git clone -q --no-hardlinks "$PWD" "/home/$user/dockyard"
git -C "/home/$user/dockyard" checkout -q --detach "$(git rev-parse HEAD)"
chown -R "$user:$user" "/home/$user/dockyard"
as_user 'env | cut -d= -f1 | sort | tr "\n" " "' | sed 's/^/[newcomer] environment: /' >&2
echo >&2

t0=$(date +%s)
wheels=${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}
wheelhouse=""
if [[ -n $wheels && -d $wheels ]]; then
    wheelhouse="DOCKYARD_WHEELHOUSE=$wheels "
fi
log "1. ${wheelhouse}bash scripts/lab.sh --local-base --no-lab"
as_user "${wheelhouse}bash scripts/lab.sh --local-base --no-lab"
log "1. done in $(($(date +%s) - t0))s"

t0=$(date +%s)
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
log "2. JupyterLab on 127.0.0.1:$port, then notebooks/common/environment.ipynb on its container kernel"
as_user "echo \$\$ > ~/lab.pid && exec .venv/bin/jupyter lab --no-browser --ip 127.0.0.1 --port $port \
    --ServerApp.port_retries=0 --IdentityProvider.token=$token --notebook-dir notebooks > ~/lab.log 2>&1" &
for _ in {1..60}; do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/api/status?token=$token" 2>/dev/null && break
    sleep 1
done
as_user ".venv/bin/python scripts/run-notebook.py http://127.0.0.1:$port $token common/environment.ipynb"
labpid=$(cat "/home/$user/lab.pid")
kill "$labpid"  # SIGTERM, as a user stops JupyterLab: it shuts its kernels down, and their containers go with them
wait
for _ in {1..15}; do [[ -z $(owned_by "$labpid") ]] && break; sleep 1; done
left=$(owned_by "$labpid")
[[ -z $left ]] || { log "container(s) of $user's JupyterLab outlived it: $left"; exit 1; }
rm -f "/home/$user/lab.pid"
log "2. done in $(($(date +%s) - t0))s"

t0=$(date +%s)
log "3. the unit half from a venv made from requirements/dev.txt"
as_user 'python3 -m venv ~/dev-venv && bash scripts/install-lock.sh ~/dev-venv/bin/python requirements/dev.txt &&
    . ~/dev-venv/bin/activate && DOCKER_HOST=unix:///nonexistent/dockyard-no-engine.sock \
    python -m pytest -q -p no:cacheprovider -m "not engine and not index"'
log "3. done in $(($(date +%s) - t0))s"
