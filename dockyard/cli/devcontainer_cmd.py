"""`dockyard devcontainer generate [ENV...] [--check]`: VS Code dev containers from the same specs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from .. import devcontainer
from .. import spec as specs
from .common import console


def register(sub: argparse._SubParsersAction) -> None:
    dc = sub.add_parser("devcontainer", help="VS Code dev container configs on the kernels' images")
    dc_sub = dc.add_subparsers(dest="devcontainer_command", metavar="ACTION", required=True)
    p = dc_sub.add_parser(
        "generate",
        help="write .devcontainer/<env>[-<variant>]/devcontainer.json for every variant (all environments when none are given)",
    )
    p.add_argument("envs", nargs="*", metavar="ENV", help="environment names, e.g. pytorch")
    p.add_argument("--workspace", type=Path, default=Path("."), metavar="DIR",
                   help="the folder VS Code opens; configs go to DIR/.devcontainer (default: current directory)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when the files on disk differ from the specs")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    loaded = [specs.load(n) for n in args.envs] if args.envs else specs.load_all()
    files = devcontainer.render_all(loaded, args.workspace)
    out_dir = args.workspace / devcontainer.DIRNAME
    complete = not args.envs  # only a full run knows which generated folders are stale
    if args.check:
        problems = devcontainer.differences(files, out_dir, complete=complete)
        for line in problems:
            console.print(f"[red]{escape(line)}[/]", soft_wrap=True)  # paths stay whole for copy-paste
        if problems:
            console.print("run 'dockyard devcontainer generate' and commit the result")
            return 1
        console.print(f"[green]up to date[/] {len(files)} dev container config(s) in {escape(str(out_dir))}")
        return 0
    changed = devcontainer.write(files, out_dir, complete=complete)
    for path in changed:
        console.print(f"[green]wrote[/] {escape(str(path))}" if path.exists() else f"[yellow]removed[/] {escape(str(path))}", soft_wrap=True)
    console.print(f"{len(files)} dev container config(s) in {escape(str(out_dir))}, {len(changed)} changed")
    return 0
