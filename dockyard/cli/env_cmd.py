"""`dockyard env list|show|validate` and `dockyard render`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from .. import specs
from ..emit.terminal import safe as escape  # every value from a file is shown inert
from ..images.plan import make_plan
from .shared import SubParsers, add_build_flags, build_options, console


def register(sub: SubParsers) -> None:
    env = sub.add_parser("env", help="list, show and validate environment specs")
    env_sub = env.add_subparsers(dest="env_command", metavar="ACTION", required=True)
    p = env_sub.add_parser("list", help="list the environments and their variants")
    p.set_defaults(func=cmd_list)
    p = env_sub.add_parser("show", help="show one environment's resolved spec")
    p.add_argument("name", help="environment name, e.g. pytorch")
    p.set_defaults(func=cmd_show)
    p = env_sub.add_parser("validate", help="validate spec files (all environments when none are given)")
    p.add_argument("files", nargs="*", type=Path, help="spec files to check")
    p.set_defaults(func=cmd_validate)

    r = sub.add_parser("render", help="print the Dockerfile for NAME[:VARIANT]")
    r.add_argument("ref", metavar="NAME[:VARIANT]")
    add_build_flags(r)
    r.set_defaults(func=cmd_render)


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="dockyard environments")
    for col in ("name", "display name", "framework", "python", "variants", "spec"):
        table.add_column(col)
    for s in specs.load_all():
        variants = ", ".join(f"{v.name} (gpu {v.gpu})" for v in s.variants.values())
        table.add_row(
            *map(escape, (s.name, s.display_name, f"{s.framework} {s.framework_version}", s.python, variants, s.path))
        )
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    s = specs.load(args.name)
    console.print(f"[bold]{escape(s.display_name)}[/] ({s.name}) — {escape(s.description)}")
    console.print(f"  spec: {escape(s.path)}\n  framework: {s.framework} {s.framework_version}\n  python: {s.python}")
    console.print(f"  resources: {escape(s.resources)}\n  kernel: {escape(str(s.kernel))}")
    for v in s.variants.values():
        console.print(
            f"  [bold]{escape(v.ref)}[/]  base {escape(v.base)}, gpu {v.gpu}"
            + (f" — {escape(v.description)}" if v.description else "")
        )
        if v.cuda is not None:
            console.print(f"      needs {escape(v.cuda.describe())}")
        for pkg in v.python_packages:
            console.print(f"      {escape(pkg)}")
        for pkg in v.system_packages:
            console.print(f"      apt: {escape(pkg)}")
        for k, val in v.env_vars.items():
            console.print(f"      env {k}={escape(val)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = [specs.load_file(f) for f in args.files] if args.files else specs.load_all()
    for s in loaded:
        console.print(f"[green]ok[/] {escape(s.path)} ({', '.join(s.variants)})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    plan = make_plan(*specs.resolve(args.ref), build_options(args))
    print(plan.dockerfile, end="")
    return 0
