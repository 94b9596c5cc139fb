"""`dockyard gpus`: the GPUs the engine can give kernels, and who holds each (gpu/ledger.py)."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from .. import engine, gpu
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..gpu import ledger
from ..gpu.listing import overview
from .shared import SubParsers, console


def register(sub: SubParsers) -> None:
    p = sub.add_parser("gpus", help="the GPUs kernels can lease, and which kernel (notebook, user) holds each")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--probe", action="store_true", help="probe the engine afresh (else the cached verdict)")
    p.set_defaults(func=cmd_gpus)


def cmd_gpus(args: argparse.Namespace) -> int:
    client = engine.client()
    verdict = gpu.assess(client, client.info(), fresh=args.probe)
    ledger.reap(client)  # a dead holder's lease is not shown as held
    rows = overview(verdict.devices, ledger.describe_all(client), {})
    if args.json:
        print(json.dumps({"usable": verdict.usable, "reason": verdict.reason, "devices": rows}, indent=1))
        return 0
    if not verdict.usable or not verdict.devices:
        console.print(f"no GPUs to lease: {escape(verdict.reason)}", soft_wrap=True)
        return 0
    table = Table("GPU", "UUID", "name", "memory", "state", "held by", box=None)
    for row in rows:
        mem = f"{row['memory_mib']} MiB" if row.get("memory_mib") else ""
        holders = "; ".join(_who(h) for h in row["holders"]) or "-"
        table.add_row(*(escape(str(v)) for v in (row["index"], row["uuid"], row["name"], mem, row["state"], holders)))
    console.print(table)
    if waiting := ledger.queue_length(client):
        console.print(f"{waiting} kernel start(s) waiting in the GPU queue")
    return 0


def _who(h: dict[str, object]) -> str:
    since = time.strftime("%H:%M", time.localtime(float(str(h["since"])))) if h.get("since") else "?"
    where = h["notebook"] or f"kernel {str(h['kernel_id'])[:8]}"
    return f"{h['user']}: {where} ({h['env']}, {h['mode']}, since {since})"
