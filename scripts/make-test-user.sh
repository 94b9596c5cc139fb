#!/usr/bin/env bash
# Create the unprivileged account used to exercise UID mapping (CI otherwise runs as root):
# dockyard-test, uid/gid 1234, home /home/dockyard-test, member of group docker. Idempotent.
set -euo pipefail

NAME="${DOCKYARD_TEST_USER:-dockyard-test}"
ID="${DOCKYARD_TEST_UID:-1234}"
log() { echo "[make-test-user] $*" >&2; }

getent group docker >/dev/null || groupadd --system docker

if ! getent group "$NAME" >/dev/null; then
    if getent group "$ID" >/dev/null; then
        log "gid $ID is taken by group $(getent group "$ID" | cut -d: -f1)"; exit 1
    fi
    groupadd --gid "$ID" "$NAME"
fi
if ! id "$NAME" >/dev/null 2>&1; then
    if getent passwd "$ID" >/dev/null; then
        log "uid $ID is taken by user $(getent passwd "$ID" | cut -d: -f1)"; exit 1
    fi
    useradd --uid "$ID" --gid "$ID" --home-dir "/home/$NAME" --create-home --shell /bin/bash "$NAME"
fi
[[ $(id -u "$NAME") == "$ID" && $(id -g "$NAME") == "$ID" ]] || {
    log "$NAME exists but is not $ID:$ID ($(id "$NAME"))"; exit 1; }
id -nG "$NAME" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$NAME"

sock=/var/run/docker.sock
if [[ -S $sock ]]; then
    [[ $(stat -c %G "$sock") == docker ]] || { chgrp docker "$sock"; chmod 660 "$sock"; }
    su "$NAME" -s /bin/bash -c 'docker ps -q >/dev/null' || {
        log "$NAME cannot use $sock ($(stat -c '%U:%G %a' "$sock"))"; exit 1; }
    log "$NAME ($(id "$NAME")) can use the docker socket"
else
    log "$NAME ready ($(id "$NAME")); no docker socket yet to check"
fi
