"""Flags and helpers shared by several command groups."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TypeAlias

from rich.console import Console

from .. import options
from ..config import BuildOptions, load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..generated import Tree

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # each command group registers on it

# Logs and CI are not terminals: give tables room instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160))


def add_build_flags(p: argparse.ArgumentParser) -> None:
    """The build settings' flags, from the table of options (dockyard/options.py)."""
    g = p.add_argument_group("site options (also settable in the config file and DOCKYARD_* variables)")
    for option in options.FLAGGED:
        flag = option.flag
        assert flag is not None
        if not flag.metavar:
            g.add_argument(flag.name, action="store_true", default=None, help=flag.help)
        else:
            help_text = f"{flag.help} (repeatable)" if flag.repeat else flag.help
            g.add_argument(flag.name, action="append" if flag.repeat else "store", metavar=flag.metavar, help=help_text)


def add_generate_flags(p: argparse.ArgumentParser, option: str, default: Path, help: str) -> None:
    """The output folder and --check of a `generate` command (for checked-in generated trees)."""
    p.add_argument(option, type=Path, default=default, metavar="DIR", help=help)
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files on disk differ from the specs"
    )


def build_options(args: argparse.Namespace) -> BuildOptions:
    return load_settings().build.with_flags(**vars(args))


def sync_generated(tree: Tree, *, check: bool, complete: bool, what: str, command: str) -> int:
    """`generate` / `generate --check` for a checked-in generated tree; exit 1 when --check finds differences."""
    count = len(tree.folders)
    if check:
        problems = tree.differences(complete=complete)
        for line in problems:
            console.print(f"[red]{escape(line)}[/]", soft_wrap=True)  # paths stay whole for copy-paste
        if problems:
            console.print(f"run '{command}' and commit the result")
            return 1
        console.print(f"[green]up to date[/] {count} {what} in {escape(str(tree.out_dir))}")
        return 0
    changed = tree.write(complete=complete)
    for path in changed:
        console.print(
            f"[green]wrote[/] {escape(str(path))}" if path.exists() else f"[yellow]removed[/] {escape(str(path))}",
            soft_wrap=True,
        )
    console.print(f"{count} {what} in {escape(str(tree.out_dir))}, {len(changed)} changed")
    return 0
