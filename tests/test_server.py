"""A real Jupyter server with the dockyard kernelspecs: sessions start, run code, fail clearly, clean up.

The server runs as a subprocess on 127.0.0.1 with token auth and sees only temp-installed kernelspecs.
"Daemon stopped" is simulated by pointing the server's DOCKER_HOST at a socket path nothing listens on;
the real daemon keeps running for the other tests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.labels import LABEL_KERNEL_ID

from .helpers import JupyterProc, install_kernelspecs, owned_containers, remove_leftovers, start_jupyter, stop_jupyter

Server = JupyterProc  # a Jupyter server subprocess (tests/helpers.py)

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    return install_kernelspecs(tmp_path_factory.mktemp("kernels-prefix"))


def _start_server(jupyter_path: Path, scratch: Path, **env_extra: str) -> Server:
    return start_jupyter("server", jupyter_path, scratch, **env_extra)


_stop_server = stop_jupyter


@pytest.fixture
def server_factory(jupyter_path, tmp_path, docker_client) -> Iterator:
    started: list[Server] = []

    def start(**env_extra: str) -> Server:
        server = _start_server(jupyter_path, tmp_path / f"server{len(started)}", **env_extra)
        started.append(server)
        return server

    yield start
    leftovers = []
    for server in started:
        if server.proc.poll() is None:
            _stop_server(server)
        leftovers += remove_leftovers(docker_client, server.proc.pid, wait=10)
    assert not leftovers, f"kernel containers outlived their server: {leftovers}"


def test_daemon_down_gives_a_clear_error_and_the_server_keeps_working(server_factory, tmp_path):
    dead = tmp_path / "no-daemon-here.sock"
    server = server_factory(DOCKER_HOST=f"unix://{dead}")
    start = time.monotonic()
    r = server.new_session("dockyard-minimal-cpu")
    elapsed = time.monotonic() - start
    assert r.status_code >= 400, r.text
    reply = r.json()
    message = reply.get("message", "")
    # The dockyard text itself (problem and fix), not "Unhandled error" with a traceback to dig through.
    for part in ("Cannot reach the Docker engine", str(dead), "Fix:", "dockyard doctor"):
        assert part in message, reply
    assert not reply.get("traceback"), reply
    assert elapsed < 30, f"the failure took {elapsed:.0f} s to report"

    assert server.api("GET", "/api/status").status_code == 200
    assert server.api("GET", "/api/sessions").json() == []  # no half-made session left behind
    r = server.new_session("python3", name="plain.ipynb")
    assert r.status_code == 201, r.text
    kernel_id = r.json()["kernel"]["id"]
    assert server.execute(kernel_id, "print(6 * 7)") == "42\n"
    assert server.api("DELETE", f"/api/sessions/{r.json()['id']}").status_code == 204


def test_container_kernel_session_runs_code_and_leaves_no_container(server_factory, built, docker_client):
    built("minimal:cpu")
    server = server_factory()
    (server.root / "work").mkdir()
    r = server.new_session("dockyard-minimal-cpu", name="work/nb.ipynb")
    assert r.status_code == 201, f"{r.text}\n{server.log.read_text()[-4000:]}"
    session = r.json()
    kernel_id = session["kernel"]["id"]
    [container] = owned_containers(docker_client, server.proc.pid)
    assert container.status == "running"
    assert container.labels[LABEL_KERNEL_ID] == kernel_id

    code = "import os; print(os.environ['DOCKYARD_ENV'], os.path.basename(os.getcwd()), os.getuid())"
    assert server.execute(kernel_id, code).split() == ["minimal", "work", str(__import__("os").getuid())]

    assert server.api("DELETE", f"/api/sessions/{session['id']}").status_code == 204
    assert server.api("GET", "/api/kernels").json() == []
    assert remove_leftovers(docker_client, server.proc.pid, wait=15) == [], (
        "DELETE /api/sessions left the container running"
    )


def test_sigterm_while_a_kernel_restarts_waits_for_it_then_exits_leaving_nothing(jupyter_path, tmp_path, docker_client):
    """jupyter_client's shutdown raises InvalidStateError for a kernel mid-restart, which used to leave the server
    running after SIGTERM with its containers (kernel/shutdown_guard.py). The kernel's container is killed from
    outside; its restart is slowed by a 3 s sleep in argv, and SIGTERM lands inside it."""
    spec = json.loads((jupyter_path / "kernels" / "dockyard-minimal-cpu" / "kernel.json").read_text())
    spec["argv"] = ["sh", "-c", 'sleep 3; exec "$@"', "kernel", *spec["argv"]]
    slow = jupyter_path / "kernels" / "minimal-slow-start"
    slow.mkdir()
    (slow / "kernel.json").write_text(json.dumps(spec))
    server = _start_server(jupyter_path, tmp_path / "server")
    try:
        r = server.new_session("minimal-slow-start")
        assert r.status_code == 201, f"{r.text}\n{server.log_tail()}"
        kernel_id = r.json()["kernel"]["id"]
        assert server.execute(kernel_id, "print('up')").strip() == "up"
        [container] = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"})
        container.kill()
        deadline = time.monotonic() + 30
        while "restarting kernel" not in server.log.read_text():
            assert time.monotonic() < deadline, f"the restarter never noticed the kill:\n{server.log_tail()}"
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)  # within the restart's 3 s sleep
        try:
            code = server.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server hung after SIGTERM during a restart:\n{server.log_tail()}") from None
        assert code == 0, server.log_tail()
        assert "InvalidStateError" not in server.log.read_text(), server.log_tail()
        assert "shutting it down once its container has started" in server.log.read_text()
    finally:
        _stop_server(server)
        leftovers = remove_leftovers(docker_client, server.proc.pid, wait=10)
        assert not leftovers, f"kernel containers outlived their server: {leftovers}\n{server.log_tail()}"
