"""Jupyter's culler with dockyard's timeouts on real kernel containers: idle vs busy vs GPU-holding.

The server's AsyncMappingKernelManager runs in this process (the very class `jupyter server` uses), with
kernel/culling.py installed as the server extension installs it; a fake GPU probe says which kernel holds
GPU memory (no GPU here). cull_kernels() is Jupyter's periodic check, called directly instead of waiting.
The last test runs a real `jupyter server` with dockyard's settings, as a user would, for what the
notebook is told after its kernel was culled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from dockyard.config import CullOptions
from dockyard.kernel import culling
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import gone, install_kernelspecs, remove_leftovers, start_jupyter, stderr_of_cell, stop_jupyter

pytestmark = pytest.mark.engine


async def _scenario(jupyter_path: Path, root: Path, docker_client) -> None:
    km = AsyncMappingKernelManager(
        root_dir=str(root), kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
    )
    km.connection_dir = str(root)
    ids: dict[str, str] = {}

    async def holds_gpu(kid: str) -> bool:  # the fake GPU probe
        return kid == ids.get("gpu")

    assert culling.install(km, CullOptions(idle_timeout=8, gpu_idle_timeout=2), holds_gpu, logging.getLogger("t"))
    try:
        for role in ("idle", "busy", "gpu"):
            ids[role] = await km.start_kernel(kernel_name="dockyard-minimal-cpu", path="")
        provisioners = {role: km.get_kernel(kid).provisioner for role, kid in ids.items()}
        cids = {role: p.container_id for role, p in provisioners.items()}
        files = {role: km.get_kernel(kid).connection_file for role, kid in ids.items()}
        kc = km.get_kernel(ids["busy"]).client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        kc.execute("import time; time.sleep(60)")
        deadline = time.monotonic() + 20
        while km.get_kernel(ids["busy"]).execution_state != "busy":
            assert time.monotonic() < deadline, "the busy kernel never reported busy"
            await asyncio.sleep(0.2)
        for role in ("idle", "gpu"):  # every kernel starts with the same quiet moment
            km.get_kernel(ids[role]).last_activity = km.get_kernel(ids["busy"]).last_activity

        await asyncio.sleep(3)  # past the GPU timeout, not the idle one
        await km.cull_kernels()
        assert set(km.list_kernel_ids()) == {ids["idle"], ids["busy"]}, "only the GPU-holding kernel goes first"
        assert gone(docker_client, cids["gpu"])
        assert not os.path.exists(files["gpu"])

        await asyncio.sleep(6)  # past the idle timeout too; the busy kernel is still running its cell
        await km.cull_kernels()
        assert km.list_kernel_ids() == [ids["busy"]], "a busy kernel is not idle (cull_busy is off)"
        assert gone(docker_client, cids["idle"])
        assert not os.path.exists(files["idle"])
        assert not gone(docker_client, cids["busy"])
        kc.stop_channels()
    finally:
        await km.shutdown_all(now=True)
    assert all(gone(docker_client, cid) for cid in cids.values()), "a kernel container outlived its kernel"


def test_idle_and_gpu_holding_kernels_are_culled_busy_ones_kept_and_nothing_remains(tmp_path, built, docker_client):
    built("minimal:cpu")
    jupyter_path = install_kernelspecs(tmp_path / "prefix")
    asyncio.run(_scenario(jupyter_path, tmp_path, docker_client))


def test_a_culled_notebook_is_told_why_under_the_next_cell_it_runs(tmp_path, built, docker_client):
    """The server culls a notebook's idle kernel (nobody connected); when the notebook comes back, its new kernel
    says under the first cell run why the variables are gone and which setting keeps kernels longer."""
    built("minimal:cpu")
    jupyter_path = install_kernelspecs(tmp_path / "prefix")
    env = {"DOCKYARD_CULL_IDLE_TIMEOUT": "5", "DOCKYARD_CULL_INTERVAL": "1"}
    srv = start_jupyter("server", jupyter_path, tmp_path / "server", **env)
    try:
        first = srv.new_session("dockyard-minimal-cpu", "work.ipynb")
        assert first.status_code == 201, srv.log_tail()
        kernel_id = first.json()["kernel"]["id"]
        assert srv.execute(kernel_id, "x = 41; print('set')").strip() == "set"
        [container] = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"})
        deadline = time.monotonic() + 60
        while kernel_id in {k["id"] for k in srv.api("GET", "/api/kernels").json()}:
            assert time.monotonic() < deadline, f"the idle kernel was not culled:\n{srv.log_tail()}"
            time.sleep(0.5)
        assert gone(docker_client, container.id)

        # Another notebook's kernel starting first does not take the news (the notebook's own would miss it).
        assert srv.new_session("dockyard-minimal-cpu", "other.ipynb").status_code == 201, srv.log_tail()
        again = srv.new_session("dockyard-minimal-cpu", "work.ipynb")  # the notebook comes back
        assert again.status_code == 201, srv.log_tail()
        new_id = again.json()["kernel"]["id"]
        assert new_id != kernel_id
        err, _ = asyncio.run(stderr_of_cell(srv, new_id, "print(x + 1)", "idle culler", timeout=60))
        assert "kernels.cull.idle_timeout is 5 s" in err, err
        assert "variables are gone" in err, err
        assert "DOCKYARD_CULL_IDLE_TIMEOUT" in err, err
    finally:
        stop_jupyter(srv)
        leftovers = remove_leftovers(docker_client, srv.proc.pid, wait=10)
    assert not leftovers, f"kernel containers outlived their server: {leftovers}"
