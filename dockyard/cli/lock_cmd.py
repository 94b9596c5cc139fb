"""`dockyard lock [REF...] [--upgrade PKG] [--check]`: write or check the lock files of environment variants."""

from __future__ import annotations

import argparse

from .. import specs
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..images.lock_compiler import compile_lock, write_lock
from ..images.lockfile import LockError, load_lock, lock_path, parse
from .shared import SubParsers, add_build_flags, build_options, console


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "lock",
        help="resolve every package of environment variants into envs/locks/ENV-VARIANT.txt (exact versions, hashes)",
    )
    p.add_argument(
        "refs",
        nargs="*",
        metavar="NAME[:VARIANT]",
        help="what to lock (a bare NAME: its default variant; none: all)",
    )
    p.add_argument(
        "--upgrade",
        action="append",
        default=[],
        metavar="PKG",
        help="move PKG to the newest version the pins allow (repeatable); others keep their locked versions",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="resolve nothing: exit 1 when a lock is stale (its spec changed), malformed or holds CUDA in a CPU "
        "variant; variants without a lock are listed",
    )
    add_build_flags(p)
    p.set_defaults(func=cmd_lock)


def cmd_lock(args: argparse.Namespace) -> int:
    targets = specs.expand(args.refs)
    if args.check:
        return _check(targets)
    options = build_options(args)
    # Resolve all first: a misspelt --upgrade (which uv accepts silently) then writes nothing.
    resolved = [(s, v, compile_lock(s, v, options, upgrade=args.upgrade)) for s, v in targets]
    _check_upgrades(args.upgrade, resolved)
    for spec, variant, text in resolved:
        path = write_lock(spec, variant, text)
        count = sum(1 for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))
        console.print(f"[green]locked[/] {variant.ref}: {count} packages in {escape(str(path))}", soft_wrap=True)
    return 0


def _check_upgrades(names: list[str], resolved: list[tuple[specs.Spec, specs.Variant, str]]) -> None:
    locks = [parse(lock_path(spec, variant), text, variant.ref) for spec, variant, text in resolved]
    missing = [name for name in names if not any(lock.pin(name) for lock in locks)]
    if missing:
        refs = ", ".join(variant.ref for _, variant, _ in resolved)
        raise LockError(
            f"--upgrade {', '.join(missing)}: no such package in the lock of {refs}, so nothing would move; "
            "no lock was written",
            fix="check the name against the lock file (envs/locks/ENV-VARIANT.txt lists every package)",
        )


def _check(targets: list[tuple[specs.Spec, specs.Variant]]) -> int:
    failed = 0
    for spec, variant in targets:
        if not lock_path(spec, variant).is_file():
            # Not a pass in disguise: the variant cannot be built until it is locked, and the build says so.
            console.print(f"[yellow]not locked[/] {variant.ref}: dockyard lock {variant.ref}", soft_wrap=True)
            continue
        try:
            lock = load_lock(spec, variant)
        except LockError as exc:
            failed += 1
            console.print(f"[red]{escape(exc.text)}[/]", soft_wrap=True)
            continue
        console.print(f"[green]up to date[/] {variant.ref} ({len(lock.pins)} packages)")
    return 1 if failed else 0
