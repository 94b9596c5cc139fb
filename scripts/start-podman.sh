#!/usr/bin/env bash
# Rootless Podman for the unprivileged test account (as a user would run it; see docs/podman.md):
# Debian's podman + catatonit (the init for `init: true`) + uidmap/slirp4netns, subordinate id ranges,
# overlay storage, and `podman system service` on the account's user socket, started in the background
# (CI machines have no systemd user session). Loads the local base image from Docker (`docker save |
# podman load`: no registry). Run as root; idempotent. Prints the socket's DOCKER_HOST on success.
set -euo pipefail

NAME="${DOCKYARD_TEST_USER:-dockyard-test}"
BASE="${DOCKYARD_TEST_BASE:-dockyard-local/python:3.11-bookworm}"
log() { echo "[start-podman] $*" >&2; }

[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
id "$NAME" >/dev/null 2>&1 || { log "no account $NAME (scripts/make-test-user.sh)"; exit 1; }
USER_ID=$(id -u "$NAME")
USER_HOME=$(getent passwd "$NAME" | cut -d: -f6)
RUNTIME_DIR="/run/user/$USER_ID"
SOCK="$RUNTIME_DIR/podman/podman.sock"

pkgs=(podman catatonit uidmap slirp4netns fuse-overlayfs runc)
missing=()
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }  # not just its config left
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # A fresh machine may have no package lists yet: update once, then try again.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# Subordinate uid/gid ranges: container uids >= 1 map into them (rootless needs at least one range).
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -q "^$NAME:" "$f" || { echo "$NAME:200000:65536" >>"$f"; log "added a range for $NAME to $f"; }
done

as_user() { runuser -u "$NAME" -- env HOME="$USER_HOME" XDG_RUNTIME_DIR="$RUNTIME_DIR" "$@"; }

# Storage: without a config Debian's podman picks vfs (a full copy per layer); native overlay works
# rootless on Linux >= 5.13, fuse-overlayfs before that.
conf_dir="$USER_HOME/.config/containers"
if [[ ! -f $conf_dir/storage.conf ]]; then
    install -d -o "$NAME" -g "$NAME" "$USER_HOME/.config" "$conf_dir"
    {
        echo '[storage]'
        echo 'driver = "overlay"'
        if ! printf '%s\n' "5.13" "$(uname -r | cut -d- -f1)" | sort -V -C; then
            echo '[storage.options.overlay]'
            echo 'mount_program = "/usr/bin/fuse-overlayfs"'
        fi
    } >"$conf_dir/storage.conf"
    chown "$NAME:$NAME" "$conf_dir/storage.conf"
    log "wrote $conf_dir/storage.conf (overlay)"
fi

# Debian's default runtime crun (1.8) refuses hosts with cgroups in hybrid mode (v1 controllers plus a
# cgroup2 mount at /sys/fs/cgroup/unified, as on this CI's VMs); runc runs there.
if [[ ! -f $conf_dir/containers.conf ]] && mountpoint -q /sys/fs/cgroup/unified; then
    printf '[engine]\nruntime = "runc"\n' >"$conf_dir/containers.conf"
    chown "$NAME:$NAME" "$conf_dir/containers.conf"
    log "wrote $conf_dir/containers.conf (runc: cgroups are in hybrid mode here)"
fi

install -d -m 700 -o "$NAME" -g "$NAME" "$RUNTIME_DIR" "$RUNTIME_DIR/podman"
if ! as_user env CONTAINER_HOST="unix://$SOCK" podman --remote info >/dev/null 2>&1; then
    log "starting podman system service on $SOCK"
    rm -f "$SOCK"  # a dead service's socket file would make the new one fail to bind
    as_user podman system migrate >/dev/null 2>&1 || true  # picks up new subuid ranges
    # From /: conmon inherits the service's working directory, and fails every container start ("Failed to
    # get working directory") once that directory is gone (a CI clone removed while the service lives on).
    (cd / && as_user setsid podman system service --time=0 "unix://$SOCK" \
        >"$RUNTIME_DIR/podman-service.log" 2>&1 </dev/null &)
    for _ in $(seq 1 60); do
        [[ -S $SOCK ]] && as_user env CONTAINER_HOST="unix://$SOCK" podman --remote info >/dev/null 2>&1 && break
        sleep 0.5
    done
    [[ -S $SOCK ]] || { log "the service did not come up:"; cat "$RUNTIME_DIR/podman-service.log" >&2; exit 1; }
fi

if ! as_user podman image exists "$BASE"; then
    log "loading $BASE from Docker into $NAME's podman"
    docker save "$BASE" | as_user podman load -q >/dev/null
fi
as_user podman image exists "$BASE" || { log "$BASE did not load"; exit 1; }
log "rootless podman for $NAME: DOCKER_HOST=unix://$SOCK ($(as_user podman info --format '{{.Store.GraphDriverName}}'))"
echo "unix://$SOCK"
