"""The `dockyard` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from .. import __version__
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import DockyardError
from . import build_cmd, compose_cmd, devcontainer_cmd, doctor_cmd, env_cmd, k8s_cmd, kernels_cmd, lock_cmd

GROUPS = [env_cmd, lock_cmd, build_cmd, kernels_cmd, devcontainer_cmd, compose_cmd, k8s_cmd, doctor_cmd]

err_console = Console(stderr=True, highlight=False)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dockyard",
        description="Deep-learning environments as containers: build images from envs/*.yaml, "
        "run them as Jupyter kernels, VS Code dev containers and Compose projects.",
    )
    p.add_argument("--version", action="version", version=f"dockyard {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DockyardError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.text)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
