"""What `dockyard diff` (and the panel) compares: a ref (ENV:VARIANT, optionally @REV for the lock at a git
revision), a content tag (dockyard/ENV:VARIANT-HASH), a lock file, or a stamped notebook → its packages.

Refs and lock files need no engine; content tags and notebooks ask it only for the image (labels, size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import specs
from ..config import BuildOptions
from ..errors import DockyardError, shown
from ..images.lockfile import LockError, lock_digest, lock_path, parse
from ..images.plan import make_plan
from ..labels import LABEL_LOCK_SHA256
from . import history
from .stamp import Stamp, read

if TYPE_CHECKING:
    import docker

_TAG = re.compile(r"(?:dockyard/)?([a-z][a-z0-9-]*):([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{12})")
_REF_AT = re.compile(r"([^@\s]+)@(\S+)")

ClientFactory = Callable[[], "docker.DockerClient | None"]


class DiffError(DockyardError):
    """A diff operand names nothing dockyard can read packages from."""


@dataclass(frozen=True)
class Side:
    label: str  # what was asked for
    kind: str  # ref, lock, tag, notebook
    pins: dict[str, str]
    lock_sha256: str
    ref: str = ""
    content_tag: str = ""  # "" when unknown (a lock file, a ref at another revision)
    image_size: int | None = None  # bytes, when the image is on this engine
    source: str = ""  # where the packages came from: a lock file, or COMMIT:PATH

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "ref": self.ref or None,
            "content_tag": self.content_tag or None,
            "lock_sha256": self.lock_sha256,
            "image_size": self.image_size,
            "source": self.source,
            "packages": len(self.pins),
        }


def resolve(text: str, options: BuildOptions, client: ClientFactory) -> Side:
    path = Path(text)
    if text.endswith(".ipynb"):
        return from_notebook(path, options, client)
    if path.is_file():
        return from_lock_file(path)
    if m := _TAG.fullmatch(text):
        return from_tag(text, f"{m.group(1)}:{m.group(2)}", m.group(3), options, client)
    if m := _REF_AT.fullmatch(text):
        return from_ref_at(text, m.group(1), m.group(2))
    return from_ref(text, options, client)


def pins_of(text: str, source: str) -> dict[str, str]:
    return {p.name: p.version for p in parse(Path(source), text, "ENV:VARIANT").pins}


def from_lock_file(path: Path) -> Side:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffError(f"Cannot read {path} ({exc})", fix="name a lock file (envs/locks/ENV-VARIANT.txt)") from None
    return Side(str(path), "lock", pins_of(text, str(path)), lock_digest(text), source=str(path))


def from_ref(text: str, options: BuildOptions, client: ClientFactory) -> Side:
    spec, variant = specs.resolve(text)
    plan = make_plan(spec, variant, options)
    path = lock_path(spec, variant)
    if plan.lock is None:  # stale or missing: a stale lock is still what a diff should show
        if not path.is_file():
            raise plan.lock_error or DiffError(f"{variant.ref} has no lock", fix=f"run 'dockyard lock {variant.ref}'")
        text_ = path.read_text(encoding="utf-8")
        return Side(text, "ref", pins_of(text_, str(path)), lock_digest(text_), variant.ref, source=str(path))
    size = _size(client, plan.tag)
    return Side(
        text,
        "ref",
        {p.name: p.version for p in plan.lock.pins},
        lock_digest(plan.lock.text),
        variant.ref,
        plan.tag,
        size,
        str(path),
    )


def from_ref_at(text: str, ref: str, rev: str) -> Side:
    spec, variant = specs.resolve(ref)
    path = lock_path(spec, variant)
    found = history.at_revision(path, rev)
    if found is None:
        raise DiffError(
            f"{shown(text)}: no lock of {variant.ref} at revision {shown(rev)} ({path.name} in a git checkout)",
            fix="name a commit, branch or tag of this checkout that has the lock (git log -- envs/locks/)",
        )
    source = f"{found.commit[:12]}:{path.name}"
    return Side(text, "ref", pins_of(found.text, source), lock_digest(found.text), variant.ref, source=source)


def from_stamp_lock(label: str, kind: str, stamp_ref: str, digest: str, tag: str, size: int | None) -> Side:
    """The packages of the lock with sha256 digest: the checkout's lock of stamp_ref, or its git history."""
    try:
        spec, variant = specs.resolve(stamp_ref)
    except DockyardError as exc:
        raise DiffError(f"{label}: {exc.problem}", fix=exc.fix) from None
    path = lock_path(spec, variant)
    found = history.find_lock(path, digest)
    if found is None:
        raise DiffError(
            f"{shown(label)} was built from a lock (sha256 {digest[:12]}…) that neither {path} nor its git history "
            "holds",
            fix="diff in the checkout the notebook came from, or against its lock file",
        )
    source = f"{found.commit[:12]}:{path.name}" if found.commit else str(path)
    return Side(label, kind, pins_of(found.text, source), digest, variant.ref, tag, size, source)


def from_tag(text: str, ref: str, content_hash: str, options: BuildOptions, client: ClientFactory) -> Side:
    tag = f"dockyard/{ref}-{content_hash}"
    engine = client()
    image = _image(engine, tag)
    if image is not None and (digest := (image.labels or {}).get(LABEL_LOCK_SHA256)):
        return from_stamp_lock(text, "tag", ref, digest, tag, int(image.attrs.get("Size", 0)))
    spec, variant = specs.resolve(ref)
    plan = make_plan(spec, variant, options)
    if plan.content_hash == content_hash and plan.lock is not None:
        size = int(image.attrs.get("Size", 0)) if image is not None else None
        pins = {p.name: p.version for p in plan.lock.pins}
        return Side(text, "tag", pins, lock_digest(plan.lock.text), ref, tag, size, str(plan.lock.path))
    raise DiffError(
        f"{shown(text)} is not an image on this engine{'' if image is None else ' with a lock label'} and not "
        f"what this checkout builds for {ref} ({plan.tag})",
        fix="diff the notebook stamped with it, or the lock file it was built from",
    )


def from_notebook(path: Path, options: BuildOptions, client: ClientFactory) -> Side:
    try:
        stamp = read(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DiffError(f"Cannot read the stamp of {path} ({exc})", fix="name a saved notebook (.ipynb)") from None
    if stamp is None:
        raise DiffError(
            f"{path} has no dockyard stamp (metadata.dockyard)",
            fix="run it in a dockyard kernel and save it, or stamp it: dockyard stamp NOTEBOOK",
        )
    return side_of_stamp(str(path), stamp, client)


def side_of_stamp(label: str, stamp: Stamp, client: ClientFactory) -> Side:
    size = _size(client, stamp.content_tag)
    return from_stamp_lock(label, "notebook", stamp.ref, stamp.lock_sha256, stamp.content_tag, size)


def _image(engine: docker.DockerClient | None, tag: str) -> Any:
    if engine is None:
        return None
    import docker.errors

    from ..engine import find_image

    try:
        return find_image(engine, tag)
    except docker.errors.DockerException:
        return None


def _size(client: ClientFactory, tag: str) -> int | None:
    image = _image(client(), tag)
    return int(image.attrs.get("Size", 0)) if image is not None else None


__all__ = ["DiffError", "LockError", "Side", "resolve"]
