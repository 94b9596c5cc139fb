"""One reader of every dockyard kernel container's figures (kernel/figures.py): one pass over all kernels per
tick, one engine call per kernel, not a thread or stream per kernel.

Sampler.read is the blocking pass (`dockyard kernels top` calls it directly); Collector runs it in the
Jupyter server's event loop, only while someone looks (the panel, the REST endpoint, the culler), so a
server nobody watches pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests

from ..engine.containers import Listed, owned
from ..labels import LABEL_ENV, LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_KEY, LABEL_VARIANT
from . import figures
from .figures import Figures, Gpu, Sample

GPU_EVERY = 10.0  # seconds between nvidia-smi readings of a GPU kernel: an exec costs far more than a stats call
GpuProbe = Callable[[docker.DockerClient, str], "Gpu | None"]


@dataclasses.dataclass(frozen=True)
class KernelRow:
    """One kernel container and its figures."""

    kernel_id: str
    container: str
    env: str
    variant: str
    pooled: bool
    figures: Figures

    def as_json(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "container": self.container,
            "env": self.env,
            "variant": self.variant,
            "pooled": self.pooled,
            **self.figures.as_json(),
        }


def nvidia_smi(client: docker.DockerClient, cid: str) -> Gpu | None:
    """The GPU figures of a container that holds GPUs, from nvidia-smi run inside it (the NVIDIA runtime
    mounts it there); None when it is missing or fails."""
    fmt = "--format=csv,noheader,nounits"
    try:
        gpus = client.api.exec_start(
            client.api.exec_create(cid, ["nvidia-smi", "--query-gpu=memory.total,utilization.gpu", fmt])
        )
        apps = client.api.exec_start(
            client.api.exec_create(cid, ["nvidia-smi", "--query-compute-apps=used_memory", fmt])
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None
    return figures.parse_nvidia_smi(gpus, apps)


def _text(out: Any) -> str:
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)


@dataclasses.dataclass
class _Known:
    """What a container's inspect says once (its limits and GPUs do not change while it runs)."""

    memory_limit: int
    nano_cpus: int
    has_gpu: bool
    last: Sample | None = None
    gpu: Gpu | None = None
    gpu_at: float = 0.0


class Sampler:
    """Reads all kernel containers (of one owner, or all) and keeps each one's last sample for CPU %."""

    def __init__(self, client: docker.DockerClient, gpu_probe: GpuProbe = nvidia_smi) -> None:
        self.client = client
        self.gpu_probe = gpu_probe
        self._known: dict[str, _Known] = {}

    def read(self, owner: str | None = None) -> list[KernelRow]:
        try:
            listed = owned(self.client, *([f"{LABEL_OWNER}={owner}"] if owner else []), running=True)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return []
        rows = []
        for c in listed:
            with contextlib.suppress(docker.errors.NotFound):  # ended between the list and its stats
                rows.append(self._row(c))
        alive = {r.container for r in rows}
        self._known = {cid: k for cid, k in self._known.items() if cid in alive}
        return rows

    def _row(self, c: Listed) -> KernelRow:
        cid = c.id
        known = self._known.get(cid) or self._inspect(cid)
        self._known[cid] = known
        cur = figures.sample(self.client.api.stats(cid, stream=False, one_shot=True))
        prev, known.last = known.last, cur
        if known.has_gpu and time.monotonic() - known.gpu_at >= GPU_EVERY:
            known.gpu, known.gpu_at = self.gpu_probe(self.client, cid), time.monotonic()
        note = "GPU figures unavailable (nvidia-smi failed in the container)" if known.has_gpu else figures.NO_GPU
        labels = c.labels
        return KernelRow(
            kernel_id=labels.get(LABEL_KERNEL_ID, ""),
            container=cid,
            env=labels.get(LABEL_ENV, ""),
            variant=labels.get(LABEL_VARIANT, ""),
            pooled=LABEL_POOL_KEY in labels,
            figures=figures.figures(
                prev,
                cur,
                memory_limit=known.memory_limit,
                nano_cpus=known.nano_cpus,
                gpu=known.gpu if known.has_gpu else None,
                gpu_note=note,
            ),
        )

    def _inspect(self, cid: str) -> _Known:
        host = self.client.api.inspect_container(cid).get("HostConfig") or {}
        requests_ = host.get("DeviceRequests") or []
        has_gpu = any(["gpu"] in (r.get("Capabilities") or []) for r in requests_) or bool(
            (host.get("Runtime") or "") == "nvidia"
        )
        return _Known(int(host.get("Memory") or 0), int(host.get("NanoCpus") or 0), has_gpu)


class Collector:
    """The server's one collector: reads every `interval` s while someone asked within `keep_for` s."""

    def __init__(self, sampler: Sampler, owner: str | None, interval: float = 2.0, keep_for: float = 30.0) -> None:
        self.sampler = sampler
        self.owner = owner
        self.interval = interval
        self.keep_for = keep_for
        self.rows: list[KernelRow] = []
        self.taken_at = 0.0
        self._asked = 0.0
        self._task: asyncio.Task[None] | None = None

    async def latest(self) -> list[KernelRow]:
        """The last figures; the first call after a quiet spell reads at once (CPU % follows a tick later)."""
        self._asked = time.monotonic()
        if self._task is None or self._task.done():
            await self._read()
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self.rows

    async def _read(self) -> None:
        self.rows = await asyncio.to_thread(self.sampler.read, self.owner)
        self.taken_at = time.time()

    async def _run(self) -> None:
        while time.monotonic() - self._asked < self.keep_for:
            await asyncio.sleep(self.interval)
            await self._read()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
