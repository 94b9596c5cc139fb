"""One kernel's GPU lease: taken before its container is created, given back when the kernel stops.

The provisioner calls three things, so its own code stays a few lines: take() at each start (restarts too;
the devices it had are tried first), apply() on each container it is about to create (exact device request,
the sharing variables), release() at cleanup (shutdown, restart, cull, a failed start). A kernel whose choice
is `all` (the default), or whose target got no GPU, takes no lease and its container is left as it was.
Pooled containers never hold a lease: see docs/gpu.md ("The warm pool and leases").
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import docker

from .. import gpu
from ..config import Settings
from ..engine.gpu_info import read_info
from ..gpu import ledger
from ..gpu.choice import GpuChoice, parse, requests_for, sharing_environment
from ..gpu.devices import Device
from .container import KernelContainer, container_name
from .reaper import owner_id
from .target import KernelTarget, Request


def choice_of(req: Request, settings: Settings) -> tuple[GpuChoice, float]:
    """The kernel's choice and queue wait: the kernelspec's `gpus` / `gpu_wait`, else the user's settings."""
    origin = "the kernelspec's metadata.kernel_provisioner.config.gpus" if req.gpus else "kernels.gpus / DOCKYARD_GPUS"
    wait = req.gpu_wait if req.gpu_wait is not None else settings.kernels.gpu_wait
    return parse(req.gpus or settings.kernels.gpus, origin), float(wait)


@dataclasses.dataclass
class KernelGpus:
    """The leases one kernel holds now, and how its containers ask for those devices."""

    held: list[ledger.Lease] = dataclasses.field(default_factory=list)
    devices: list[Device] = dataclasses.field(default_factory=list)
    choice: GpuChoice | None = None
    method: str | None = None  # the verdict's "--gpus" or "cdi"
    discovered: tuple[str, ...] = ()  # the engine's CDI device names
    leasing: bool = False  # this start takes a lease (a GPU target and a choice other than `all`)
    _last: tuple[str, ...] = ()  # device UUIDs of the previous start (a restart prefers them)

    def take(
        self,
        client: docker.DockerClient,
        target: KernelTarget,
        req: Request,
        settings: Settings,
        kernel_id: str,
        env: dict[str, str],
        log: logging.Logger | Any,
    ) -> None:
        """Take the leases this start needs (none for `all` or a kernel without a GPU); refuses or waits.

        env: what the KernelManager passes the kernel (Jupyter Server's JPY_SESSION_NAME is the notebook's path).
        """
        choice, wait = choice_of(req, settings)
        self.choice = choice
        self.leasing = choice.leases and bool(target.device_requests)
        if not self.leasing:
            return
        info = client.info()
        verdict = gpu.assess(client, info, image=target.image)  # cached: normally no probe here
        holder = ledger.Holder(
            kernel_id=kernel_id,
            container=container_name(target.env_name, target.variant, kernel_id),
            notebook=env.get("JPY_SESSION_NAME", ""),
            user=ledger.current_user(),
            env=target.ref,
            owner=owner_id(),
        )

        def say(text: str) -> None:
            log.info("dockyard: kernel %s: %s", kernel_id, text)

        self.held = ledger.take(
            client, target.image, verdict.devices, choice, holder, prefer=self._last, wait=wait, say=say
        )
        by_uuid = {d.uuid: d for d in verdict.devices}
        self.devices = [by_uuid[lease.device] for lease in self.held]
        self.method, self.discovered = verdict.method, read_info(info).cdi_gpus
        self._last = tuple(d.uuid for d in self.devices)
        log.info(
            "dockyard: kernel %s leased %s", kernel_id, ", ".join(f"GPU {d.index} ({d.uuid})" for d in self.devices)
        )

    def apply(self, kc: KernelContainer) -> KernelContainer:
        """The container with exactly the leased devices (and, shared, the frameworks told to share)."""
        if not self.held or not kc.device_requests:  # no lease, or started again without its GPU (fallback)
            return kc
        assert self.choice is not None
        extra = sharing_environment(self.choice.fraction) if self.choice.mode == "shared" else {}
        return dataclasses.replace(
            kc,
            device_requests=requests_for(self.method, self.devices, self.discovered),
            environment={**kc.environment, **extra, "DOCKYARD_GPU_LEASE": ",".join(d.uuid for d in self.devices)},
        )

    def release(self, client: docker.DockerClient) -> None:
        held, self.held = self.held, []
        if held:
            ledger.release(client, held)

    @property
    def pooled_ok(self) -> bool:
        """Whether this kernel may use the warm pool: only without a lease (see the module's docstring)."""
        return not self.leasing
