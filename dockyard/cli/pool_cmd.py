"""`dockyard kernels pool [list|fill|drain]`: the warm kernel pool (kernel/pool/pooled.py, docs/pool.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from rich.table import Table

from .. import engine, specs
from ..config import load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import DockyardError
from .shared import SubParsers, console


def register(k_sub: SubParsers) -> None:
    """Registered under `dockyard kernels` (cli/kernels_cmd.py)."""
    p = k_sub.add_parser("pool", help="the warm kernel pool: list (default), fill, drain")
    p.set_defaults(func=cmd_list, json=False)
    sub = p.add_subparsers(dest="pool_command", metavar="ACTION")

    q = sub.add_parser("list", help="pooled containers on this engine: state, owner, idle memory")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser(
        "fill",
        help="start warm containers for a kernel and keep them until interrupted (Ctrl-C drains them); kernels "
        "started meanwhile by any of your Jupyter servers in DIR claim them",
    )
    q.add_argument("kernel", metavar="KERNEL|ENV[:VARIANT]", help="e.g. dockyard-pytorch-cpu or pytorch:cpu")
    q.add_argument("--dir", default=".", help="the notebook directory the kernels will start in (default: here)")
    q.add_argument("-n", "--count", type=int, default=1, help="how many (default 1)")
    q.add_argument("--no-hold", action="store_true", help="drain and exit once they are ready (a check)")
    q.set_defaults(func=cmd_fill)

    q = sub.add_parser("drain", help="remove your unclaimed pooled containers (claimed ones are kernels: kept)")
    q.set_defaults(func=cmd_drain)


def _kernel_name(text: str) -> str:
    """An installed kernelspec's name as is; an environment reference as its kernel's name."""
    from jupyter_client.kernelspec import KernelSpecManager

    if text in KernelSpecManager().find_kernel_specs():
        return text
    from ..kernel import kernelspec

    s, v = specs.resolve(text)
    return kernelspec.kernel_name(s, v)


def cmd_list(args: argparse.Namespace) -> int:
    from ..kernel.pool import pooled as pool

    client = engine.client()
    rows = pool.listing(client)
    memory = {p.id: pool.idle_memory(client, p.id) if p.state == "ready" else None for p in rows}
    if args.json:
        out = [
            {
                "name": p.name,
                "ref": p.ref,
                "state": p.state,
                "owner": p.owner,
                "idle_memory": memory[p.id],
                "age_s": round(time.time() - p.created, 1),
            }
            for p in rows
        ]
        print(json.dumps(out, indent=2))
        return 0
    table = Table("container", "environment", "state", "owner (host:pid:start)", "idle memory", "age")
    for p in rows:
        mem = memory[p.id]
        table.add_row(
            escape(p.name),
            escape(p.ref),
            p.state,
            escape(p.owner),
            f"{mem / 2**20:.0f} MiB" if mem is not None else "-",
            f"{time.time() - p.created:.0f} s",
        )
    console.print(table)
    pool_opts = load_settings().kernels.pool
    console.print(
        f"pool size {pool_opts.size} per environment and directory, at most {pool_opts.max_containers} containers and "
        f"{pool_opts.max_memory} per Jupyter server (kernels.pool in the config file, DOCKYARD_POOL_SIZE)"
    )
    return 0


def cmd_fill(args: argparse.Namespace) -> int:
    from ..kernel.pool.fill import fill_for
    from ..kernel.pool.keeper import PoolKeeper
    from ..kernel.pool.pooled import Pooled

    if args.count < 1 or args.count > 16:
        raise DockyardError(f"--count {args.count} is out of range", fix="fill 1 to 16 containers")
    cwd = Path(args.dir).expanduser()
    if not cwd.is_dir():
        raise DockyardError(f"--dir {cwd} is not a directory", fix="give the directory your notebooks are in")
    name = _kernel_name(args.kernel)
    keeper = PoolKeeper.instance()
    stop = threading.Event()
    made: list[Pooled] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        made = fill_for(name, cwd, args.count, load_settings().kernels.pool)
        for p in made:
            console.print(
                f"[green]ready[/] {escape(p.name)} ({escape(p.ref)}) for kernels started in {escape(str(cwd))}"
            )
        if len(made) < args.count:
            console.print(f"[yellow]only {len(made)} of {args.count} got ready[/]: {escape(keeper.last_error or '')}")
        if not args.no_hold and made:
            console.print(f"holding them (pid {os.getpid()}); Ctrl-C drains what is left")
            while not stop.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for n in keeper.close():
            console.print(f"[yellow]drained[/] {escape(n)}")
    return 0 if made else 1


def cmd_drain(args: argparse.Namespace) -> int:
    from ..kernel.pool import pooled as pool

    removed = pool.drain(engine.client())
    for name in removed:
        console.print(f"[yellow]removed[/] {escape(name)}")
    console.print(f"{len(removed)} pooled container(s) removed")
    return 0
