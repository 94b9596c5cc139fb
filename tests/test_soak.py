"""Nothing outlives its owner: a scripted Jupyter session, then the server is stopped as users stop it.

The session does what a long JupyterLab session does, compressed to about a minute: notebooks in two
directories (two warm pools), kernel switches (container → local → container), a panel build, kernel
restarts, a second client's session and bare kernel, and a new notebook whose pool is still filling when
the stop arrives. Then SIGTERM, or SIGINT twice (with no terminal, as for a server started in the
background or by a supervisor, and at a terminal). Within 15 s no container of that server may exist,
kernels and pooled ones alike, with no `dockyard kernels gc` run in between.
"""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import socket
import subprocess
import time
from pathlib import Path

import docker.errors
import pytest

from dockyard.kernel.reaper import container_owner
from dockyard.labels import LABEL_BUILD_LOCK, LABEL_BUILD_LOCK_OWNER, LABEL_KERNEL_ID, LABEL_OWNER

from .helpers import JupyterProc, install_kernelspecs, start_jupyter, stop_jupyter

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

KERNEL = "dockyard-minimal-cpu"


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory, built) -> Path:
    built("minimal:cpu")
    return install_kernelspecs(tmp_path_factory.mktemp("soak-prefix"))


def _theirs(client, pid: int) -> list[str]:
    """Names of every dockyard container of process pid: kernels, pooled ones it filled or claimed, build locks.
    (The engine's raw list: the SDK's list inspects each container and fails on one removed meanwhile.)"""
    prefix = f"{socket.gethostname()}:{pid}:"
    names = []
    for c in client.api.containers(all=True, filters={"label": LABEL_KERNEL_ID}):
        labels = c.get("Labels") or {}
        if labels.get(LABEL_OWNER, "").startswith(prefix) or (container_owner(labels) or "").startswith(prefix):
            names.append(c["Names"][0].lstrip("/"))
    for c in client.api.containers(all=True, filters={"label": LABEL_BUILD_LOCK}):
        if (c.get("Labels") or {}).get(LABEL_BUILD_LOCK_OWNER, "").endswith(f" pid {pid}"):
            names.append(c["Names"][0].lstrip("/"))
    return names


def _remove(client, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(name, force=True)


def _wait(what: str, until, server: JupyterProc, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (found := until()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s:\n{server.log_tail()}"
        time.sleep(0.25)
    return found


def _session(server: JupyterProc, kernel: str, name: str) -> dict:
    r = server.new_session(kernel, name)
    assert r.status_code == 201, f"{r.text}\n{server.log_tail()}"
    return r.json()


def _switch(server: JupyterProc, session: dict, kernel: str) -> dict:
    r = server.api("PATCH", f"/api/sessions/{session['id']}", json={"kernel": {"name": kernel}})
    assert r.status_code == 200, f"{r.text}\n{server.log_tail()}"
    return r.json()


def _scripted_session(server: JupyterProc, client) -> None:
    pid = server.proc.pid
    for d in ("a", "b", "c"):
        (server.root / d).mkdir()
    first = _session(server, KERNEL, "a/one.ipynb")
    assert server.execute(first["kernel"]["id"], "print(1 + 1)") == "2\n"
    # The pool fills behind it; the next notebook in a/ claims the warm container.
    _wait("a pooled container", lambda: [n for n in _theirs(client, pid) if n.startswith("dockyard-pool-")], server)
    second = _session(server, KERNEL, "a/two.ipynb")
    # Switches: container → local kernel → container, as the panel's Switch does.
    second = _switch(server, second, "python3")
    second = _switch(server, second, KERNEL)
    assert server.execute(second["kernel"]["id"], "print('back')") == "back\n"
    # A panel build (a rebuild: the build lock and the engine's build run in the server).
    r = server.api("POST", "/dockyard/api/builds", json={"ref": "minimal:cpu", "rebuild": True})
    assert r.status_code in (200, 202), r.text
    job = r.json()["id"]
    state = _wait(
        "the panel build",
        lambda: (s := server.api("GET", f"/dockyard/api/builds/{job}").json()["state"]) != "running" and s,
        server,
        timeout=300,
    )
    assert state == "succeeded", server.api("GET", f"/dockyard/api/builds/{job}").text
    # Restarts (a restarted kernel starts cold, its old container goes).
    for _ in range(2):
        assert server.api("POST", f"/api/kernels/{first['kernel']['id']}/restart").status_code == 200
    assert server.execute(first["kernel"]["id"], "print('restarted')") == "restarted\n"
    # A second client: its own notebook in b/ (a second pool) and a bare kernel, as a console would start.
    other = JupyterProc(server.url, server.token, server.proc, server.root, server.log)
    _session(other, KERNEL, "b/other.ipynb")
    r = other.api("POST", "/api/kernels", json={"name": KERNEL, "path": "b"})
    assert r.status_code == 201, r.text
    _wait("the b/ pool", lambda: sum(n.startswith("dockyard-pool-") for n in _theirs(client, pid)) >= 2, server)
    # A notebook in c/: its pool starts filling about a second after its kernel, while the stop arrives.
    _session(server, KERNEL, "c/last.ipynb")
    time.sleep(1.3)


def _stop(server: JupyterProc, how: str) -> None:
    if how == "SIGTERM":
        server.proc.send_signal(signal.SIGTERM)
    else:
        server.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the second Ctrl-C lands while the first is being handled
        server.proc.send_signal(signal.SIGINT)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT twice", "SIGINT twice at a terminal"])
def test_a_long_session_then_a_stop_leaves_no_container(jupyter_path, tmp_path, docker_client, how, monkeypatch):
    terminal = None
    if how.endswith("at a terminal"):
        # jupyter_server handles Ctrl-C itself only when stdin is a terminal: give it one.
        terminal = pty.openpty()
        popen = subprocess.Popen
        monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: popen(*a, **{**k, "stdin": terminal[1]}))
    server = start_jupyter("server", jupyter_path, tmp_path, DOCKYARD_POOL_SIZE="1")
    monkeypatch.undo()
    pid = server.proc.pid
    try:
        _scripted_session(server, docker_client)
        assert len(_theirs(docker_client, pid)) >= 5, "the session should hold kernels and pooled containers"
        stopped = time.monotonic()
        _stop(server, how)
        deadline = stopped + 15
        while ((left := _theirs(docker_client, pid)) or server.proc.poll() is None) and time.monotonic() < deadline:
            time.sleep(0.25)
        names = left
        assert server.proc.poll() is not None, f"the server still runs 15 s after {how}:\n{server.log_tail()}"
        assert names == [], f"{how} left {names} after 15 s:\n{server.log_tail()}"
        print(f"{how}: server gone, no container of it left, {time.monotonic() - stopped:.1f} s after the signal")
    finally:
        stop_jupyter(server)
        _remove(docker_client, _theirs(docker_client, pid))
        if terminal is not None:
            for fd in terminal:
                os.close(fd)
