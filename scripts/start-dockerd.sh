#!/usr/bin/env bash
# Start a Docker daemon in the background on this (systemd-less) machine, if none answers.
# Idempotent: exits 0 at once when `docker info` already works.
# Env: DOCKERD_LOG (default /var/log/dockerd.log), DOCKERD_WAIT (seconds, default 60),
#      DOCKERD_EXTRA_FLAGS (appended to the dockerd command line).
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT="${DOCKERD_WAIT:-60}"
log() { echo "[start-dockerd] $*" >&2; }

if docker info >/dev/null 2>&1; then
    log "docker daemon already answering ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    log "no daemon answers and we are not root: cannot start dockerd"
    exit 1
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
fi
# Debian's docker.io also ships the CLI; a newer CLI earlier on PATH (e.g. /usr/local/bin/docker)
# is fine: it negotiates the API down to the daemon's (1.41 for 20.10).
command -v docker >/dev/null || { log "no docker CLI on PATH"; exit 1; }

getent group docker >/dev/null || groupadd --system docker

# --- flags ------------------------------------------------------------------------------------
flags=(--group docker)
# Match the bridge MTU to the uplink so that large HTTPS transfers from containers do not stall
# when the uplink MTU is below docker's default 1500.
uplink=$(ip -o route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}')
if [[ -n $uplink && -r /sys/class/net/$uplink/mtu ]]; then
    mtu=$(cat "/sys/class/net/$uplink/mtu")
    if ((mtu > 0 && mtu < 1500)); then flags+=(--mtu "$mtu"); fi
fi
# Storage driver: overlay2 when the kernel supports it on this filesystem, else vfs (slow, but works
# everywhere). Overridable with DOCKERD_STORAGE_DRIVER.
if [[ -n ${DOCKERD_STORAGE_DRIVER:-} ]]; then
    storage_candidates=("$DOCKERD_STORAGE_DRIVER")
elif grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
    storage_candidates=(overlay2 vfs)
else
    storage_candidates=(vfs)
fi
# shellcheck disable=SC2206
extra=(${DOCKERD_EXTRA_FLAGS:-})

# --- start ------------------------------------------------------------------------------------
start_daemon() {  # $1 = storage driver; returns 0 once `docker info` answers
    local driver=$1 pid i
    # Stale pid file from a dead daemon blocks a new one.
    if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    log "starting: dockerd ${flags[*]} --storage-driver $driver ${extra[*]} (log: $LOG)"
    echo "=== $(date -Is) dockerd ${flags[*]} --storage-driver $driver ${extra[*]}" >> "$LOG"
    setsid nohup dockerd "${flags[@]}" --storage-driver "$driver" "${extra[@]}" >> "$LOG" 2>&1 < /dev/null &
    pid=$!
    for ((i = 0; i < WAIT; i++)); do
        if docker info >/dev/null 2>&1; then
            log "dockerd (pid $pid) ready after ${i}s: $(docker info -f 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}})' 2>/dev/null)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited during startup with storage driver $driver"
            return 1
        fi
        sleep 1
    done
    log "dockerd did not answer within ${WAIT}s; stopping it"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

mkdir -p "$(dirname "$LOG")"
for driver in "${storage_candidates[@]}"; do
    if start_daemon "$driver"; then
        # The socket must be usable by the docker group (unprivileged test account).
        sock=/var/run/docker.sock
        if [[ -S $sock && $(stat -c %G "$sock") != docker ]]; then
            chgrp docker "$sock" && chmod 660 "$sock"
        fi
        exit 0
    fi
done

log "FAILED to start dockerd. Last lines of $LOG:"
tail -n 40 "$LOG" >&2
exit 1
