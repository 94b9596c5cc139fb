"""Kernels as managed resources on the real engine: why a kernel died reaches its notebook's cell.

A real Jupyter server (tests/helpers.py) runs a dockyard kernel with a 256m memory limit; a cell allocates
past it and the cell gets kernel/death.py's paragraph over the websocket, as JupyterLab would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.kernel.collector import Sampler
from dockyard.kernel.pool.pooled import listing
from dockyard.labels import LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_KEY

from .helpers import JupyterProc, install_kernelspecs, remove_leftovers, start_jupyter, stderr_of_cell, stop_jupyter

pytestmark = pytest.mark.engine
MiB = 1 << 20


def _with_limit(jupyter_path: Path, base: str, name: str, **config: object) -> str:
    """A copy of kernelspec base whose provisioner config adds config (e.g. memory='256m')."""
    spec = json.loads((jupyter_path / "kernels" / base / "kernel.json").read_text())
    spec["metadata"]["kernel_provisioner"]["config"].update(config)
    spec["display_name"] = name
    d = jupyter_path / "kernels" / name
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(spec))
    return name


@contextlib.contextmanager
def _jupyter(tmp_path: Path, docker_client, **env: str) -> Iterator[tuple[JupyterProc, Path]]:
    """A real Jupyter server with every dockyard kernelspec; no container of it may outlive it."""
    jupyter_path = install_kernelspecs(tmp_path / "prefix")
    srv = start_jupyter("server", jupyter_path, tmp_path / "server", **env)
    try:
        yield srv, jupyter_path
    finally:
        stop_jupyter(srv)
        leftovers = remove_leftovers(docker_client, srv.proc.pid, wait=10)
        assert not leftovers, (
            f"kernel containers outlived their server (exit {srv.proc.returncode}): {leftovers}\n{srv.log_tail()}"
        )


@pytest.fixture
def server(tmp_path, docker_client, built) -> Iterator[tuple[JupyterProc, Path]]:
    built("minimal:cpu")
    with _jupyter(tmp_path, docker_client) as srv:
        yield srv


def _comes_back(srv: JupyterProc, kernel_id: str, after: str) -> None:
    """The restarter starts a fresh container on the same kernel id, and it runs code."""
    deadline = time.monotonic() + 60
    while True:
        try:
            assert srv.execute(kernel_id, "print(6 * 7)", timeout=20).strip() == "42"
            return
        except (AssertionError, TimeoutError):
            if time.monotonic() > deadline:
                raise AssertionError(f"the kernel did not come back after {after}:\n{srv.log_tail()}") from None
            time.sleep(1)


HOG = "x = [bytearray(64 << 20) for _ in range(64)]\nfor b in x: b[::4096] = b'1' * len(b[::4096])"


def _out_of_memory(srv: JupyterProc, kernel_id: str) -> None:
    """A cell allocating past the kernel's 256m: the paragraph under it, in the server log, then the restart."""
    err, seconds = asyncio.run(stderr_of_cell(srv, kernel_id, HOG, "out of memory at 256 MiB", timeout=20))
    print(f"OOM paragraph reached the cell {seconds:.1f} s after the cell started")
    assert "resources.memory" in err, err
    assert "out of memory at 256 MiB" in srv.log.read_text(), "the server log lacks the paragraph"
    _comes_back(srv, kernel_id, "the OOM kill")


def test_a_cell_past_its_memory_limit_says_out_of_memory_and_the_restart_works(server):
    srv, jupyter_path = server
    name = _with_limit(jupyter_path, "dockyard-minimal-cpu", "minimal-256m", memory="256m")
    r = srv.new_session(name)
    assert r.status_code == 201, f"{r.text}\n{srv.log_tail()}"
    kernel_id = r.json()["kernel"]["id"]
    assert srv.execute(kernel_id, "print('warm')").strip() == "warm"

    _out_of_memory(srv, kernel_id)


def test_a_pooled_kernel_past_its_memory_limit_says_the_same_and_restarts(tmp_path, docker_client, built):
    """The warm pool's kernels die and restart like cold ones: the pooled container of a 256m kernel."""
    built("minimal:cpu")
    with _jupyter(tmp_path, docker_client, DOCKYARD_POOL_SIZE="1") as (srv, jupyter_path):
        name = _with_limit(jupyter_path, "dockyard-minimal-cpu", "minimal-256m", memory="256m")
        assert srv.new_session(name, "a.ipynb").status_code == 201, srv.log_tail()  # cold; the pool fills behind
        deadline = time.monotonic() + 120
        while not [p for p in listing(docker_client) if p.state == "ready" and f":{srv.proc.pid}:" in p.owner]:
            assert time.monotonic() < deadline, f"the server filled no pool:\n{srv.log_tail()}"
            time.sleep(0.5)
        r = srv.new_session(name, "b.ipynb")
        assert r.status_code == 201, srv.log_tail()
        kernel_id = r.json()["kernel"]["id"]
        # A claimed container keeps the labels it was created with, and takes the kernel's name.
        [container] = docker_client.containers.list(filters={"name": f"dockyard-minimal-cpu-{kernel_id[:8]}"})
        assert LABEL_POOL_KEY in container.labels, "the second notebook's kernel did not claim the pooled container"
        assert container.attrs["HostConfig"]["Memory"] == 256 * MiB
        _out_of_memory(srv, kernel_id)


def _docker_stats(cid: str) -> tuple[float, float]:
    """(CPU %, memory MiB) as `docker stats` prints them."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", cid], capture_output=True, text=True, check=True
    ).stdout
    row = json.loads(out)
    used = row["MemUsage"].split("/")[0].strip()
    scale = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / (1 << 20)}
    unit = next(u for u in scale if used.endswith(u))
    return float(row["CPUPerc"].rstrip("%")), float(used.removesuffix(unit)) * scale[unit]


def test_figures_match_docker_stats_for_a_kernel_burning_half_a_cpu_and_holding_200_mib(server, docker_client):
    srv, jupyter_path = server
    name = _with_limit(jupyter_path, "dockyard-minimal-cpu", "minimal-half", memory="512m", cpus=0.5)
    r = srv.new_session(name, name="figures.ipynb")
    assert r.status_code == 201, f"{r.text}\n{srv.log_tail()}"
    kernel_id = r.json()["kernel"]["id"]
    burn = (
        "import threading\nheld = bytearray(200 << 20)\nheld[::4096] = b'1' * len(held[::4096])\n"
        "def spin():\n    while True: pass\nthreading.Thread(target=spin, daemon=True).start()\nprint('ok')"
    )
    assert srv.execute(kernel_id, burn).strip() == "ok"
    sampler = Sampler(docker_client)
    owner = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"})[0].labels[LABEL_OWNER]
    sampler.read(owner)
    time.sleep(3)
    [row] = sampler.read(owner)
    cpu, mem = _docker_stats(row.container)
    f = row.figures
    print(f"dockyard: {f.cpu_percent:.1f} % {f.memory_used / MiB:.0f} MiB; docker stats: {cpu:.1f} % {mem:.0f} MiB")
    assert f.cpu_percent is not None
    assert abs(f.cpu_percent - 50) < 12, f.cpu_percent  # the CPU limit: half of one CPU
    assert abs(f.cpu_percent - cpu) < 12
    assert 200 <= f.memory_used / MiB < 300
    assert abs(f.memory_used / MiB - mem) < 0.1 * mem
    assert f.memory_limit == 512 * MiB
    assert f.cpus == 0.5
    assert f.pids >= 2
    assert f.gpu is None
    assert f.as_json()["gpu"] == "no GPU"

    # The panel's REST endpoint gives the same figures, with the notebook they belong to.
    deadline = time.monotonic() + 10
    while True:
        answer = srv.api("GET", "/dockyard/api/kernels").json()
        [k] = [k for k in answer["kernels"] if k["kernel_id"] == kernel_id]
        if k["cpu_percent"] is not None or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert k["notebook"] == "figures.ipynb"
    assert abs(k["cpu_percent"] - 50) < 12
    assert k["memory_limit"] == 512 * MiB
    assert k["gpu"] == "no GPU"


def _stop_the_kernel_process(container) -> None:
    """SIGSTOP the kernel inside its container: it reads no more requests and says nothing on iopub."""
    code = (
        "import os, signal\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    with open(f'/proc/{p}/cmdline', 'rb') as f:\n"
        "        if b'ipykernel' in f.read() and int(p) != os.getpid():\n"
        "            os.kill(int(p), signal.SIGSTOP)\n"
    )
    rc, out = container.exec_run(["python3", "-c", code])
    assert rc == 0, out


def test_a_kernel_killed_before_its_cell_said_busy_tells_that_cell(server, docker_client):
    """The kernel dies before it says "busy" for the cell (here: stopped, then killed): the paragraph goes
    under that cell, not the one before (the server follows the execute_request it sent to the kernel)."""
    srv, _ = server
    r = srv.new_session("dockyard-minimal-cpu")
    assert r.status_code == 201, f"{r.text}\n{srv.log_tail()}"
    kernel_id = r.json()["kernel"]["id"]
    assert srv.execute(kernel_id, "print('before')").strip() == "before"  # the cell the kernel said busy for last
    [container] = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"})

    def kill() -> None:
        time.sleep(0.5)  # the request is on its way to a kernel that will never read it
        container.kill()

    try:
        stop = lambda: _stop_the_kernel_process(container)  # noqa: E731  # once the notebook is connected
        cell = stderr_of_cell(srv, kernel_id, "print('never runs')", "SIGKILL", timeout=30, before=stop, then=kill)
        err, _ = asyncio.run(cell)
    except TimeoutError:
        raise AssertionError(f"no paragraph under the cell that died:\n{srv.log_tail()}") from None
    assert "was killed (SIGKILL" in err, err
    _comes_back(srv, kernel_id, "the kill")
