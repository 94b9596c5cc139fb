"""`dockyard kernels install|list|remove|gc|top|generate`: container kernels in Jupyter's kernel list."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from rich.table import Table

from .. import engine, paths, specs
from ..config import Settings, load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import DockyardError
from ..images.inventory import image_state
from ..kernel import install, kernelspec
from . import pool_cmd, top_cmd
from .shared import SubParsers, add_generate_flags, console, sync_generated


def register(sub: SubParsers) -> None:
    k = sub.add_parser("kernels", help="install, list and remove the container kernels' kernelspecs")
    k_sub = k.add_subparsers(dest="kernels_command", metavar="ACTION", required=True)

    p = k_sub.add_parser(
        "install",
        help="install the kernelspecs of built images into Jupyter's data dirs (of every environment when none given)",
    )
    p.add_argument(
        "refs",
        nargs="*",
        metavar="ENV[:VARIANT]",
        help="e.g. pytorch (its default variant, cpu) or pytorch:cuda; none: all",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into your user data dir (the default)")
    where.add_argument(
        "--sys-prefix", action="store_true", help=f"into this Python's prefix ({sys.prefix}), e.g. a venv or conda env"
    )
    where.add_argument("--prefix", metavar="DIR", help="into DIR/share/jupyter/kernels")
    p.add_argument(
        "--include-unbuilt",
        action="store_true",
        help="also kernels whose image is not built (by default they are skipped, and an earlier install of "
        "them is removed, since starting one would fail)",
    )
    p.set_defaults(func=cmd_install)

    p = k_sub.add_parser("list", help="installed dockyard kernels and whether their images are built")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = k_sub.add_parser("remove", help="uninstall dockyard kernelspecs (all of them when no name is given)")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="kernel names as shown by 'dockyard kernels list', e.g. dockyard-pytorch-cpu",
    )
    p.set_defaults(func=cmd_remove)

    p = k_sub.add_parser("gc", help="remove kernel containers whose Jupyter server is gone")
    p.set_defaults(func=cmd_gc)

    pool_cmd.register(k_sub)
    top_cmd.register(k_sub)

    p = k_sub.add_parser(
        "generate", help="write the kernelspecs of every environment into a directory (the repo's kernels/)"
    )
    add_generate_flags(
        p,
        "--output",
        paths.checkout_dir(kernelspec.DIRNAME),
        "where to write (default: kernels/ of the dockyard checkout)",
    )
    p.set_defaults(func=cmd_generate)


def cmd_install(args: argparse.Namespace) -> int:
    targets = specs.expand(args.refs)
    ksm = KernelSpecManager()
    prefix = sys.prefix if args.sys_prefix else args.prefix
    kernels_dir = Path(prefix, "share", "jupyter", "kernels") if prefix else Path(ksm.user_kernel_dir)
    ready, waiting = (targets, []) if args.include_unbuilt else install.split_startable(targets)
    with tempfile.TemporaryDirectory(prefix="dockyard-kernelspec-") as tmp:
        for s, v in ready:
            name = kernelspec.kernel_name(s, v)
            source = kernelspec.write_dir(s, v, Path(tmp))
            try:
                dest = ksm.install_kernel_spec(str(source), name, user=prefix is None, prefix=prefix)
            except OSError as exc:
                raise install.cannot_write(f"Cannot install kernelspec {name}", exc) from None
            console.print(
                f"[green]installed[/] {name}  {escape(kernelspec.display_name(s, v))}  → {escape(dest)}", soft_wrap=True
            )
    for s, v, reason in waiting:
        name = kernelspec.kernel_name(s, v)
        stale = kernels_dir / name
        if kernelspec.is_dockyard(stale):  # from an earlier install: it would fail at start, so it goes
            try:
                shutil.rmtree(stale)
            except OSError as exc:
                raise install.cannot_write(f"Cannot remove kernelspec {name}", exc) from None
            console.print(f"[yellow]removed[/] {name} from {escape(str(kernels_dir))}", soft_wrap=True)
        console.print(
            f"[yellow]skipped[/] {name} ({escape(reason.problem)}): {escape(reason.fix or '')}", soft_wrap=True
        )
    unbuilt = [v.ref for _, v, reason in waiting if reason.problem == install.NOT_BUILT]
    if unbuilt:
        console.print(
            f"Jupyter offers only kernels that can start. To add these: dockyard build {escape(' '.join(unbuilt))} "
            "(a build adds its kernel wherever dockyard kernels are installed), or install them unbuilt with "
            "--include-unbuilt (their start then fails until the image is built)",
            soft_wrap=True,
        )
    return 1 if args.refs and waiting else 0  # a named kernel that was not installed is a failure for scripts


def add_built(targets: list[tuple[specs.Spec, specs.Variant]]) -> None:
    """After `dockyard build`: the built variants' kernels join the kernel dirs that hold dockyard kernels."""
    added = install.add_built(targets)
    if added is None:
        refs = " ".join(v.ref for _, v in targets)
        console.print(f"To use it in Jupyter: dockyard kernels install {escape(refs)}", soft_wrap=True)
        return
    for a in added:
        if a.outcome == "not replaced":
            console.print(f"[yellow]not replaced[/] {escape(str(a.path))}: not a dockyard kernelspec")
        elif a.outcome == "up to date":
            console.print(f"kernel {a.name} up to date in {escape(str(a.path.parent))}", soft_wrap=True)
        else:
            console.print(f"[green]kernel[/] {a.name} → {escape(str(a.path))}", soft_wrap=True)


def _image_status(info: dict[str, Any], client: docker.DockerClient | None, settings: Settings) -> str:
    meta = info["spec"]["metadata"]["dockyard"]
    if client is None:
        return "unknown (no Docker engine)"
    try:
        s = specs.load(meta["env"])
        state = image_state(client, s, s.variant(meta["variant"]), settings.build)
    except DockyardError:
        return "unknown (no such environment here)"
    return "outdated (spec or site settings changed)" if state.status == "outdated" else state.status


def cmd_list(args: argparse.Namespace) -> int:
    kernels = install.installed()
    try:
        client = engine.client(timeout=10)
    except DockyardError:
        client = None  # listing must still work with the daemon stopped
    settings = load_settings()
    rows = []
    for name, info in kernels.items():
        meta = info["spec"]["metadata"]["dockyard"]
        rows.append(
            {
                "name": name,
                "display_name": info["spec"]["display_name"],
                "env": f"{meta['env']}:{meta['variant']}",
                "image": _image_status(info, client, settings),
                "resource_dir": info["resource_dir"],
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        console.print("no dockyard kernels installed; run 'dockyard kernels install'")
        return 0
    table = Table(title="dockyard kernels")
    for col in ("name", "display name", "environment", "image", "location"):
        table.add_column(col)
    for r in rows:
        colour = {"built": "green", "not built": "yellow"}.get(
            r["image"], "red" if r["image"].startswith("outdated") else "dim"
        )
        table.add_row(
            escape(r["name"]),
            escape(r["display_name"]),
            escape(r["env"]),
            f"[{colour}]{escape(r['image'])}[/]",
            escape(r["resource_dir"]),
        )
    console.print(table)
    waiting = [r for r in rows if r["image"] != "built"]
    if waiting and not settings.kernels.auto_build:
        console.print(
            f"[yellow]{len(waiting)} of these cannot start until their image is built[/]: "
            f"dockyard build {escape(' '.join(r['env'] for r in waiting))} "
            f"(or remove them: dockyard kernels remove {' '.join(r['name'] for r in waiting)})",
            soft_wrap=True,
        )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    ksm = KernelSpecManager()
    names = args.names or list(install.installed())
    if not names:
        console.print("no dockyard kernels installed")
        return 0
    for name in names:
        removed = 0
        # A name can be installed in several data dirs (user, sys-prefix); remove every copy of ours.
        while True:
            try:
                resource_dir = Path(ksm.get_kernel_spec(name).resource_dir)
            except NoSuchKernel:
                break
            if not kernelspec.is_dockyard(resource_dir):
                raise DockyardError(
                    f"Kernel '{name}' at {resource_dir} was not installed by dockyard",
                    fix="remove it with 'jupyter kernelspec remove'",
                )
            try:
                ksm.remove_kernel_spec(name)
            except OSError as exc:
                raise DockyardError(
                    f"Cannot remove {resource_dir} ({exc.strerror or exc})", fix="run as a user who may write there"
                ) from None
            console.print(f"[yellow]removed[/] {name}  ({escape(str(resource_dir))})", soft_wrap=True)
            removed += 1
        if not removed:
            raise DockyardError(
                f"No kernel named '{name}' is installed", fix="see 'dockyard kernels list' for the names"
            )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from ..kernel import reaper  # imported here: it pulls in the provisioner's labels and the docker SDK

    removed = reaper.reap(engine.client())
    for name in removed:
        console.print(f"[yellow]removed[/] {escape(name)}")
    console.print(f"{len(removed)} leftover kernel container(s) removed")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    return sync_generated(
        kernelspec.tree(specs.load_all(), args.output),
        check=args.check,
        complete=True,
        what="kernelspec(s)",
        command="dockyard kernels generate",
    )
