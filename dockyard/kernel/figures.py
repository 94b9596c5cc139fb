"""What a kernel's container uses, from the engine's stats (pure, no I/O): CPU %, memory against its limit,
PIDs and, on GPU kernels, the GPU memory and utilisation `nvidia-smi` reports inside it.

CPU % is measured as `docker stats` does (cpu time delta over system time delta, times the online CPUs),
but between two one-shot samples the collector took itself, so a poll costs one quick call per kernel
instead of the engine's own two-sample wait. Memory in use leaves out the page cache the kernel could
drop (inactive_file), again as `docker stats` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

NO_GPU = "no GPU"  # said, never a made-up 0, when the kernel holds no GPU


@dataclasses.dataclass(frozen=True)
class Sample:
    """One stats reading of one container."""

    cpu_total: int  # ns of CPU the container used, all time
    system_total: int  # ns of CPU the host used, all time (0: the engine did not say)
    online_cpus: int
    memory_used: int  # bytes, without the inactive page cache
    memory_limit: int  # bytes; the host's memory when the container has no limit
    pids: int


@dataclasses.dataclass(frozen=True)
class Gpu:
    """What nvidia-smi reports for the kernel's GPU(s)."""

    memory_used: int | None  # bytes, by the container's processes; None: nvidia-smi could not say
    memory_total: int  # bytes, of the GPUs the container sees
    utilization: float  # %, the busiest of its GPUs


@dataclasses.dataclass(frozen=True)
class Figures:
    """One kernel's figures, as the panel, the REST endpoint and `dockyard kernels top` show them."""

    cpu_percent: float | None  # None: no earlier sample yet
    cpus: float  # what 100 % of one CPU is out of: the CPU limit, or the online CPUs
    memory_used: int
    memory_limit: int | None  # None: no limit (the host's memory is the ceiling)
    pids: int
    gpu: Gpu | None  # None with gpu_note saying why

    gpu_note: str = ""

    def as_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["memory_fraction"] = self.memory_used / self.memory_limit if self.memory_limit else None
        note = out.pop("gpu_note")
        if self.gpu is None:
            out["gpu"] = note or NO_GPU
        return out


def sample(stats: Mapping[str, Any]) -> Sample:
    """A Sample from the engine's /containers/{id}/stats answer (cgroup v1 or v2)."""
    cpu = stats.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))  # v2, v1
    used = int(mem.get("usage") or 0)
    return Sample(
        cpu_total=int(usage.get("total_usage") or 0),
        system_total=int(cpu.get("system_cpu_usage") or 0),
        online_cpus=int(cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1),
        memory_used=used - int(cache) if 0 < int(cache) < used else used,
        memory_limit=int(mem.get("limit") or 0),
        pids=int((stats.get("pids_stats") or {}).get("current") or 0),
    )


def cpu_percent(prev: Sample | None, cur: Sample) -> float | None:
    """% of one CPU used between two samples (200 % is two CPUs busy); None without a usable earlier one."""
    if prev is None:
        return None
    cpu = cur.cpu_total - prev.cpu_total
    system = cur.system_total - prev.system_total
    if system <= 0 or cpu < 0:
        return None
    return 100.0 * cpu / system * cur.online_cpus


def figures(
    prev: Sample | None,
    cur: Sample,
    *,
    memory_limit: int,
    nano_cpus: int,
    gpu: Gpu | None,
    gpu_note: str = NO_GPU,
) -> Figures:
    """The figures of one kernel. memory_limit and nano_cpus come from the container's HostConfig (0: none)."""
    return Figures(
        cpu_percent=cpu_percent(prev, cur),
        cpus=nano_cpus / 1e9 if nano_cpus else float(cur.online_cpus),
        memory_used=cur.memory_used,
        memory_limit=memory_limit or None,
        pids=cur.pids,
        gpu=gpu,
        gpu_note="" if gpu else gpu_note,
    )


def parse_nvidia_smi(gpus_csv: str, apps_csv: str) -> Gpu | None:
    """The kernel's GPU figures from two nvidia-smi queries run inside its container:
    `--query-gpu=memory.total,memory.used,utilization.gpu` and `--query-compute-apps=used_memory`, both
    `--format=csv,noheader,nounits` (MiB and %). None when no GPU is listed.

    The memory is its processes' (compute apps). In a PID namespace nvidia-smi may list no process although
    the GPU holds memory: then the kernel's share is unknown (memory_used None), unless its GPUs hold none.
    """
    totals: list[int] = []
    used_on_gpus = 0
    utils: list[float] = []
    for line in gpus_csv.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[0].isdigit():
            totals.append(int(fields[0]) << 20)
            used_on_gpus += int(fields[1]) << 20 if fields[1].isdigit() else 0
            utils.append(float(fields[2]) if _number(fields[2]) else 0.0)
    if not totals:
        return None
    apps = [int(f.strip()) << 20 for f in apps_csv.splitlines() if f.strip().isdigit()]
    used: int | None = sum(apps) if apps else (0 if used_on_gpus == 0 else None)
    return Gpu(memory_used=used, memory_total=sum(totals), utilization=max(utils))


def holds_gpu_memory(gpu: Gpu | None) -> bool:
    """For the culler: known to hold GPU memory (an unknown share does not count: never cull on a guess)."""
    return gpu is not None and gpu.memory_used is not None and gpu.memory_used > 0


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def size(n: int | None) -> str:
    """Bytes for a narrow column: '312M', '1.5G'."""
    if n is None:
        return "-"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            value = n / scale
            return (f"{value:.1f}" if value < 10 else f"{value:.0f}") + unit
    return f"{n}B"


def bar(fraction: float | None, width: int = 10) -> str:
    """A small text bar: '███▌      ' for 0.35; blank when unknown."""
    if fraction is None:
        return " " * width
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)
