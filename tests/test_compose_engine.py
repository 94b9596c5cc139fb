"""`dockyard compose` on the real engine with Debian's docker-compose: the pipeline stack (PostgreSQL + a PyTorch
trainer talking over the compose network, verified, surviving a store restart, removed without a trace), JupyterLab
in an environment's image (loopback only, token, the environment's kernel, files owned by the workspace's owner),
and a broken stack file that starts nothing.

Every project has its own name (dockyard-test-<random>); whatever a test leaves is removed by the fixture, pass or
fail, and only things carrying that project's label are ever touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import time
import uuid
from collections.abc import Iterator

import docker.errors
import pytest
import requests
import websocket

from dockyard import cli
from dockyard.frontends import compose
from dockyard.frontends.compose_run import PROJECT_LABEL, client_environment, find_target, load_state

from .helpers import REPO, TEST_USER, free_port, nbval_as_test_user

pytestmark = pytest.mark.engine
CHECKED_IN = REPO / compose.DIRNAME


def _leftovers(client, project: str) -> dict[str, list[str]]:
    label = {"label": f"{PROJECT_LABEL}={project}"}
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=label)],
        "networks": [n.name for n in client.networks.list(filters=label)],
        "volumes": [v.name for v in client.volumes.list(filters=label)],
    }


@pytest.fixture
def project(docker_client, tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh project name and a private state dir; afterwards everything labelled with the project is removed."""
    if shutil.which("docker-compose") is None and not os.environ.get("DOCKYARD_COMPOSE"):
        if os.environ.get("CI"):
            raise AssertionError("docker-compose is missing: scripts/install-test-tools.sh installs it")
        pytest.skip("no docker-compose")
    name = f"dockyard-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield name
    label = {"label": f"{PROJECT_LABEL}={name}"}
    for c in docker_client.containers.list(all=True, filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True)
    for n in docker_client.networks.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            n.remove()
    for v in docker_client.volumes.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            v.remove(force=True)


def _compose(*args: str) -> int:
    return cli.main(["compose", *args, "--dir", str(CHECKED_IN)])


def _container(client, project: str, service: str):
    found = client.containers.list(
        all=True, filters={"label": [f"{PROJECT_LABEL}={project}", f"com.docker.compose.service={service}"]}
    )
    assert len(found) == 1, f"{service}: {[c.name for c in found]}"
    return found[0]


def _wait_healthy(container, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(1)
    raise AssertionError(f"{container.name} not healthy: {container.attrs['State']}")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # from scratch: the store image (apt) and the pytorch image are built first
def test_pipeline_up_verify_restart_down(project, docker_client, built, capsys, user_python):
    built("pytorch:cpu")  # the trainer's image (the kernel's own)
    started = time.monotonic()
    assert _compose("up", "pipeline", "-p", project) == 0
    assert _compose("verify", "pipeline", "-p", project) == 0
    up_to_verified = time.monotonic() - started
    out = capsys.readouterr().out
    assert "all 5 checks passed" in out
    print(f"pipeline up → verify passed: {up_to_verified:.1f}s")

    # The client side: the pipeline's notebook, in the trainer's environment, reads the results from the store
    # through its loopback port (the variables 'dockyard compose env' prints), as the unprivileged test user.
    client_env = client_environment(docker_client, find_target("pipeline"), project, load_state(project))
    assert client_env["PGHOST"] == "127.0.0.1"
    nbval_as_test_user(user_python, docker_client, "pytorch:cpu", ["pipeline"], extra_env=client_env)

    store, trainer = _container(docker_client, project, "store"), _container(docker_client, project, "trainer")
    # The two talked over the compose network: the trainer wrote what verify read from the store.
    assert trainer.attrs["State"]["ExitCode"] == 0
    logs = trainer.logs().decode()
    assert "ingested 1797 digits (360 held out)" in logs
    assert "accuracy" in logs
    assert set(trainer.attrs["NetworkSettings"]["Networks"]) == set(store.attrs["NetworkSettings"]["Networks"])
    published = store.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
    assert [b["HostIp"] for b in published] == ["127.0.0.1"]  # for notebooks on this machine, never the network
    assert store.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert store.attrs["Config"]["User"] == "postgres"
    assert trainer.attrs["Config"]["Image"] == built("pytorch:cpu").tag  # the kernel's image, by content tag

    # The data lives in the named volume: it survives a restart of the store.
    store.restart(timeout=30)
    _wait_healthy(store)
    assert _compose("verify", "pipeline", "-p", project) == 0

    # verify can fail: without predictions, the row count and accuracy checks do.
    code, output = store.exec_run(["psql", "-qX", "-U", "dockyard", "-d", "pipeline", "-c", "DELETE FROM predictions"])
    assert code == 0, output
    capsys.readouterr()
    assert _compose("verify", "pipeline", "-p", project) == 1
    assert "FAIL" in capsys.readouterr().out

    assert _compose("down", "pipeline", "-p", project, "--volumes") == 0
    assert _leftovers(docker_client, project) == {"containers": [], "networks": [], "volumes": []}
    assert load_state(project) == {}  # the generated password went with the volume


def _execute(base_ws: str, kernel_id: str, token: str, code: str) -> str:
    """Run code in a kernel of the lab through its websocket (as JupyterLab does); returns what it printed."""
    ws = websocket.create_connection(f"{base_ws}/api/kernels/{kernel_id}/channels?token={token}", timeout=60)
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    ws.send(
        json.dumps(
            {
                "header": {**header, "version": "5.3"},
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": content,
            }
        )
    )
    printed = []
    try:
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("stream", "error"):
                printed.append(msg["content"].get("text") or str(msg["content"]))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(printed)
    finally:
        ws.close()


def _test_user_uid() -> int:
    try:
        return pwd.getpwnam(TEST_USER).pw_uid
    except KeyError:
        return os.getuid()


def test_lab_up_answers_on_loopback_with_the_token_and_the_kernel_then_down(project, docker_client, built, tmp_path):
    built("minimal:cpu")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "hello.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    owner = _test_user_uid()  # CI runs as root, which would hide UID bugs: the lab runs as the workspace's owner
    for path in (workspace, workspace / "hello.ipynb"):
        os.chown(path, owner, owner)
    port = free_port()
    assert _compose("up", "lab-minimal", "-p", project, "--port", str(port), "--workspace", str(workspace)) == 0
    token = load_state(project)["secrets"]["lab_token"]
    base = f"http://127.0.0.1:{port}"

    lab = _container(docker_client, project, "lab")
    bindings = lab.attrs["HostConfig"]["PortBindings"]["8888/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    assert lab.attrs["Config"]["User"] == f"{owner}:{owner}"
    assert requests.get(f"{base}/api/kernelspecs", timeout=10).status_code == 403  # no token, no entry
    specs = requests.get(f"{base}/api/kernelspecs", params={"token": token}, timeout=10).json()
    assert list(specs["kernelspecs"]) == ["dockyard-minimal-cpu"]
    assert specs["default"] == "dockyard-minimal-cpu"
    headers = {"Authorization": f"token {token}"}
    listing = requests.get(f"{base}/api/contents", headers=headers, timeout=10).json()
    assert [item["name"] for item in listing["content"]] == ["hello.ipynb"]
    put = requests.put(
        f"{base}/api/contents/from-lab.txt",
        json={"type": "file", "format": "text", "content": "hi"},
        headers=headers,
        timeout=10,
    )
    assert put.status_code == 201, put.text
    assert (workspace / "from-lab.txt").stat().st_uid == owner
    kernel = requests.post(f"{base}/api/kernels", json={"name": "dockyard-minimal-cpu"}, headers=headers, timeout=30)
    assert kernel.status_code == 201, kernel.text
    code = "import os, sys; print(sys.prefix, os.getuid(), os.environ['DOCKYARD_ENV'], os.getcwd())"
    printed = _execute(f"ws://127.0.0.1:{port}", kernel.json()["id"], token, code)
    assert printed.split() == ["/opt/dockyard/venv", str(owner), "minimal", "/workspace"]

    assert _compose("down", "lab-minimal", "-p", project, "--volumes") == 0
    assert _leftovers(docker_client, project) == {"containers": [], "networks": [], "volumes": []}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/api", timeout=5)


def test_broken_stack_starts_nothing(project, docker_client, tmp_path, monkeypatch, capsys):
    stack = tmp_path / "stacks" / "broken"
    shutil.copytree(REPO / "stacks" / "pipeline", stack)
    text = (stack / "stack.yaml").read_text().replace("name: pipeline", "name: broken")
    (stack / "stack.yaml").write_text(text.replace("    depends_on: [store]", "    depends_on: [stor]"))
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(tmp_path / "stacks"))
    images_before = {i.id for i in docker_client.images.list()}
    assert cli.main(["compose", "up", "broken", "-p", project, "--dir", str(tmp_path / "compose")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "depends on 'stor'" in err
    assert "line" in err
    assert "did you mean 'store'" in err
    assert _leftovers(docker_client, project) == {"containers": [], "networks": [], "volumes": []}
    assert {i.id for i in docker_client.images.list()} == images_before
    assert not (tmp_path / "compose").exists()
