"""With no Docker engine answering, every command that needs one says so clearly (no traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
