"""The `dockyard` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..errors import DockyardError
from . import build_cmd, compose_cmd, devcontainer_cmd, doctor_cmd, env_cmd, k8s_cmd, kernels_cmd, lock_cmd

GROUPS = [env_cmd, lock_cmd, build_cmd, kernels_cmd, devcontainer_cmd, compose_cmd, k8s_cmd, doctor_cmd]

err_console = Console(stderr=True, highlight=False)

REF_MEANING = (
    "An environment reference is NAME:VARIANT, or NAME alone for its default variant (cpu, else its first) in "
    "every command; no reference means every variant where a command allows that."
)
EXIT_CODES = (
    "Exit status: 0 done; 1 the request was fine but doing it failed (the engine, a build, a package index) or a "
    "check failed (doctor, generate --check); 2 usage error: an unknown command or flag, or an argument, spec, "
    "config, stack or lock that must change; 130 interrupted."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dockyard",
        description="Deep-learning environments as containers: build images from envs/*.yaml, "
        "run them as Jupyter kernels, VS Code dev containers and Compose projects.",
        epilog=f"{REF_MEANING} {EXIT_CODES}",
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
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
