"""A real Jupyter server with the dockyard kernelspecs: sessions start, run code, fail clearly, clean up.

The server runs as a subprocess on 127.0.0.1 with token auth and sees only temp-installed kernelspecs.
"Daemon stopped" is simulated by pointing the server's DOCKER_HOST at a socket path nothing listens on;
the real daemon keeps running for the other tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tornado.websocket import websocket_connect

from dockyard.labels import LABEL_KERNEL_ID

from .helpers import free_port, install_kernelspecs, jupyter_env, owned_containers, remove_leftovers

pytestmark = pytest.mark.engine


@dataclass
class Server:
    url: str
    token: str
    proc: subprocess.Popen
    root: Path
    log: Path

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def new_session(self, kernel: str, name: str = "test.ipynb") -> requests.Response:
        body = {"path": name, "name": name, "type": "notebook", "kernel": {"name": kernel}}
        return self.api("POST", "/api/sessions", json=body)

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run code over the kernel's websocket (as JupyterLab does); returns its stdout."""
        return asyncio.run(_execute(self, kernel_id, code, timeout))


async def _execute(server: Server, kernel_id: str, code: str, timeout: float) -> str:
    ws_url = server.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?token={server.token}"
    conn = await websocket_connect(ws_url)
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "test"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    conn.write_message(json.dumps({
        "channel": "shell",
        "header": {**header, "version": "5.3"},
        "parent_header": {}, "metadata": {},
        "content": content,
    }))  # fmt: skip
    out: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), max(0.1, deadline - time.monotonic()))
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    return install_kernelspecs(tmp_path_factory.mktemp("kernels-prefix"))


def _start_server(jupyter_path: Path, scratch: Path, **env_extra: str) -> Server:
    port, token = free_port(), uuid.uuid4().hex
    root = scratch / "root"
    root.mkdir(parents=True)
    log = scratch / "server.log"
    env = jupyter_env(jupyter_path, scratch / "jupyter", **env_extra)
    cmd = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", token, proc, root, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"jupyter server exited:\n{log.read_text()[-4000:]}"
        try:
            if server.api("GET", "/api/status").status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"jupyter server did not answer within 60 s:\n{log.read_text()[-4000:]}")


def _stop_server(server: Server) -> None:
    server.proc.terminate()  # SIGTERM: the server shuts its kernels down, as on Ctrl-C
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


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
