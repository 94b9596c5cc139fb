"""A shutdown that arrives while a kernel restarts waits for that restart, instead of hanging the server.

jupyter_client's MultiKernelManager._async_shutdown_kernel asks `km.ready.exception()` of each kernel. During a
restart `ready` is a fresh, unfinished future (jupyter_client.manager.in_pending_state), so that call raises
InvalidStateError: a SIGTERM or Ctrl-C then ends the server's cleanup half-way, the server keeps running, and its
kernels' containers outlive it until something kills it (jupyter_client#967 is the upstream fix in waiting).
A container kernel's restart takes a second or more (longer for large images, or after an OOM kill), so a
shutdown lands in that window far more often than with local kernels. Installed by the panel's server extension.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

RESTART_WAIT_SECONDS = 60.0  # a restart is a container start; past this, shut down anyway (jupyter_client's error)


def install(km: Any, log: Any, wait: float = RESTART_WAIT_SECONDS) -> None:
    """Make the server's MappingKernelManager finish a kernel's restart before shutting that kernel down."""
    original = km._async_shutdown_kernel

    async def shutdown_kernel(kernel_id: str, now: bool = False, restart: bool = False) -> None:
        await restart_done(km, kernel_id, wait, log)
        await original(kernel_id, now=now, restart=restart)

    # Both names: shutdown_all calls the private one, the REST handlers the public one.
    km._async_shutdown_kernel = shutdown_kernel
    km.shutdown_kernel = shutdown_kernel


async def restart_done(km: Any, kernel_id: str, wait: float, log: Any) -> None:
    """Wait (up to `wait` seconds) until kernel_id's start or restart has finished, whatever its outcome."""
    kernel = getattr(km, "_kernels", {}).get(kernel_id)
    ready = getattr(kernel, "_ready", None)
    if ready is None or ready.done():
        return
    log.info("dockyard: kernel %s is restarting; shutting it down once its container has started", kernel_id)
    pending = asyncio.wrap_future(ready) if isinstance(ready, concurrent.futures.Future) else ready
    await asyncio.wait([pending], timeout=wait)  # its outcome, even a failure, is the shutdown's business
