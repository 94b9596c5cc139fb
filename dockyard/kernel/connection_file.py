"""The kernel's connection file on the host: which file a container mounts, and new ports after a port race.

The connection file holds the HMAC key, so it reaches the container only as a read-only bind mount
(never in env or argv), and a private copy is mode 600 next to the KernelManager's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo, LocalPortCache

from .container import PORT_NAMES


def for_container(original: Path, network: str, curve: bool) -> tuple[Path, bool, bool]:
    """The host file to mount at CONNECTION_FILE, whether the kernel may write it, and whether it is a private
    copy (the caller removes that one when the kernel goes).

    Normally the KernelManager's own file, read-only. A private copy (mode 600, next to it) when the kernel
    needs different content or write access: in bridge mode it must bind 0.0.0.0 *inside* its network
    namespace (the host side stays 127.0.0.1); with CurveZMQ keys ipykernel (7.4) rewrites its connection
    file at start (it compares str keys from the file with bytes), which fails on a read-only mount.
    """
    original = Path(os.path.realpath(original))
    if network != "bridge" and not curve:
        return original, False, False
    info = json.loads(original.read_text())
    if network == "bridge":
        info["ip"] = "0.0.0.0"
    path = original.with_name(f"{original.stem}-dockyard.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    return path, curve, True


def session_of(path: str) -> str:
    """The jupyter_session a connection file records (kept when the file is written again)."""
    return str(json.loads(Path(path).read_text()).get("jupyter_session", ""))


def rewrite_with_new_ports(km: Any, session: str, *, cached: bool) -> KernelConnectionInfo:
    """Give the KernelManager new ports and write its connection file again, as LocalProvisioner.pre_launch does.

    Call after the provisioner handed the old ports back (LocalProvisioner.cleanup).
    """
    km.cleanup_connection_file()
    cache = LocalPortCache.instance() if cached else None
    for name in PORT_NAMES:
        setattr(km, name, cache.find_available_port(km.ip) if cache else 0)  # 0: the file writer picks
    km.write_connection_file(jupyter_session=session)
    info: KernelConnectionInfo = km.get_connection_info()
    return info


def return_ports(info: KernelConnectionInfo) -> None:
    """Hand ports reserved in this process back to LocalPortCache (a pooled kernel brings its own)."""
    cache = LocalPortCache.instance()
    for name in PORT_NAMES:
        cache.return_port(int(info[name]))  # type: ignore[literal-required]
