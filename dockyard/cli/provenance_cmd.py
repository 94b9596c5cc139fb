"""`dockyard diff A B` (two environments' packages) and `dockyard stamp NOTEBOOK...` (write the stamp)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..emit.terminal import safe as escape  # every value from a file is shown inert
from ..errors import DockyardError
from ..provenance import operands
from ..provenance.diff import Change, compare
from .shared import SubParsers, add_build_flags, build_options, console

if TYPE_CHECKING:
    import docker

OPERANDS = (
    "ENV:VARIANT (the checkout's lock), ENV:VARIANT@REV (its lock at a git revision), a content tag "
    "(dockyard/ENV:VARIANT-HASH), a lock file, or a stamped notebook (.ipynb)"
)


def register(sub: SubParsers) -> None:
    p = sub.add_parser("diff", help="packages added, removed and changed between two environments")
    p.add_argument("a", metavar="A", help=OPERANDS)
    p.add_argument("b", metavar="B", help="the same kinds as A")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    add_build_flags(p)
    p.set_defaults(func=cmd_diff)

    u = sub.add_parser(
        "upgrade",
        help="build the spec's current image beside the old one, run the example notebooks in it (nbval), then "
        "move the alias dockyard/ENV:VARIANT; --rollback moves it back",
    )
    u.add_argument("ref", metavar="NAME[:VARIANT]")
    u.add_argument(
        "--notebook",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a notebook the new image must pass (repeatable; default: notebooks/common and notebooks/NAME)",
    )
    u.add_argument("--no-gate", action="store_true", help="move the alias without running the notebooks")
    u.add_argument("--rollback", action="store_true", help="move the alias back to the image before the last upgrade")
    add_build_flags(u)
    u.set_defaults(func=cmd_upgrade)

    s = sub.add_parser("stamp", help="write the provenance stamp (metadata.dockyard) into notebooks")
    s.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    s.add_argument("--ref", metavar="NAME[:VARIANT]", help="the environment (default: the notebook's kernelspec)")
    s.set_defaults(func=cmd_stamp)


def _client_factory() -> operands.ClientFactory:
    """The engine, asked at most once and only when an operand needs an image; None when it is down."""
    made: list[docker.DockerClient | None] = []

    def get() -> docker.DockerClient | None:
        if not made:
            from .. import engine

            try:
                made.append(engine.client())
            except DockyardError:
                made.append(None)
        return made[0]

    return get


def cmd_diff(args: argparse.Namespace) -> int:
    options, client = build_options(args), _client_factory()
    a, b = operands.resolve(args.a, options, client), operands.resolve(args.b, options, client)
    result = compare(a.pins, b.pins)
    size = b.image_size - a.image_size if a.image_size is not None and b.image_size is not None else None
    if args.json:
        answer = {"a": a.to_json(), "b": b.to_json(), "same_lock": a.lock_sha256 == b.lock_sha256}
        print(json.dumps({**answer, "packages": result.to_json(), "image_size_change": size}, indent=2))
        return 0
    for name, side in (("A", a), ("B", b)):
        tag = f", {side.content_tag}" if side.content_tag else ""
        shown_size = f", {side.image_size / 1e6:.0f} MB" if side.image_size is not None else ""
        console.print(
            f"{name}: {escape(side.label)} (lock {side.lock_sha256[:12]} from {escape(side.source)}"
            f"{escape(tag)}{shown_size})",
            soft_wrap=True,
        )
    if result.same:
        console.print(f"[green]same packages[/] ({result.unchanged})")
    for change in result.changes:
        console.print(_line(change), soft_wrap=True)
    if result.cuda:
        console.print("[bold yellow]CUDA wheels changed:[/] " + escape(", ".join(_short(c) for c in result.cuda)))
    if size is not None:
        console.print(f"image size: {size / 1e6:+.0f} MB")
    console.print(result.summary())
    return 0


def _short(change: Change) -> str:
    return f"{change.name} {change.old or '∅'} → {change.new or '∅'}"


def _line(change: Change) -> str:
    mark = {"added": "[green]+[/]", "removed": "[red]-[/]", "changed": "[yellow]~[/]"}[change.kind]
    return f"{mark} {escape(_short(change))}" + (" [bold](CUDA)[/]" if change.cuda else "")


def cmd_stamp(args: argparse.Namespace) -> int:
    import nbformat

    from ..provenance.save_hook import stamp_notebook

    failed = 0
    for path in args.notebooks:
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DockyardError(f"Cannot read the notebook {path} ({exc})", fix="name a saved .ipynb file") from None
        before = json.dumps(notebook.get("metadata", {}).get("dockyard"), sort_keys=True)
        stamp = stamp_notebook(notebook, ref=args.ref)
        if stamp is None:
            failed += 1
            console.print(
                f"[red]not stamped[/] {escape(str(path))}: its kernel is not a dockyard kernel whose image is built "
                "here (name one with --ref)",
                soft_wrap=True,
            )
            continue
        if before == json.dumps(stamp.to_json(), sort_keys=True):  # no churn: the file is not touched
            console.print(f"[green]unchanged[/] {escape(str(path))} ({escape(stamp.content_tag)})", soft_wrap=True)
            continue
        # nbformat's own layout, as Jupyter saves it
        nbformat.write(nbformat.from_dict(notebook), str(path))  # type: ignore[no-untyped-call]
        console.print(f"[green]stamped[/] {escape(str(path))} ({escape(stamp.content_tag)})", soft_wrap=True)
    return 1 if failed else 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from .. import engine, specs
    from ..images.plan import make_plan
    from ..provenance import upgrade

    spec, variant = specs.resolve(args.ref)
    options = build_options(args)
    plan = make_plan(spec, variant, options)
    client = engine.client(timeout=600)
    if args.rollback:
        back = upgrade.rollback(client, plan)
        console.print(
            f"[green]rolled back[/] {escape(plan.alias)} → {escape(back.new_tag)} (was {escape(back.old_tag)})"
        )
        return 0
    notebooks = args.notebook or upgrade.example_notebooks(plan)
    console.print(f"upgrading {variant.ref}: {len(notebooks)} notebook(s) gate the alias", soft_wrap=True)
    done = upgrade.upgrade(client, plan, options, notebooks, gate=not args.no_gate)
    console.print(escape(done.gate_output), soft_wrap=True)
    was = (
        f" (was {escape(done.old_tag)}; 'dockyard upgrade {variant.ref} --rollback' moves it back)"
        if done.old_tag
        else ""
    )
    console.print(f"[green]upgraded[/] {escape(plan.alias)} → {escape(done.new_tag)}{was}", soft_wrap=True)
    return 0
