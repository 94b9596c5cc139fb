"""Kernels as managed resources on the real engine: why a kernel died reaches its notebook's cell.

A real Jupyter server (tests/helpers.py) runs a dockyard kernel with a 256m memory limit; a cell allocates
past it and the cell gets kernel/death.py's paragraph over the websocket, as JupyterLab would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.websocket import websocket_connect

from dockyard.kernel.collector import Sampler
from dockyard.labels import LABEL_KERNEL_ID, LABEL_OWNER

from .helpers import JupyterProc, install_kernelspecs, remove_leftovers, start_jupyter, stop_jupyter

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


@pytest.fixture
def server(tmp_path, docker_client, built) -> Iterator[tuple[JupyterProc, Path]]:
    built("minimal:cpu")
    jupyter_path = install_kernelspecs(tmp_path / "prefix")
    srv = start_jupyter("server", jupyter_path, tmp_path / "server")
    try:
        yield srv, jupyter_path
    finally:
        stop_jupyter(srv)
        leftovers = remove_leftovers(docker_client, srv.proc.pid, wait=10)
        assert not leftovers, (
            f"kernel containers outlived their server (exit {srv.proc.returncode}): {leftovers}\n{srv.log_tail()}"
        )


async def _stderr_of_cell(srv: JupyterProc, kernel_id: str, code: str, want: str, timeout: float) -> tuple[str, float]:
    """Run code as JupyterLab does; return the cell's stderr once it contains want, and the seconds it took."""
    conn = await websocket_connect(
        srv.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?token={srv.token}"
    )
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "session": uuid.uuid4().hex,
        "username": "t",
        "version": "5.3",
    }
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    conn.write_message(
        json.dumps({"channel": "shell", "header": header, "parent_header": {}, "metadata": {}, "content": content})
    )
    start, err = time.monotonic(), ""
    try:
        while want not in err:
            left = timeout - (time.monotonic() - start)
            raw = await asyncio.wait_for(conn.read_message(), max(0.1, left))
            assert raw is not None, "websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["header"]["msg_type"] == "stream":
                err += msg["content"]["text"] if msg["content"]["name"] == "stderr" else ""
        return err, time.monotonic() - start
    finally:
        conn.close()


def test_a_cell_past_its_memory_limit_says_out_of_memory_and_the_restart_works(server):
    srv, jupyter_path = server
    name = _with_limit(jupyter_path, "dockyard-minimal-cpu", "minimal-256m", memory="256m")
    r = srv.new_session(name)
    assert r.status_code == 201, f"{r.text}\n{srv.log_tail()}"
    kernel_id = r.json()["kernel"]["id"]
    assert srv.execute(kernel_id, "print('warm')").strip() == "warm"

    hog = "x = [bytearray(64 << 20) for _ in range(64)]\nfor b in x: b[::4096] = b'1' * len(b[::4096])"
    err, seconds = asyncio.run(_stderr_of_cell(srv, kernel_id, hog, "out of memory at 256 MiB", timeout=20))
    print(f"OOM paragraph reached the cell {seconds:.1f} s after the cell started")
    assert "resources.memory" in err, err
    assert "out of memory at 256 MiB" in srv.log.read_text(), "the server log lacks the paragraph"

    deadline = time.monotonic() + 60  # the restarter starts a fresh container on the same kernel id
    while True:
        try:
            assert srv.execute(kernel_id, "print(6 * 7)", timeout=20).strip() == "42"
            break
        except (AssertionError, TimeoutError):
            if time.monotonic() > deadline:
                raise AssertionError(f"the kernel did not come back after the OOM kill:\n{srv.log_tail()}") from None
            time.sleep(1)


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
