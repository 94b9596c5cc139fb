"""Jupyter's culler with dockyard's timeouts on real kernel containers: idle vs busy vs GPU-holding.

The server's AsyncMappingKernelManager runs in this process (the very class `jupyter server` uses), with
kernel/culling.py installed as the server extension installs it; a fake GPU probe says which kernel holds
GPU memory (no GPU here). cull_kernels() is Jupyter's periodic check, called directly instead of waiting.
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

from .helpers import gone, install_kernelspecs

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
