"""kernel/figures.py and its views: engine stats → a kernel's figures, the kernel table, `kernels top` (no engine)."""

from __future__ import annotations

import datetime

from rich.console import Console

from dockyard.cli import top_cmd
from dockyard.frontends.panel import kernels
from dockyard.kernel import figures
from dockyard.kernel.collector import KernelRow

MiB = 1 << 20


def _stats(cpu_ns: int, system_ns: int, used: int, cache: int = 0, limit: int = 256 * MiB, pids: int = 7) -> dict:
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": cpu_ns}, "system_cpu_usage": system_ns, "online_cpus": 2},
        "memory_stats": {"usage": used, "limit": limit, "stats": {"inactive_file": cache}},
        "pids_stats": {"current": pids},
    }


def test_cpu_percent_is_docker_stats_formula_between_two_samples():
    a = figures.sample(_stats(1_000_000_000, 100_000_000_000, 50 * MiB))
    # 0.5 s of the kernel's CPU while the host's 2 CPUs ran 2 s (1 s wall): half of one CPU, 50 %.
    b = figures.sample(_stats(1_500_000_000, 102_000_000_000, 50 * MiB))
    assert figures.cpu_percent(a, b) == 50.0
    assert figures.cpu_percent(None, b) is None  # one sample says nothing about the rate
    assert figures.cpu_percent(b, a) is None  # a counter that went back (a restarted container)


def test_memory_leaves_out_the_dropable_page_cache_and_knows_a_missing_limit():
    s = figures.sample(_stats(0, 1, used=300 * MiB, cache=100 * MiB))
    assert s.memory_used == 200 * MiB
    limited = figures.figures(None, s, memory_limit=256 * MiB, nano_cpus=500_000_000, gpu=None)
    assert limited.memory_limit == 256 * MiB
    assert limited.cpus == 0.5
    assert limited.as_json()["memory_fraction"] == 200 / 256
    unlimited = figures.figures(None, s, memory_limit=0, nano_cpus=0, gpu=None)
    assert unlimited.memory_limit is None
    assert unlimited.cpus == 2.0
    assert unlimited.as_json()["memory_fraction"] is None
    assert unlimited.pids == 7


def test_a_kernel_without_gpu_says_no_gpu_never_zero():
    s = figures.sample(_stats(0, 1, 10 * MiB))
    j = figures.figures(None, s, memory_limit=0, nano_cpus=0, gpu=None).as_json()
    assert j["gpu"] == "no GPU"
    gpu = figures.Gpu(memory_used=3 << 30, memory_total=80 << 30, utilization=42.0)
    j = figures.figures(None, s, memory_limit=0, nano_cpus=0, gpu=gpu).as_json()
    assert j["gpu"] == {"memory_used": 3 << 30, "memory_total": 80 << 30, "utilization": 42.0}


def test_nvidia_smi_csv_parses_into_the_kernels_gpu_figures():
    gpu = figures.parse_nvidia_smi("81559, 4000, 37\n81559, 0, 5\n", "2048\n1024\n")
    assert gpu == figures.Gpu(memory_used=3072 * MiB, memory_total=2 * 81559 * MiB, utilization=37.0)
    assert figures.holds_gpu_memory(gpu)
    assert figures.parse_nvidia_smi("", "") is None
    assert figures.parse_nvidia_smi("No devices were found", "") is None
    assert figures.parse_nvidia_smi("81559, 0, [N/A]", "").utilization == 0.0
    idle = figures.parse_nvidia_smi("81559, 0, 0", "")
    assert idle.memory_used == 0
    assert not figures.holds_gpu_memory(idle)
    # No process listed (a PID namespace) while the GPU holds memory: unknown, and never culled on a guess.
    unknown = figures.parse_nvidia_smi("81559, 5000, 3", "")
    assert unknown.memory_used is None
    assert not figures.holds_gpu_memory(unknown)
    assert not figures.holds_gpu_memory(None)


def test_bars_and_sizes():
    assert figures.bar(0.0, 4) == "    "
    assert figures.bar(1.0, 4) == "████"
    assert figures.bar(0.5, 4) == "██  "
    assert figures.bar(2.0, 4) == "████"  # a kernel over 100 % of its share fills the bar, no more
    assert figures.bar(None, 3) == "   "
    assert figures.size(256 * MiB) == "256M"
    assert figures.size(3 << 29) == "1.5G"
    assert figures.size(None) == "-"


def _row(kid: str, pooled: bool = False, gpu: figures.Gpu | None = None) -> KernelRow:
    s = figures.sample(_stats(0, 1, 100 * MiB))
    f = figures.figures(None, s, memory_limit=200 * MiB, nano_cpus=0, gpu=gpu)
    return KernelRow(kid, "c" + kid, "pytorch", "cpu", pooled, f)


def test_kernel_table_joins_notebooks_and_the_servers_idle_state():
    last = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    models = {"k1": {"execution_state": "idle", "last_activity": last, "connections": 1}}
    t = kernels.table(
        [_row("pool-1", pooled=True), _row("k1")], {"k1": "work/a.ipynb"}, models, taken_at=1.0, interval=2
    )
    first, second = t["kernels"]
    assert first["notebook"] == "work/a.ipynb"
    assert first["idle_since"] == "2026-01-02T03:04:05+00:00"
    assert first["connections"] == 1
    assert first["memory_fraction"] == 0.5
    assert second["notebook"] == "(pool)"
    assert t["interval"] == 2


def test_top_renders_bars_and_says_no_gpu():
    console = Console(width=140, record=True)
    gpu = figures.Gpu(memory_used=1 << 30, memory_total=4 << 30, utilization=12)
    console.print(top_cmd.render([_row("abcdef123456"), _row("gpu1", gpu=gpu)]))
    text = console.export_text()
    assert "abcdef12" in text
    assert "100M / 200M" in text
    assert "no GPU" in text
    assert "1.0G/4.0G 12%" in text
    assert "█" in text
    console = Console(width=140, record=True)
    console.print(top_cmd.render([]))
    assert "no dockyard kernel is running" in console.export_text()
