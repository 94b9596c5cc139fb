"""Why a kernel's container ended, as one paragraph for the notebook and the server log (pure, no I/O).

The engine keeps what a user needs to know after the fact: State.OOMKilled and the memory limit it hit,
the exit code (128 + a signal), and the log, where CUDA and the NVIDIA driver (Xid) say what went wrong.
kernel/death_notice.py reads those facts and delivers the paragraph; this module only words them.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Mapping
from typing import Any

_TAIL_LINES = 8  # of the container's log, in the paragraph: enough for a traceback's last frames
# What CUDA, the frameworks and the NVIDIA driver write when the GPU is the cause.
_GPU_ERROR = re.compile(
    r"\bXid\b|CUDA error|CUDA out of memory|cudaError\w+|CUBLAS_STATUS_\w+|CUDNN_STATUS_\w+|NCCL error"
    r"|RESOURCE_EXHAUSTED.*(GPU|device)|an illegal memory access",
    re.IGNORECASE,
)
# ipykernel's start-up banner: in every kernel's log, never the reason it died.
_BANNER = re.compile(
    r"running over TCP without encryption|`ipython kernel` entry point|To exit, you will have to|\"quit\" from a client"
    r"|To read more about this, see|To connect another client|--existing "
)
_GPU_OOM = re.compile(r"CUDA out of memory|cudaErrorMemoryAllocation|RESOURCE_EXHAUSTED", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Exit:
    """What the engine knows about a container that ended."""

    name: str
    code: int
    oom_killed: bool
    memory_limit: int  # bytes; 0: no limit
    error: str  # State.Error: the engine's own reason (a failed mount, a missing runtime), usually ''
    log: str  # the last lines of the container's log


def from_inspect(name: str, attrs: Mapping[str, Any], log: str) -> Exit:
    """An Exit from `docker inspect`'s attributes and the log's last lines."""
    state = attrs.get("State") or {}
    host = attrs.get("HostConfig") or {}
    return Exit(
        name=name,
        code=int(state.get("ExitCode", -1)),
        oom_killed=bool(state.get("OOMKilled")),
        memory_limit=int(host.get("Memory") or 0),
        error=str(state.get("Error") or ""),
        log=log,
    )


def size(n: int) -> str:
    """Bytes as people read a limit: '256 MiB', '1.5 GiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def gpu_errors(log: str) -> list[str]:
    """The log lines in which CUDA or the driver reports a GPU error (each once, in order)."""
    seen: dict[str, None] = {}
    for line in log.splitlines():
        if _GPU_ERROR.search(line):
            seen.setdefault(line.strip()[:300], None)
    return list(seen)


def _signal_name(code: int) -> str | None:
    if code <= 128:
        return None
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return None


def _tail(log: str) -> str:
    lines = [line for line in log.rstrip().splitlines() if line.strip() and not _BANNER.search(line)][-_TAIL_LINES:]
    return "Last lines of its log: " + " | ".join(line.strip() for line in lines) if lines else "Its log is empty."


def paragraph(e: Exit) -> str:
    """One paragraph: what ended the kernel, the facts behind it, and the fix."""
    where = f"The kernel in container {e.name}"
    gpu = gpu_errors(e.log)
    if e.oom_killed:
        limit = f"out of memory at {size(e.memory_limit)}" if e.memory_limit else "out of memory"
        what = f"{where} was killed: {limit} (the engine's OOM killer, exit code {e.code}); its variables are lost."
        fix = (
            "Fix: raise resources.memory in the environment's spec (or 'memory' in the kernelspec's provisioner "
            "config), or hold less at once: a smaller batch, data loaded in chunks, large objects deleted (del x)."
            if e.memory_limit
            else "Fix: the host ran out of memory; give the kernel a limit (resources.memory) so it fails alone, "
            "or hold less at once (a smaller batch, data loaded in chunks)."
        )
    elif gpu:
        what = f"{where} died (exit code {e.code}) after GPU errors: " + " | ".join(gpu[:3]) + "."
        fix = (
            "Fix: the GPU ran out of memory; use a smaller batch or model, free tensors you no longer need, "
            "or restart other kernels holding GPU memory ('dockyard kernels top' shows them)."
            if any(_GPU_OOM.search(line) for line in gpu)
            else "Fix: an Xid or CUDA error is the driver's or the device's; check 'nvidia-smi' and the host's "
            "kernel log (dmesg | grep Xid), and 'dockyard doctor' for the GPU setup."
        )
    elif (sig := _signal_name(e.code)) == "SIGKILL":
        what = (
            f"{where} was killed (SIGKILL, exit code {e.code}), not by its memory limit: something outside "
            "the kernel stopped it (docker kill or docker rm, the host's OOM killer, the engine restarting)."
        )
        fix = "Fix: check who stops containers on this host ('docker events'); the kernel restarts on demand."
    elif sig == "SIGSEGV" or sig == "SIGBUS" or sig == "SIGABRT":
        what = f"{where} crashed ({sig}, exit code {e.code}): native code (a compiled extension) failed."
        fix = (
            "Fix: the log below names the library; mismatched builds of numpy, torch or CUDA libraries are the "
            "usual cause, so rebuild the environment ('dockyard build') after aligning their versions."
        )
    else:
        how = f"ended by {sig}" if sig else "ended"
        what = f"{where} {how} unexpectedly (exit code {e.code})" + (f": {e.error}." if e.error else ".")
        fix = (
            "Fix: code that calls exit() or os._exit() ends the kernel; otherwise the traceback in its log "
            "below says why."
        )
    return f"{what} {fix} {_tail(e.log)}"
