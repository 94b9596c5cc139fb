"""The kernel start's side of the warm pool: take a pooled container for a kernel, and keep the pool filled.

The provisioner asks `take` before a first cold start and `keep` after any start; neither may ever stop a
kernel from starting, so both log and give up on any failure (the kernel then starts cold, the pool stays
as it was).
"""

from __future__ import annotations

import logging
from typing import Any

import docker
from jupyter_client.connect import KernelConnectionInfo

from ...config import PoolOptions
from ..container import KernelContainer
from . import pooled as pool
from .keeper import PoolKeeper


def modules(kernel_spec: Any) -> tuple[str, ...]:
    """The modules a pooled twin of this kernelspec's kernels imports while it waits (its framework's)."""
    framework = str((kernel_spec.metadata.get("dockyard") or {}).get("framework", ""))
    return pool.FRAMEWORK_MODULES.get(framework, ())


def take(
    client: docker.DockerClient, kc: KernelContainer, km: Any, options: PoolOptions, log: logging.Logger | Any
) -> pool.Claimed | None:
    """A ready pooled container claimed for the kernel kc describes, if one fits exactly; None: start cold."""
    if km.curve_publickey is not None or options.size <= 0:
        return None  # CurveZMQ keys are the KernelManager's own: a pooled kernel cannot have them
    try:
        return pool.claim(client, kc, new_name=kc.name)
    except Exception as exc:  # the pool must never stop a kernel from starting
        log.warning("dockyard: could not use the kernel pool: %s", exc)
        return None


def connection_info(claimed: pool.Claimed) -> KernelConnectionInfo:
    """The pooled kernel's ports and key, as jupyter_client wants them from launch_kernel (the key as bytes)."""
    info = dict(claimed.connection_info)
    info["key"] = str(info["key"]).encode()
    return info  # type: ignore[return-value]


def keep(kc: KernelContainer, kernel_spec: Any, options: PoolOptions, log: logging.Logger | Any) -> None:
    """Refill the pool behind a kernel like kc that just started (in the keeper's background thread)."""
    try:
        PoolKeeper.instance().want(kc, modules(kernel_spec), options)
    except Exception as exc:
        log.warning("dockyard: could not schedule the kernel pool: %s", exc)
