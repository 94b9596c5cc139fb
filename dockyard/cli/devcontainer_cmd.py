"""`dockyard devcontainer generate [ENV...] [--check]`: VS Code dev containers from the same specs."""

from __future__ import annotations

import argparse

from .. import paths, specs
from ..frontends import devcontainer
from .common import SubParsers, add_generate_flags, sync_generated


def register(sub: SubParsers) -> None:
    dc = sub.add_parser("devcontainer", help="VS Code dev container configs on the kernels' images")
    dc_sub = dc.add_subparsers(dest="devcontainer_command", metavar="ACTION", required=True)
    p = dc_sub.add_parser(
        "generate",
        help=(
            "write .devcontainer/<env>[-<variant>]/devcontainer.json for every variant (all environments when none "
            "are given)"
        ),
    )
    p.add_argument("envs", nargs="*", metavar="ENV", help="environment names, e.g. pytorch")
    add_generate_flags(
        p,
        "--workspace",
        paths.checkout_dir("."),
        "the folder VS Code opens; configs go to DIR/.devcontainer (default: the dockyard checkout)",
    )
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    loaded = [specs.load(n) for n in args.envs] if args.envs else specs.load_all()
    # Only a full run knows which generated folders are stale.
    return sync_generated(
        devcontainer.tree(loaded, args.workspace),
        check=args.check,
        complete=not args.envs,
        what="dev container config(s)",
        command="dockyard devcontainer generate",
    )
