"""Helpers for tests that run Jupyter in a subprocess against temp-installed dockyard kernelspecs."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from dockyard.cli import main as dockyard_main

OWNER_LABEL = "org.dockyard.owner"  # written by the provisioner: "HOST:PID:START"


def install_kernelspecs(prefix: Path) -> Path:
    """Every dockyard kernelspec, built or not (tests start unbuilt ones on purpose), into PREFIX/share/jupyter;
    returns the dir to put on JUPYTER_PATH."""
    assert dockyard_main(["kernels", "install", "--include-unbuilt", "--prefix", str(prefix)]) == 0
    return prefix / "share" / "jupyter"


def jupyter_env(jupyter_path: Path, scratch: Path, **extra: str) -> dict[str, str]:
    """os.environ (with the site settings conftest put there) plus a Jupyter that sees only our dirs:
    no user config or kernelspecs leak in, and runtime files (connection files) stay in scratch."""
    env = dict(os.environ)
    for name in ("config", "data", "runtime"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def owned_containers(client, pid: int) -> list:
    """Kernel containers whose owner label names process pid on this host."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return [
        c
        for c in client.containers.list(all=True, filters={"label": OWNER_LABEL})
        if c.labels.get(OWNER_LABEL, "").startswith(prefix)
    ]


def remove_leftovers(client, pid: int, wait: float = 0.0) -> list[str]:
    """Waits up to `wait` seconds for pid's kernel containers to go, then force-removes any that remain.
    Returns the names of those it had to remove (a test asserts that list is empty)."""
    deadline = time.monotonic() + wait
    while (left := owned_containers(client, pid)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return force_remove(left)


def force_remove(containers: list) -> list[str]:
    """Force-removes containers (already gone is fine); returns their names."""
    for c in containers:
        with contextlib.suppress(Exception):
            c.remove(force=True)
    return [c.name for c in containers]


def remove_mounting(client, directory: Path) -> list[str]:
    """Force-removes kernel containers that bind-mount directory or a folder inside it; returns their names."""

    def mounts_it(c) -> bool:
        sources = [Path(m.get("Source", "")) for m in c.attrs.get("Mounts", [])]
        return any(src == directory or directory in src.parents for src in sources)

    return force_remove([c for c in client.containers.list(all=True, filters={"label": OWNER_LABEL}) if mounts_it(c)])


def run_and_clean(cmd: list[str], *, timeout: float, clean, **popen_kwargs) -> tuple[int, str, list[str]]:
    """Runs cmd to the end (killed after timeout), then clean(pid) whatever happened.

    Returns (exit code, combined output, what clean had to remove)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, _ = proc.communicate()
        leftovers = clean(proc.pid)
    return proc.returncode, out, leftovers
