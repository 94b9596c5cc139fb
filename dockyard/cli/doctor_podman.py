"""`dockyard doctor`'s checks for a Podman engine: mode, init binary, storage, subordinate ids, socket, limits.

Called by doctor_cmd.checks() when the engine is Podman. The init, subuid and socket checks read this
machine's files, so they run only when the engine's socket is a local one.
"""

from __future__ import annotations

import getpass
import os
import shutil
from pathlib import Path

from ..engine import describe_host
from ..engine.capabilities import EngineCaps

# Where Podman looks for the init it runs for `init: true` (containers.conf's init_path default; Debian's
# catatonit package installs the first, podman's own packaging the second).
_INIT_PATHS = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/libexec/catatonit/catatonit")
_STORAGE_FIX = (
    "write ~/.config/containers/storage.conf with '[storage]' and 'driver = \"overlay\"' (on Linux < 5.13 add "
    "'[storage.options.overlay]' 'mount_program = \"/usr/bin/fuse-overlayfs\"'), then 'podman system reset' "
    "(it deletes your Podman images and containers); see docs/podman.md"
)

CheckRow = tuple[str, str, str, str]  # status, what, detail, fix (doctor_cmd.DoctorCheck's fields)


def podman_checks(caps: EngineCaps) -> list[CheckRow]:
    out: list[CheckRow] = []
    driver = caps.storage_driver or "?"
    if driver == "overlay":
        out.append(("pass", "storage driver", driver, ""))
    elif driver == "vfs":
        out.append(("warn", "storage driver", "vfs: every layer is a full copy (slow builds, big disk)", _STORAGE_FIX))
    else:
        out.append(("info", "storage driver", driver, ""))
    local = describe_host().startswith("unix://")
    if local:
        init = next((p for p in _INIT_PATHS if os.access(p, os.X_OK)), None) or shutil.which("catatonit")
        out.append(
            ("pass", "catatonit", f"{init} (the init of kernel containers)", "")
            if init
            else (
                "fail",
                "catatonit",
                "not installed: kernels fail with 'container-init binary not found'",
                "install it: 'sudo apt-get install catatonit'",
            )
        )
    if caps.rootless and local:
        out.append(_subuid_check())
        out.append(_socket_check())
    if caps.unapplied_limits("1g", 1.0):
        out.append(
            (
                "warn",
                "limits",
                f"memory/CPU limits of specs and kernelspecs cannot be applied: {caps.limits_reason()}; kernels start "
                "without them and the server log says so",
                "use a cgroup v2 host where systemd delegates the memory and cpu controllers to users, or a rootful "
                "engine",
            )
        )
    else:
        out.append(("pass", "limits", "memory and CPU limits apply", ""))
    return out


def _subuid_check() -> CheckRow:
    user = getpass.getuser()
    ranges = {}
    for name in ("subuid", "subgid"):
        try:
            lines = Path(f"/etc/{name}").read_text().splitlines()
        except OSError:
            lines = []
        ranges[name] = [
            ln.split(":") for ln in lines if ln.count(":") == 2 and ln.split(":")[0] in (user, str(os.getuid()))
        ]
    if ranges["subuid"] and ranges["subgid"]:
        _, start, count = ranges["subuid"][0]
        return ("pass", "subuid", f"{user}: {count} subordinate uids from {start} (/etc/subuid, /etc/subgid)", "")
    return (
        "fail",
        "subuid",
        f"{user} has no subordinate {' and '.join(k for k, v in ranges.items() if not v)} range: containers cannot "
        "run other users than root",
        f"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}; then 'podman system migrate'",
    )


def _socket_check() -> CheckRow:
    path = Path(describe_host().removeprefix("unix://"))
    try:
        owner = path.stat().st_uid
    except OSError:
        return ("info", "socket", f"{path}: cannot stat it", "")
    if owner != os.getuid():
        return (
            "warn",
            "socket",
            f"{path} belongs to uid {owner}, not you ({os.getuid()}): its containers and files are that user's",
            "start your own service ('podman system service --time=0 &') and point DOCKER_HOST at "
            "unix://$XDG_RUNTIME_DIR/podman/podman.sock",
        )
    return ("pass", "socket", f"{path} (your rootless service)", "")
