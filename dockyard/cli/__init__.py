"""The `dockyard` command. Each command group lives in its own module and registers itself here.

Only the module of the command given is imported (the others pull in docker, requests, rich and
jupyter_client): `dockyard --version` answers in tens of milliseconds, a no-op build in a few more.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType
from typing import Any

from .. import __version__
from ..errors import DockyardError

# Top-level command → the module that registers it (in the order `dockyard --help` lists them).
COMMANDS = {
    "env": "env_cmd",
    "render": "env_cmd",
    "lock": "lock_cmd",
    "build": "build_cmd",
    "images": "build_cmd",
    "diff": "provenance_cmd",
    "stamp": "provenance_cmd",
    "upgrade": "provenance_cmd",
    "push": "registry_cmd",
    "pull": "registry_cmd",
    "kernels": "kernels_cmd",
    "gpus": "gpus_cmd",
    "devcontainer": "devcontainer_cmd",
    "compose": "compose_cmd",
    "k8s": "k8s_cmd",
    "doctor": "doctor_cmd",
}

REF_MEANING = (
    "An environment reference is NAME:VARIANT, or NAME alone for its default variant (cpu, else its first) in "
    "every command; no reference means every variant where a command allows that."
)
EXIT_CODES = (
    "Exit status: 0 done; 1 the request was fine but doing it failed (the engine, a build, a package index) or a "
    "check failed (doctor, generate --check); 2 usage error: an unknown command or flag, or an argument, spec, "
    "config, stack or lock that must change; 130 interrupted."
)


def _group(module: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{module}")


def _command_word(argv: list[str]) -> str | None:
    """The command argv names: the first word not an option (the top level takes no option values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for argv's command (all commands when argv is None or names none of them)."""
    p = argparse.ArgumentParser(
        prog="dockyard",
        description="Deep-learning environments as containers: build images from envs/*.yaml, "
        "run them as Jupyter kernels, VS Code dev containers and Compose projects.",
        epilog=f"{REF_MEANING} {EXIT_CODES}",
    )
    p.add_argument("--version", action="version", version=f"dockyard {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    word = _command_word(argv) if argv is not None else None
    modules = [COMMANDS[word]] if word in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in modules:
        _group(module).register(sub)
    return p


def _without_paramiko() -> None:
    """The docker SDK imports paramiko at its own import (60-90 ms, a third of a no-op build), for ssh://
    engines only. Run as a program with a DOCKER_HOST that is not ssh://, mark it absent: the SDK then takes
    its own 'not installed' path, which it needs only for ssh://. (Not done when main() is called with argv, as
    tests do, so the host process keeps its own imports.)"""
    if not os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        sys.modules.setdefault("paramiko", None)  # type: ignore[arg-type]


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        _without_paramiko()
    if _command_word(argv) is None and "--version" in argv:
        print(f"dockyard {__version__}")  # without importing a command module
        return 0
    args = parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DockyardError as exc:
        from ..emit.terminal import safe as escape  # the one way a value reaches the terminal

        _err_console().print(f"[bold red]error:[/] {escape(exc.text)}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        _err_console().print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
