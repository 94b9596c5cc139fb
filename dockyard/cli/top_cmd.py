"""`dockyard kernels top`: every dockyard kernel container on the engine with its CPU, memory against its
limit, PIDs and GPU, live (like `top`), or once as JSON for scripts. The same figures as the panel's REST
endpoint (kernel/collector.py), read here straight from the engine: no Jupyter server needed."""

from __future__ import annotations

import argparse
import json
import time

from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .. import engine
from ..kernel import figures
from ..kernel.collector import KernelRow, Sampler
from .shared import SubParsers, console

_FIRST_GAP = 1.0  # s between the first two samples: CPU % needs two


def register(sub: SubParsers) -> None:
    p = sub.add_parser("top", help="live CPU, memory, PIDs and GPU of every dockyard kernel container")
    p.add_argument("--json", action="store_true", help="print the figures once as JSON and exit")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between refreshes (default 2)")
    p.set_defaults(func=cmd_top)


def render(rows: list[KernelRow]) -> Table:
    """The table `top` shows: small bars next to the numbers."""
    table = Table(box=None, pad_edge=False)
    for column in ("kernel", "environment", "CPU", "memory / limit", "PIDs", "GPU"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        f = row.figures
        cpu = "  …" if f.cpu_percent is None else f"{f.cpu_percent:5.1f}%"
        cpu_bar = figures.bar(None if f.cpu_percent is None else f.cpu_percent / 100 / f.cpus, 8)
        limit = figures.size(f.memory_limit) if f.memory_limit else "no limit"
        mem_bar = figures.bar(f.memory_used / f.memory_limit if f.memory_limit else None, 8)
        if f.gpu is None:
            gpu = escape(f.gpu_note)
        else:
            held = f.gpu.memory_used
            used = held / f.gpu.memory_total if held is not None and f.gpu.memory_total else None
            gpu = (
                f"[green]{figures.bar(used, 6)}[/] {figures.size(held) if held is not None else '?'}/"
                f"{figures.size(f.gpu.memory_total)} {f.gpu.utilization:.0f}%"
            )
        table.add_row(
            escape(row.kernel_id[:8] + (" (pool)" if row.pooled else "")),
            escape(f"{row.env}:{row.variant}"),
            f"[cyan]{cpu_bar}[/] {cpu}",
            f"[magenta]{mem_bar}[/] {figures.size(f.memory_used)} / {limit}",
            str(f.pids),
            gpu,
        )
    if not rows:
        table.add_row("[dim]no dockyard kernel is running[/]", "", "", "", "", "")
    return table


def cmd_top(args: argparse.Namespace) -> int:
    sampler = Sampler(engine.client())
    sampler.read()
    time.sleep(_FIRST_GAP)
    if args.json:
        print(json.dumps({"kernels": [r.as_json() for r in sampler.read()], "taken_at": time.time()}, indent=1))
        return 0
    with Live(render(sampler.read()), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(max(0.2, args.interval))
                live.update(render(sampler.read()), refresh=True)
        except KeyboardInterrupt:
            pass
    return 0
