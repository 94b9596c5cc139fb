"""Host paths named in settings and specs: what they may be before dockyard reads or mounts them.

A config file or a spec may come from someone else. A "CA certificate" that is /dev/zero, a FIFO or a 40 GB file
would be read until memory runs out (or forever); a workspace root of `/` or `/var/run` would give every kernel the
host's root file system or the engine's socket, which is root on the host. So: files are regular files of bounded
size (directories where a folder is meant), read with the bound applied again at read time; mounts refuse `/`,
system directories and anything holding the engine socket. Each refusal is one paragraph naming the setting.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError, shown

CA_FILE_MAX = 4 * 1024 * 1024  # a PEM bundle: Debian's whole store is ~220 KB
CA_DIR_MAX_FILES = 2000
WHEEL_MAX = 8 * 1024**3  # CUDA wheels reach ~3 GB
# System directories that must never be a bind mount (it would shadow the image or expose the host): these trees
# and everything below them, and the top-level-only ones themselves (folders below /home or /opt are projects).
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
    "/var/run", "/var/lib",
)  # fmt: skip
TOP_LEVEL_ONLY = ("/", "/home", "/opt", "/var")
# Where container engines listen; DOCKER_HOST's unix socket and the user's runtime directory are added at check time.
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
)


_KERNEL_FILES = ("/proc/", "/sys/", "/dev/")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: Path, origin: str, what: str, limit: int, fix: str) -> Path:
    """path, when it is a regular file (after symlinks) of at most limit bytes; else one ConfigError paragraph."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{origin}: {what} {shown(str(path))} cannot be read ({exc.strerror})", fix=fix) from None
    real = os.path.realpath(path)
    if real.startswith(_KERNEL_FILES):  # their sizes say 0 while a read may never end (or fail)
        raise ConfigError(f"{origin}: {what} {shown(str(path))} is a kernel interface, not a file", fix=fix)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{origin}: {what} {shown(str(path))} is {_kind(st.st_mode)}, not a regular file", fix=fix)
    if st.st_size > limit:
        raise ConfigError(
            f"{origin}: {what} {shown(str(path))} is {st.st_size} bytes, more than the {limit} a {what} may have",
            fix=fix,
        )
    return path


def read_bounded(path: Path, origin: str, what: str, limit: int, fix: str) -> bytes:
    """The file's bytes, never more than limit (it may have grown or been swapped since it was checked)."""
    regular_file(path, origin, what, limit, fix)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{origin}: {what} {shown(str(path))} cannot be read ({exc.strerror})", fix=fix) from None
    if len(data) > limit:
        raise ConfigError(f"{origin}: {what} {shown(str(path))} is larger than {limit} bytes", fix=fix)
    return data


def ca_source(path: Path, origin: str) -> Path:
    """A CA setting: a PEM file, or a directory (its .crt/.pem/.cer files are checked when read)."""
    fix = "give a PEM file (at most 4 MB) or a directory of PEM files, e.g. /etc/ssl/certs/ca-certificates.crt"
    try:
        is_dir = stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        is_dir = False
    if is_dir:
        return path
    return regular_file(path, origin, "CA certificate file", CA_FILE_MAX, fix)


def engine_sockets() -> list[Path]:
    found = list(ENGINE_SOCKETS)
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        found.append(host.removeprefix("unix://"))
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        found += [f"{runtime}/docker.sock", f"{runtime}/podman/podman.sock"]
    return [Path(os.path.realpath(p)) for p in found]


def mount_refusal(path: Path) -> str | None:
    """Why a host folder must not be bind-mounted into a container (None: it may be). path must be resolved."""
    text = path.as_posix()
    if text in TOP_LEVEL_ONLY or any(text == d or text.startswith(f"{d}/") for d in SYSTEM_TREES):
        return "it is a system directory (it would shadow the image or expose the host)"
    for sock in engine_sockets():
        if os.path.exists(sock) and (sock == path or path in sock.parents):
            return f"it contains the container engine's socket {sock}, which gives root on the host"
    return None


def mount_source(path: Path, origin: str, what: str) -> Path:
    """A host folder setting that is bind-mounted into containers: one ConfigError paragraph when mount_refusal."""
    reason = mount_refusal(Path(os.path.realpath(path)))
    if reason:
        raise ConfigError(
            f"{origin}: {what} {shown(str(path))} cannot be mounted into kernels: {reason}",
            fix=f"choose a project folder for the {what} (e.g. your home directory or a folder in it)",
        )
    return path


def private_dirs() -> list[Path]:
    """Folders holding the user's keys and every kernel's HMAC key: never mounted into a kernel, nor read as a secret
    a spec names (a spec may come from someone else; the kernel runs its author's packages)."""
    from jupyter_core.paths import jupyter_runtime_dir  # imported late: hostfiles is on every command's path

    home = Path.home()
    found = [home / ".ssh", home / ".gnupg", home / ".docker", Path(jupyter_runtime_dir())]
    return [Path(os.path.realpath(p)) for p in found]


def private_refusal(path: Path) -> str | None:
    """Why a resolved host path must not reach a kernel: it is, holds or lies in a private folder (None: it may)."""
    for private in private_dirs():
        if path == private or private in path.parents or path in private.parents:
            return f"it is, holds or lies in {private}, where the user's keys (or the kernels' connection keys) live"
    return None
