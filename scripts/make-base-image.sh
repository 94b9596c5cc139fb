#!/usr/bin/env bash
# Build the local stand-in base image dockyard-local/python:3.11-bookworm from Debian bookworm
# (python3 is 3.11 there) with debootstrap + `docker import`. Idempotent: skips when the image
# exists (set DOCKYARD_REBUILD_BASE=1 to force). Needs root, debootstrap and a running dockerd.
set -euo pipefail

IMAGE="${DOCKYARD_BASE_IMAGE:-dockyard-local/python:3.11-bookworm}"
SUITE=bookworm
start=$(date +%s)

log() { echo "[make-base-image] $*" >&2; }

if [[ "${DOCKYARD_REBUILD_BASE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE already exists; skipping"
    exit 0
fi

command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
}

# --- find the Debian mirror(s) configured in /etc/apt ----------------------------------------
# Prints "URI" lines from sources.list (one-line format) and *.sources (deb822 format).
apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk 'tolower($1)=="uris:" { for (i=2;i<=NF;i++) print $i }' "$f"
    done
}
uris=$(apt_uris | sed 's:/*$::' | awk '!seen[$0]++')
MIRROR="${DOCKYARD_DEBIAN_MIRROR:-$(grep -E '/debian$' <<<"$uris" | head -n1 || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY="$(grep -E '/debian-security$' <<<"$uris" | head -n1 || true)"
log "mirror: $MIRROR${SECURITY:+ (security: $SECURITY)}"

# --- debootstrap ---------------------------------------------------------------------------
DIR=$(mktemp -d /tmp/dockyard-rootfs.XXXXXX)
cleanup() { rm -rf --one-file-system "$DIR"; }
trap cleanup EXIT

t0=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$DIR" "$MIRROR" > "$DIR.debootstrap.log" 2>&1 || {
    log "debootstrap failed; last lines of $DIR.debootstrap.log:"
    tail -n 30 "$DIR.debootstrap.log" >&2
    exit 1
}
rm -f "$DIR.debootstrap.log"
log "debootstrap done in $(( $(date +%s) - t0 ))s"

# --- make the rootfs a usable container base ------------------------------------------------
# apt sources for later `apt-get update && apt-get install` in Dockerfile RUN steps.
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [[ -n $SECURITY ]] && echo "deb $SECURITY $SUITE-security main"
} > "$DIR/etc/apt/sources.list"
rm -f "$DIR"/etc/apt/sources.list.d/*
# Like the official Debian images: no recommends, keep the image small.
cat > "$DIR/etc/apt/apt.conf.d/90dockyard" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
# Host-specific files that docker provides at run time.
: > "$DIR/etc/resolv.conf"
: > "$DIR/etc/hostname"
rm -f "$DIR/etc/machine-id"; : > "$DIR/etc/machine-id"
# Downloaded .debs and indexes are dead weight.
rm -rf "$DIR"/var/cache/apt/archives/*.deb "$DIR"/var/cache/apt/*.bin "$DIR"/var/lib/apt/lists/* \
       "$DIR"/var/log/* "$DIR"/tmp/* 2>/dev/null || true
mkdir -p "$DIR/var/lib/apt/lists/partial"

for tool in python3 useradd groupadd sed chown id apt-get; do
    chroot "$DIR" /bin/sh -c "command -v $tool" >/dev/null || { log "rootfs lacks $tool"; exit 1; }
done

# --- import ---------------------------------------------------------------------------------
t0=$(date +%s)
tar --numeric-owner --xattrs -C "$DIR" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
log "docker import done in $(( $(date +%s) - t0 ))s"

docker run --rm "$IMAGE" python3 -c 'import venv, ssl, sys; print(sys.version.split()[0])' >&2
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')) in $(( $(date +%s) - start ))s"
