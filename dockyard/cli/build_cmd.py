"""`dockyard build NAME[:VARIANT]...`, `dockyard images` and `dockyard images prune`."""

from __future__ import annotations

import argparse
from pathlib import Path

import docker
import docker.errors
import requests
from rich.table import Table

from .. import engine, gpu, specs
from ..config import BuildOptions, load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import DockyardError
from ..frontends import devcontainer
from ..images import prune
from ..images.build import build
from ..images.inventory import image_state
from ..images.plan import BuildPlan, make_plan
from ..provenance.workspace import stamped_tags
from ..registry import transfer
from .progress import RichReporter
from .shared import SubParsers, add_build_flags, build_options, console


def register(sub: SubParsers) -> None:
    p = sub.add_parser("build", help="build environment images (a no-op when the content tag exists)")
    p.add_argument("refs", nargs="*", metavar="NAME[:VARIANT]", help="what to build (default variant: cpu)")
    p.add_argument("--all", action="store_true", help="build every variant of every environment")
    p.add_argument("--rebuild", action="store_true", help="build even when the image exists, without the layer cache")
    p.add_argument("-v", "--verbose", action="store_true", help="print every line of build output")
    p.add_argument(
        "--devcontainer-gpu",
        action="store_true",
        help="then say whether the Dev Containers tooling will give this host's GPU to the container "
        "(the generated devcontainer.json of CUDA variants passes it; never fails the build)",
    )
    p.add_argument(
        "--no-kernels",
        action="store_true",
        help="leave Jupyter's kernelspecs alone (by default a build installs or refreshes its kernel wherever "
        "dockyard kernels are installed)",
    )
    p.add_argument(
        "--pull-first",
        action="store_true",
        default=None,
        help="pull the content tag from the registry (registry.host) before building; build when it has none "
        "(setting: registry.pull_first)",
    )
    add_build_flags(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("images", help="show which environment images are built, their sizes, what prune would free")
    add_build_flags(p)
    p.set_defaults(func=cmd_images)
    images_sub = p.add_subparsers(dest="images_command", metavar="COMMAND")
    prune = images_sub.add_parser(
        "prune",
        help="remove superseded content tags of each environment (keeps the newest, any image a container uses, "
        "and what the current specs and settings use)",
    )
    prune.add_argument("envs", nargs="*", metavar="NAME", help="only these environments (default: all)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    prune.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="keep the images that stamped notebooks under DIR name (default: the current directory)",
    )
    prune.add_argument(
        "--ignore-stamps", action="store_true", help="remove superseded images even when a stamped notebook names them"
    )
    add_build_flags(prune)
    prune.set_defaults(func=cmd_prune)


def _plans(args: argparse.Namespace) -> tuple[BuildOptions, list[BuildPlan]]:
    options = build_options(args)
    if args.all or not args.refs:
        if not args.all:
            raise specs.SpecError(
                "No environment given", fix="name one, e.g. 'dockyard build minimal:cpu', or pass --all"
            )
        targets = specs.expand([])
    else:
        targets = specs.expand(args.refs)
    return options, [make_plan(s, v, options) for s, v in targets]


def cmd_build(args: argparse.Namespace) -> int:
    options, plans = _plans(args)
    for plan in plans:  # every lock checked before anything is built: nothing half-done on a bad one
        if plan.lock_error is not None:
            raise plan.lock_error
    client = engine.client(timeout=3600)
    registry = load_settings().registry
    pull_first = bool(registry.host) and (args.pull_first or registry.pull_first) and not args.rebuild
    if args.pull_first and not registry.host:
        console.print("[yellow]--pull-first: no registry is configured (registry.host), building[/]")
    for plan in plans:
        if pull_first and transfer.pull_first(client, plan, registry, _say):
            if not args.no_kernels:
                _offer_kernel(plan)
            continue
        with RichReporter(console, plan.variant.ref, verbose=args.verbose) as reporter:
            result = build(client, plan, options, reporter, rebuild=args.rebuild)
        if result.built:
            console.print(
                f"[green]built[/] {result.tag} ({_gb(result.size)}) in {result.seconds:.0f}s (log: {result.log_path})",
                soft_wrap=True,
            )
        else:
            console.print(f"[green]up to date[/] {result.tag} ({_gb(result.size)})", soft_wrap=True)
        if not args.no_kernels:
            _offer_kernel(plan)
    if args.devcontainer_gpu and any(p.variant.gpu != "none" for p in plans):
        _devcontainer_gpu_advice(client)
    return 0


def _say(line: str) -> None:
    console.print(escape(line), soft_wrap=True)


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def _devcontainer_gpu_advice(client: docker.DockerClient) -> None:
    """VS Code users see this in the dev container log: the one place they look when the GPU is missing."""
    try:
        info = client.info()
        advice = devcontainer.gpu_advice(gpu.assess(client, info), info)
    except (DockyardError, docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        console.print(
            f"[yellow]dockyard: could not check the dev container's GPU setup ({escape(str(exc))})[/]", soft_wrap=True
        )
        return
    if advice is not None:
        problem, fix = advice
        console.print(f"[yellow]dockyard: {escape(problem)}. Fix: {escape(fix)}[/]", soft_wrap=True)


def _offer_kernel(plan: BuildPlan) -> None:
    """The kernel of what was built joins Jupyter's launcher, unless the kernels would look for another image
    (flags given here that the config file and DOCKYARD_* variables do not say)."""
    from .kernels_cmd import add_built  # jupyter_client is imported only when needed

    if make_plan(plan.spec, plan.variant, load_settings().build).tag != plan.tag:
        console.print(
            f"[yellow]kernel not installed[/]: kernels look for the image of {plan.variant.ref} built with the "
            "site settings of the config file and DOCKYARD_* variables; put the flags you used here there",
            soft_wrap=True,
        )
        return
    add_built([(plan.spec, plan.variant)])


def cmd_images(args: argparse.Namespace) -> int:
    options = build_options(args)
    client = engine.client()
    table = Table(title="dockyard images")
    for col in ("environment", "tag", "status", "size"):
        table.add_column(col)
    for s in specs.load_all():
        for v in s.variants.values():
            state = image_state(client, s, v, options)
            status = "[green]built[/]" if state.image else "[yellow]not built[/]"
            size = f"{state.image.attrs['Size'] / 1e9:.2f} GB" if state.image else ""
            table.add_row(v.ref, escape(state.plan.tag), status, size)
    console.print(table)
    entries = prune.survey(client, current_tags=_current_tags(options))
    superseded = [e for e in entries if not e.keep]
    console.print(
        f"{len(entries)} dockyard images, {_gb(sum(e.size for e in entries))}; {len(superseded)} superseded, up to "
        f"{_gb(prune.reclaimable(entries))} reclaimable" + (": dockyard images prune" if superseded else "")
    )
    return 0


def _current_tags(options: BuildOptions) -> set[str]:
    return {make_plan(s, v, options).tag for s in specs.load_all() for v in s.variants.values()}


def cmd_prune(args: argparse.Namespace) -> int:
    options = build_options(args)
    client = engine.client()
    workspace = args.workspace or Path.cwd()
    stamped = None if args.ignore_stamps else stamped_tags(workspace)
    if stamped is not None:
        console.print(f"stamped notebooks under {escape(str(workspace))} name {len(stamped)} image(s)")
    entries = prune.survey(client, envs=args.envs, current_tags=_current_tags(options), stamped=stamped)
    for e in entries:
        names = ", ".join(e.tags) or e.image.short_id
        if e.keep:
            console.print(f"[green]keep[/] {escape(names)} ({_gb(e.size)}): {e.keep}", soft_wrap=True)
        else:
            verb = "would remove" if args.dry_run else "remove"
            console.print(f"[yellow]{verb}[/] {escape(names)} ({_gb(e.size)})", soft_wrap=True)
    if not args.dry_run:
        prune.remove(client, entries)
    what = "would free" if args.dry_run else "freed"
    console.print(f"{what} up to {_gb(prune.reclaimable(entries))}")
    return 0
