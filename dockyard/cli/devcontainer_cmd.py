"""`dockyard devcontainer generate [NAME[:VARIANT]...] [--check]`: VS Code dev containers from the same specs."""

from __future__ import annotations

import argparse
import dataclasses

from .. import paths, specs
from ..frontends import devcontainer
from .shared import SubParsers, add_generate_flags, sync_generated


def register(sub: SubParsers) -> None:
    dc = sub.add_parser("devcontainer", help="VS Code dev container configs on the kernels' images")
    dc_sub = dc.add_subparsers(dest="devcontainer_command", metavar="ACTION", required=True)
    p = dc_sub.add_parser(
        "generate",
        help=(
            "write .devcontainer/<env>[-<variant>]/devcontainer.json (every variant of every environment when no "
            "reference is given)"
        ),
    )
    p.add_argument(
        "refs", nargs="*", metavar="NAME[:VARIANT]", help="e.g. pytorch (its default variant, cpu) or pytorch:cuda"
    )
    add_generate_flags(
        p,
        "--workspace",
        paths.checkout_dir("."),
        "the folder VS Code opens; configs go to DIR/.devcontainer (default: the dockyard checkout)",
    )
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    tree = devcontainer.tree(specs.load_all() if not args.refs else [], args.workspace)
    if args.refs:  # the variants named, as every command reads a reference (specs.expand)
        wanted = specs.expand(args.refs)
        files = devcontainer.render_all(list({s.name: s for s, _ in wanted}.values()), args.workspace)
        folders = {devcontainer.folder_name(s, v) for s, v in wanted}
        tree = dataclasses.replace(tree, files={k: v for k, v in files.items() if k.split("/")[0] in folders})
    # Only a full run knows which generated folders are stale.
    return sync_generated(
        tree,
        check=args.check,
        complete=not args.refs,
        what="dev container config(s)",
        command="dockyard devcontainer generate",
    )
