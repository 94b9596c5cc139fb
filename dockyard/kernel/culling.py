"""Idle kernels handed back, by Jupyter's own culler (MappingKernelManager.cull_kernel_if_idle), not a second one.

Jupyter already decides what idle means (last iopub activity, cull_busy, cull_connected) and reads a
per-kernelspec `cull_idle_timeout` from the kernelspec's metadata before its server-wide one. dockyard
only supplies that per-kernel timeout: kernels.cull.idle_timeout for a dockyard kernel, the shorter
kernels.cull.gpu_idle_timeout while it holds GPU memory (the collector's GPU figures say so). Other
kernels keep the server's own setting (none when it had none). Shutting down goes through jupyter_client,
so the provisioner removes the container and its run directory as on any shutdown.

Why it went: a culled kernel usually had no notebook open (Jupyter culls connected kernels only with
cull_connected), so nobody could be told at the time. The user learns it when they come back: the next
kernel started for the same notebook (jupyter_server names it in the kernel's JPY_SESSION_NAME) tells
`paragraph` under the first cell it is asked to run (kernel/death_notice.py's tell_next_cell), where a
NameError for a lost variable would otherwise be the only hint.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import CullOptions
from ..options import BY_KEY
from . import death_notice

PROVISIONER = "dockyard-docker-provisioner"
HoldsGpu = Callable[[str], Awaitable[bool]]  # kernel id → does it hold GPU memory now


def timeout_for(cull: CullOptions, holds_gpu: bool) -> int:
    """A dockyard kernel's idle timeout in seconds (0: never culled)."""
    if holds_gpu and cull.gpu_idle_timeout > 0:
        return min(cull.gpu_idle_timeout, cull.idle_timeout) if cull.idle_timeout > 0 else cull.gpu_idle_timeout
    return cull.idle_timeout


def seconds_left(timeout: int, last_activity: datetime.datetime | None, now: datetime.datetime) -> float | None:
    """Seconds until an idle kernel may be culled (the panel warns with it); None when it never will be."""
    if timeout <= 0 or last_activity is None:
        return None
    return max(0.0, timeout - (now - last_activity).total_seconds())


def cull_in(
    cull: CullOptions,
    *,
    holds_gpu: bool,
    busy: bool,
    connections: int,
    last_activity: datetime.datetime | None,
    now: datetime.datetime,
) -> float | None:
    """Seconds until Jupyter's culler would shut this dockyard kernel down, by its own rules; None: it will not."""
    if (busy and not cull.busy) or (connections and not cull.connected):
        return None
    return seconds_left(timeout_for(cull, holds_gpu), last_activity, now)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes >= 2 else f"{round(seconds)} seconds"


def paragraph(idle_seconds: float, timeout: int, held_gpu: bool) -> str:
    """What a notebook whose kernel was culled is told: how long it was idle, what is lost, the setting to raise."""
    key = "kernels.cull.gpu_idle_timeout" if held_gpu else "kernels.cull.idle_timeout"
    variable = BY_KEY[key].env[0]
    why = " while it held GPU memory" if held_gpu else ""
    return (
        f"This notebook's kernel was shut down by the idle culler after {_duration(idle_seconds)} without "
        f"activity{why} ({key} is {timeout} s); its variables are gone, so run the cells you need again. "
        f"Fix: raise {key} in the dockyard settings of the Jupyter server (~/.config/dockyard/config.yaml, or "
        f"{variable} in its environment; 0 never culls) and restart the server."
    )


def is_dockyard(kernel: Any) -> bool:
    try:
        meta = kernel.kernel_spec.metadata or {}
    except Exception:  # a kernel whose spec is gone: not ours to judge
        return False
    return bool((meta.get("kernel_provisioner") or {}).get("provisioner_name") == PROVISIONER)


def install(km: Any, cull: CullOptions, holds_gpu: HoldsGpu, log: Any) -> bool:
    """Make the server's MappingKernelManager cull dockyard kernels by cull; True if culling is on.

    Jupyter starts its culler only when its cull_idle_timeout is above 0, so dockyard sets it when it was 0
    and keeps the server's own value for kernels that are not dockyard's (none: never culled).
    """
    if cull.idle_timeout <= 0 and cull.gpu_idle_timeout <= 0:
        return False
    server_timeout = int(km.cull_idle_timeout)
    original: Callable[[str], Awaitable[None]] = km.cull_kernel_if_idle
    notes = _Notes(km)

    async def cull_kernel_if_idle(kernel_id: str) -> None:
        kernel = km.get_kernel(kernel_id)
        meta = kernel.kernel_spec.metadata
        held_gpu = False
        if is_dockyard(kernel):
            held_gpu = cull.gpu_idle_timeout > 0 and await holds_gpu(kernel_id)
            timeout = timeout_for(cull, held_gpu)
        else:
            timeout = int(meta.get("cull_idle_timeout", server_timeout))
        if timeout <= 0:
            return
        meta["cull_idle_timeout"] = timeout  # what Jupyter's cull_kernel_if_idle reads first
        last = getattr(kernel, "last_activity", None)
        await original(kernel_id)
        if kernel_id not in km and is_dockyard(kernel) and last is not None:
            idle = (datetime.datetime.now(datetime.timezone.utc) - last).total_seconds()
            notes.culled(kernel_id, paragraph(idle, timeout, held_gpu and timeout != cull.idle_timeout))

    km.cull_kernel_if_idle = cull_kernel_if_idle
    km.cull_busy = km.cull_busy or cull.busy
    km.cull_connected = km.cull_connected or cull.connected
    if server_timeout <= 0:
        km.cull_idle_timeout = max(cull.idle_timeout, cull.gpu_idle_timeout)
        km.cull_interval = cull.interval or km.cull_interval
    else:
        km.cull_interval = min(km.cull_interval, cull.interval or km.cull_interval)
    log.info(
        "dockyard: idle kernels are shut down after %s s (%s s while holding GPU memory); busy: %s, connected: %s",
        cull.idle_timeout or "never",
        timeout_for(cull, True) or "never",
        km.cull_busy,
        km.cull_connected,
    )
    return True


class _Notes:
    """Culled notebooks' paragraphs, told by the next kernel started for the same notebook (see above)."""

    def __init__(self, km: Any) -> None:
        self._sessions: dict[str, str] = {}  # kernel id → the notebook it was started for (JPY_SESSION_NAME)
        self._waiting: dict[str, str] = {}  # notebook → the paragraph its next kernel tells
        start_kernel: Callable[..., Awaitable[str]] = km.start_kernel

        async def start_and_tell(*args: Any, **kwargs: Any) -> str:
            kernel_id = await start_kernel(*args, **kwargs)
            session = str((kwargs.get("env") or {}).get("JPY_SESSION_NAME") or "")
            if session:
                if len(self._sessions) > 1000:  # forget kernels shut down otherwise
                    self._sessions = {k: v for k, v in self._sessions.items() if k in km}
                self._sessions[kernel_id] = session
                if (text := self._waiting.pop(session, None)) is not None:
                    death_notice.tell_next_cell(km.get_kernel(kernel_id), text)
            return kernel_id

        km.start_kernel = start_and_tell

    def culled(self, kernel_id: str, text: str) -> None:
        session = self._sessions.pop(kernel_id, None)
        if session is not None:
            self._waiting[session] = text
