"""`dockyard push NAME[:VARIANT]...` and `dockyard pull NAME[:VARIANT]...`: environments shared through the registry
(registry.host; docs/registry.md)."""

from __future__ import annotations

import argparse

from .. import engine, specs
from ..config import load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..images.plan import make_plan
from ..registry import transfer
from ..registry.naming import require_registry
from .shared import SubParsers, add_build_flags, build_options, console


def register(sub: SubParsers) -> None:
    for name, func, what in (
        ("push", cmd_push, "push built environment images (content tag and alias) to the registry (registry.host)"),
        ("pull", cmd_pull, "pull environment images from the registry instead of building them (labels checked)"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("refs", nargs="+", metavar="NAME[:VARIANT]")
        p.add_argument("-v", "--verbose", action="store_true", help="print the engine's per-layer progress")
        add_build_flags(p)  # the site settings are part of the content tag
        p.set_defaults(func=func)


def _line(verbose: bool) -> transfer.Output:
    return (lambda line: console.print(f"  {escape(line)}", soft_wrap=True)) if verbose else (lambda _line: None)


def cmd_push(args: argparse.Namespace) -> int:
    options, registry = build_options(args), load_settings().registry
    require_registry(registry, "dockyard push")  # before the engine: the setting is what is missing
    client = engine.client(timeout=3600)
    plans = [make_plan(s, v, options) for s, v in specs.expand(args.refs)]
    for plan in plans:
        done = transfer.push(client, plan, registry, _line(args.verbose))
        console.print(f"[green]pushed[/] {escape(done.names.tag)} (and {escape(done.names.alias)})", soft_wrap=True)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    options, registry = build_options(args), load_settings().registry
    require_registry(registry, "dockyard pull")
    client = engine.client(timeout=3600)
    plans = [make_plan(s, v, options) for s, v in specs.expand(args.refs)]
    for plan in plans:
        if plan.lock_error is not None:
            raise plan.lock_error  # a stale lock names a tag nobody pushed: say why, not "missing tag"
        done = transfer.pull(client, plan, registry, _line(args.verbose))
        if done.moved:
            console.print(f"[green]pulled[/] {escape(plan.tag)} (labels match the spec and lock)", soft_wrap=True)
        else:
            console.print(f"[green]up to date[/] {escape(plan.tag)} (here already, nothing pulled)", soft_wrap=True)
    return 0
