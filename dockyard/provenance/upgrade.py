"""`dockyard upgrade REF`: build the spec's current image beside the old one, run the environment's example
notebooks in it with nbval, and only then move the alias (dockyard/ENV:VARIANT) to it. The old image stays
(its content tag is untouched; `images prune` keeps it while a stamped notebook names it), and
`dockyard upgrade REF --rollback` moves the alias back in a second, with no build.

Kernels run the spec's current content tag, so after a relock (`dockyard lock REF --upgrade PKG`) a new
kernel gets the new image whatever the alias says; the alias is what dev containers, Compose and
`docker run dockyard/ENV:VARIANT` use, and what the gate protects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker

from .. import paths
from ..config import BuildOptions
from ..engine import ensure_tag, find_image
from ..errors import BuildError, DockyardError
from ..images.build import build
from ..images.plan import BuildPlan
from ..kernel import kernelspec

GATE_TIMEOUT = 1800.0  # seconds for all example notebooks (a framework's first import in a cold container)


@dataclass(frozen=True)
class Outcome:
    ref: str
    old_tag: str  # "" when nothing was built before
    new_tag: str
    moved: bool  # the alias now names new_tag
    gate_output: str  # nbval's last lines


def example_notebooks(plan: BuildPlan) -> list[Path]:
    """notebooks/common and notebooks/ENV next to the spec's folder (the shipped layout), where present."""
    root = plan.spec.path.resolve().parent.parent / "notebooks"
    folders = [root / "common", root / plan.spec.name]
    return sorted(p for f in folders if f.is_dir() for p in f.glob("*.ipynb"))


def upgrade(
    client: docker.DockerClient, plan: BuildPlan, options: BuildOptions, notebooks: list[Path], *, gate: bool = True
) -> Outcome:
    ref = plan.variant.ref
    old = find_image(client, plan.alias)
    old_tag = _content_tag(old, plan) if old is not None else ""
    result = build(client, plan, options)  # moves the alias: put it back until the gate has passed
    new = client.images.get(result.tag)
    if old is not None:
        old.reload()  # its tags as they are now (ensure_tag skips a name the cached tags still list)
        ensure_tag(old, plan.alias)
    if old is not None and old.id == new.id:
        return Outcome(ref, old_tag, result.tag, True, "already the current image: nothing to test")
    try:
        output = run_gate(plan, notebooks) if gate else "gate skipped (--no-gate)"
    except DockyardError:
        if old is None:  # nothing to go back to: no alias at all rather than one naming an untested image
            client.images.remove(plan.alias, noprune=True)
        raise
    new.reload()
    ensure_tag(new, plan.alias)
    _record(ref, previous=old_tag, current=result.tag)
    return Outcome(ref, old_tag, result.tag, True, output)


def run_gate(plan: BuildPlan, notebooks: list[Path]) -> str:
    """nbval on copies of the notebooks in the new image's kernel; raises BuildError with its output on failure."""
    if not notebooks:
        raise DockyardError(
            f"No example notebooks to test {plan.variant.ref} with (looked in notebooks/common and "
            f"notebooks/{plan.spec.name})",
            fix="name some with --notebook PATH, or skip the safety net with --no-gate",
        )
    import importlib.util

    if importlib.util.find_spec("nbval") is None:  # it runs as a pytest plugin, in a subprocess
        raise DockyardError(
            "The upgrade gate runs the example notebooks with nbval, which is not installed here",
            fix="pip install nbval (the 'test' extra), or skip the safety net with --no-gate",
        ) from None
    with tempfile.TemporaryDirectory(prefix="dockyard-upgrade-") as tmp:
        work, prefix = Path(tmp) / "work", Path(tmp) / "jupyter"
        work.mkdir()
        kernelspec.write_dir(plan.spec, plan.variant, prefix / "kernels")
        for n, notebook in enumerate(notebooks):
            shutil.copy(notebook, work / f"{n:02d}-{notebook.name}")
        name = kernelspec.kernel_name(plan.spec, plan.variant)
        cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", name, "-p", "no:cacheprovider"]
        cmd += ["-q", "--nbval-kernel-startup-timeout", "180", "."]
        env = {**os.environ, "JUPYTER_PATH": str(prefix)}
        try:
            done = subprocess.run(
                cmd, cwd=work, env=env, capture_output=True, text=True, timeout=GATE_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise BuildError(
                f"The example notebooks did not finish within {GATE_TIMEOUT:.0f} s in the new image of "
                f"{plan.variant.ref}; the alias stays on the old image",
                fix="run them by hand in the new kernel to see where they hang",
            ) from None
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
    if done.returncode != 0:
        raise BuildError(
            f"The example notebooks fail in the new image of {plan.variant.ref} ({plan.tag}); the alias stays on "
            f"the old image. nbval says:\n{tail}",
            fix=f"compare the two with 'dockyard diff {plan.alias} {plan.tag}', fix the lock or the notebooks, "
            "then upgrade again",
        )
    return tail


def rollback(client: docker.DockerClient, plan: BuildPlan) -> Outcome:
    """Move the alias back to the image it named before the last upgrade (no build)."""
    ref = plan.variant.ref
    record = _records().get(ref) or {}
    previous, current = record.get("previous", ""), record.get("current", "")
    image = find_image(client, previous) if previous else None
    if image is None:
        raise DockyardError(
            f"No earlier image of {ref} to roll back to"
            + (f" ({previous} is no longer on this engine)" if previous else " (no upgrade recorded)"),
            fix="build the earlier spec and lock (git checkout of envs/), or pick a tag from 'dockyard images'",
        )
    ensure_tag(image, plan.alias)
    _record(ref, previous=current, current=previous)
    return Outcome(ref, current, previous, True, "")


def _content_tag(image: docker.models.images.Image, plan: BuildPlan) -> str:
    prefix = f"{plan.alias}-"
    tags: list[str] = list(image.tags)
    return next((t for t in tags if t.startswith(prefix) and not t.endswith("-stage")), str(image.short_id))


def _records_path() -> Path:
    return paths.state_dir() / "upgrades.json"


def _records() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_records_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(ref: str, *, previous: str, current: str) -> None:
    records = _records()
    records[ref] = {"previous": previous, "current": current}
    _records_path().write_text(json.dumps(records, indent=1, sort_keys=True))
