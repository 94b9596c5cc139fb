"""With no Docker engine answering, every command that needs one says so clearly (no traceback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from dockyard import engine
from dockyard.engine import unreachable
from dockyard.errors import EngineError

DEAD = "unix:///tmp/dockyard-no-such-daemon.sock"


ENGINE_COMMANDS = [["build", "minimal:cpu"], ["images"], ["kernels", "gc"]]


@pytest.mark.parametrize("command", ENGINE_COMMANDS, ids=lambda c: " ".join(c))
def test_unreachable_daemon_gives_clear_error(command: list[str], monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD)
    proc = subprocess.run([sys.executable, "-m", "dockyard", *command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # the request was fine; the engine failed it (2 is a usage error)
    assert "Traceback" not in proc.stderr
    assert "Cannot reach the Docker engine at unix:///tmp/dockyard-no-such-daemon.sock" in proc.stderr
    assert "Fix:" in proc.stderr
    assert "dockyard doctor" in proc.stderr


def test_doctor_reports_the_engine_as_failed(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD)
    proc = subprocess.run([sys.executable, "-m", "dockyard", "doctor"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "fail" in proc.stdout
    assert "docker engine" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.engine
def test_doctor_passes_on_a_working_engine() -> None:
    proc = subprocess.run([sys.executable, "-m", "dockyard", "doctor"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for what in ("docker engine", "storage driver", "GPU", "free disk", "proxy", "CA certificates"):
        assert any(what in line for line in lines), what
    assert any(line.startswith("pass") and "CA certificates" in line for line in lines)


# --- the cause is kept, and the fix follows it (engine/unreachable.py) -------------------------


def _engine_error(monkeypatch, host: str) -> EngineError:
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(EngineError) as caught:
        engine.client(timeout=5)
    return caught.value


def test_a_missing_socket_says_no_engine_runs_and_to_start_one(monkeypatch, tmp_path) -> None:
    err = _engine_error(monkeypatch, f"unix://{tmp_path}/docker.sock")
    assert f"no socket at {tmp_path}/docker.sock" in err.problem
    assert "start the Docker daemon" in (err.fix or "")


def test_a_socket_nobody_listens_on_says_the_daemon_stopped(monkeypatch, tmp_path) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as bound:  # bound, never listening: connect() is refused
        bound.bind(str(path))
        err = _engine_error(monkeypatch, f"unix://{path}")
    assert "exists, but no engine accepts connections" in err.problem
    assert "no socket" not in err.problem
    assert "journalctl -u docker" in (err.fix or "")


def test_a_refused_tcp_port_says_nothing_listens(monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the connect: refused
    err = _engine_error(monkeypatch, f"tcp://127.0.0.1:{port}")
    assert f"connection refused at 127.0.0.1:{port}" in err.problem
    assert "DOCKER_HOST" in (err.fix or "")


def test_a_socket_the_user_may_not_open_says_join_the_docker_group() -> None:
    # As the SDK raises it (requests wraps urllib3's ProtocolError around the socket's PermissionError); CI
    # runs as root, who may open any socket, so the chain is built here rather than met.
    import docker.errors
    import requests
    import urllib3.exceptions

    inner = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", PermissionError(13, "Permission denied"))
    )
    try:
        try:
            raise inner
        except requests.exceptions.ConnectionError as exc:
            raise docker.errors.DockerException(f"Error while fetching server API version: {exc}") from exc
    except docker.errors.DockerException as exc:
        err = unreachable.diagnose(exc, "unix:///var/run/docker.sock")
    assert "permission denied on the socket /var/run/docker.sock" in err.problem
    assert "usermod -aG docker" in (err.fix or "")


def test_ssh_without_paramiko_says_install_paramiko_not_start_dockerd() -> None:
    code = (
        "import sys; sys.modules['paramiko'] = None\n"  # as if not installed (docker imports it optionally)
        "from dockyard.cli import main; sys.exit(main(['images']))"
    )
    env = {**os.environ, "DOCKER_HOST": "ssh://someone@127.0.0.1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "needs the paramiko package" in proc.stderr
    assert "pip install paramiko" in proc.stderr
    assert "start the Docker daemon" not in proc.stderr
