"""A kernel's data mounts: the spec's and the site's `mounts:` entries resolved on the server's host at each start.

Each entry becomes a bind mount, read-only or read-write, owned and written as the host UID like the workspace
(the kernel runs as that UID, so what it writes belongs to the user). A named cache is a folder dockyard keeps
per environment (`<cache dir>/dockyard/caches/ENV/NAME`), created by the host user, so no root-owned volume ever
sits between the kernel and its files and every kernel of the environment shares it. Refusals are one paragraph
each and come before any container exists: the engine socket, `/`, system directories, the user's key folders,
overlaps with the venv, kit or workspace, a missing variable, a missing source without `create`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from docker.types import Mount

from .. import paths
from ..errors import DockyardError, shown
from ..hostfiles import mount_refusal, private_refusal
from ..specs.data_entries import MountEntry, target_refusal, variables


@dataclass(frozen=True)
class DataMount:
    """A resolved mount: a real host path, its container path, and whether the kernel may write."""

    source: Path
    target: str
    read_only: bool
    label: str  # what the spec wrote (for the panel and messages)


def cache_root(env_name: str) -> Path:
    return paths.cache_dir() / "caches" / env_name


def expand(text: str, environ: Mapping[str, str], origin: str) -> str:
    """~ and $NAME / ${NAME} from the server's environment; a variable that is not set is refused (an empty one
    would turn $DATA/imagenet into /imagenet)."""
    for name in variables(text):
        if not environ.get(name):
            raise DockyardError(
                f"{origin}: the mount source {shown(text)} names ${name}, which the Jupyter server's environment "
                "does not set",
                fix=f"set {name} where Jupyter starts (e.g. 'export {name}=/path' before 'jupyter lab'), or write the "
                "path out",
            )
        text = text.replace(f"${{{name}}}", environ[name]).replace(f"${name}", environ[name])
    return os.path.expanduser(text)


def _refuse(entry: MountEntry, problem: str, fix: str) -> DockyardError:
    return DockyardError(f"{entry.origin}: cannot mount {shown(entry.label, 120)} into the kernel: {problem}", fix=fix)


def resolve(entry: MountEntry, env_name: str, environ: Mapping[str, str]) -> DataMount:
    """One entry as a DataMount; creates a cache's folder, or a missing source with `create: true`."""
    if entry.cache is not None:
        assert entry.target is not None  # the spec's check: a cache names its target
        folder = cache_root(env_name) / entry.cache
        folder.mkdir(parents=True, exist_ok=True)
        return DataMount(folder, entry.target, entry.read_only, entry.label)
    assert entry.source is not None
    raw = Path(expand(entry.source, environ, entry.origin))
    if not raw.is_absolute():
        raise _refuse(entry, f"it expands to {shown(str(raw))}, a relative path", "use an absolute path")
    if not raw.exists():
        if not entry.create:
            raise _refuse(
                entry,
                f"{shown(str(raw))} does not exist",
                "create it, correct the path, or add 'create: true' to the entry to have dockyard create the folder",
            )
        # Checked before creating: a refused place must not gain a folder either.
        _check_host(entry, Path(os.path.realpath(raw)))
        raw.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(raw))
    _check_host(entry, real)
    target = entry.target or real.as_posix()
    if entry.target is None and (reason := target_refusal(target)):
        raise _refuse(entry, f"its own path {target} cannot be a container path: {reason}", "give it a 'target'")
    return DataMount(real, target, entry.read_only, entry.label)


def _check_host(entry: MountEntry, real: Path) -> None:
    reason = mount_refusal(real) or private_refusal(real)
    if reason:
        raise _refuse(entry, f"{real} {reason}", "mount a data folder of its own (e.g. ~/datasets/NAME)")


def resolve_all(entries: Sequence[MountEntry], env_name: str, environ: Mapping[str, str]) -> tuple[DataMount, ...]:
    out = tuple(resolve(e, env_name, environ) for e in entries)
    targets = [m.target.rstrip("/") for m in out]
    for i, target in enumerate(targets):
        for other in targets[:i]:
            if target == other or target.startswith(f"{other}/") or other.startswith(f"{target}/"):
                raise _refuse(
                    entries[i],
                    f"its target {target} overlaps the target {other} of another mount (site settings and spec "
                    "together)",
                    "give each mount a folder of its own",
                )
    return out


def check_workspace(mounts: Sequence[DataMount], workspace: Path) -> None:
    """A mount at, above or inside the workspace would hide the notebook's folder or create root-owned folders in
    it (the engine makes missing mount points as root)."""
    ws = workspace.as_posix().rstrip("/")
    for m in mounts:
        t = m.target.rstrip("/")
        if t == ws or t.startswith(f"{ws}/") or ws.startswith(f"{t}/"):
            raise DockyardError(
                f"The mount {shown(m.label, 120)} would go to {t}, which overlaps the kernel's workspace {ws}",
                fix="give the mount a 'target' outside the workspace (e.g. /data/NAME), or open the notebook elsewhere",
            )


def docker_mounts(mounts: Sequence[DataMount]) -> list[Mount]:
    return [Mount(target=m.target, source=m.source.as_posix(), type="bind", read_only=m.read_only) for m in mounts]
