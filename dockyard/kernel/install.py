"""Kernelspecs in Jupyter's kernel directories: which kernels can start, which are installed, and adding
the kernel of a fresh build where dockyard kernels live. Results, not printed text: the CLI and the
panel each say them their own way."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager

from .. import engine, gpu, specs
from ..config import load_settings
from ..errors import DockyardError
from ..images.inventory import image_state
from . import kernelspec

NOT_BUILT = "image not built"
SpecVariant = tuple[specs.Spec, specs.Variant]


def cannot_write(what: str, exc: OSError) -> DockyardError:
    return DockyardError(
        f"{what} ({exc.strerror or exc}: {exc.filename or ''})",
        fix="install into a directory you may write: --user (the default), --sys-prefix inside a venv, or --prefix DIR",
    )


def split_startable(
    targets: list[SpecVariant],
) -> tuple[list[SpecVariant], list[tuple[specs.Spec, specs.Variant, DockyardError]]]:
    """(startable, [(spec, variant, why not)]). A kernel starts when its image is built for the site settings
    the kernels use (or kernels.auto_build is on: it builds on first start) and the GPU setting can be met."""
    settings = load_settings()
    try:
        client = engine.client(timeout=10)
    except DockyardError as exc:
        raise DockyardError(
            f"Cannot tell which kernels can start: {exc.problem}",
            fix="start the Docker engine ('dockyard doctor' says how) and run this again, or pass --include-unbuilt "
            "to install the kernelspecs without checking their images",
        ) from None
    verdict: gpu.Verdict | None = None
    ready: list[SpecVariant] = []
    waiting: list[tuple[specs.Spec, specs.Variant, DockyardError]] = []
    for s, v in targets:
        try:
            if gpu.wants_gpu(v.gpu, settings.kernels.gpu) and verdict is None:
                verdict = gpu.assess(client, client.info())  # the verdict the provisioner uses (cached)
            gpu.device_requests(v.gpu, settings.kernels.gpu, verdict, v.ref)  # raises where a start would fail
        except DockyardError as exc:
            waiting.append((s, v, exc))
            continue
        if settings.kernels.auto_build or image_state(client, s, v, settings.build).built:
            ready.append((s, v))
        else:
            waiting.append((s, v, DockyardError(NOT_BUILT, fix=f"dockyard build {v.ref}")))
    return ready, waiting


@dataclass(frozen=True)
class Added:
    """What add_built did with one kernelspec in one kernel directory."""

    name: str
    path: Path
    outcome: str  # "installed", "up to date", "not replaced" (a foreign kernelspec has that name)


def add_built(targets: list[SpecVariant]) -> list[Added] | None:
    """After a build: install or refresh the built variants' kernelspecs in every kernel directory that already
    holds dockyard kernels and that this user may write (so the launcher follows the builds). None when there
    is no such directory (the caller says how to add them)."""
    ksm = KernelSpecManager()
    dirs = [Path(d) for d in dict.fromkeys(ksm.kernel_dirs) if _holds_dockyard_kernels(Path(d))]
    writable = [d for d in dirs if os.access(d, os.W_OK)]
    if not writable:
        return None
    return [_add_one(s, v, d) for s, v in targets for d in writable]


def _add_one(s: specs.Spec, v: specs.Variant, kernels_dir: Path) -> Added:
    name = kernelspec.kernel_name(s, v)
    target = kernels_dir / name
    if target.exists() and not kernelspec.is_dockyard(target):
        return Added(name, target, "not replaced")
    if target.is_dir() and {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == kernelspec.files(s, v):
        return Added(name, target, "up to date")
    try:
        if target.exists():
            shutil.rmtree(target)
        kernelspec.write_dir(s, v, kernels_dir)
    except OSError as exc:
        raise cannot_write(f"Cannot install kernelspec {name}", exc) from None
    return Added(name, target, "installed")


def _holds_dockyard_kernels(kernels_dir: Path) -> bool:
    try:
        return any(p.name.startswith(kernelspec.PREFIX) and kernelspec.is_dockyard(p) for p in kernels_dir.iterdir())
    except OSError:
        return False


def installed() -> dict[str, dict[str, Any]]:
    """Installed dockyard kernelspecs by name: {'resource_dir': ..., 'spec': kernel.json as a dict}."""
    found = KernelSpecManager().get_all_specs()
    return {name: info for name, info in sorted(found.items()) if kernelspec.is_dockyard(Path(info["resource_dir"]))}
