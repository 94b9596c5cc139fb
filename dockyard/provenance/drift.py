"""A notebook's stamp against this machine and checkout: matches, drifted or missing (the panel's answer).

- matches: the stamp's content tag is an image on this engine: switching to it reproduces the environment;
- drifted: this checkout's lock of the stamp's ref is another lock: the package diff, and the commit whose
  lock it was;
- missing: same lock, no image: building the ref here gives exactly the stamp's tag (or, where the site
  settings differ, says which tag it would give instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import specs
from ..config import BuildOptions
from ..errors import DockyardError
from ..images.lockfile import lock_digest, lock_path
from ..images.plan import make_plan
from . import history
from .diff import PackageDiff, compare
from .operands import pins_of
from .stamp import Stamp

if TYPE_CHECKING:
    import docker

MATCHES, DRIFTED, MISSING = "matches", "drifted", "missing"


@dataclass(frozen=True)
class Drift:
    state: str
    stamp: Stamp
    message: str
    current_tag: str = ""  # what this checkout builds for the stamp's ref ("" without such a spec)
    exact_build: bool = False  # building current_tag here reproduces the stamp's tag
    lock_commit: str | None = None  # the commit holding the stamp's lock ("": the working tree; None: not found)
    packages: PackageDiff | None = None  # the stamp's lock → this checkout's (drifted)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "stamp": self.stamp.to_json(),
            "message": self.message,
            "current_tag": self.current_tag or None,
            "exact_build": self.exact_build,
            "lock_commit": self.lock_commit,
            "packages": self.packages.to_json() if self.packages is not None else None,
        }


def assess(stamp: Stamp, client: docker.DockerClient | None, options: BuildOptions) -> Drift:
    if client is not None:
        from ..engine import find_image

        if find_image(client, stamp.content_tag) is not None:
            return Drift(MATCHES, stamp, f"{stamp.content_tag} is on this machine", stamp.content_tag, True, "")
    try:
        spec, variant = specs.resolve(stamp.ref)
    except DockyardError as exc:
        return Drift(
            MISSING, stamp, f"{stamp.content_tag} is not here, and this checkout has no {stamp.ref}: {exc.problem}"
        )
    plan = make_plan(spec, variant, options)
    path = lock_path(spec, variant)
    found = history.find_lock(path, stamp.lock_sha256)
    commit = found.commit if found is not None else None
    if plan.lock is not None and lock_digest(plan.lock.text) == stamp.lock_sha256:
        exact = plan.content_hash == stamp.content_hash
        how = (
            f"building {stamp.ref} gives exactly {stamp.content_tag}"
            if exact
            else f"this checkout builds {plan.tag} from the same lock (the site settings or the spec's other "
            "fields differ from the machine that stamped it)"
        )
        return Drift(MISSING, stamp, f"{stamp.content_tag} is not built here; {how}", plan.tag, exact, commit)
    current = {p.name: p.version for p in plan.lock.pins} if plan.lock is not None else {}
    packages = compare(pins_of(found.text, str(path)), current) if found is not None else None
    where = (
        f"commit {commit[:12]} holds the stamp's lock (git checkout {commit[:12]} -- {path.name} or a worktree there)"
        if commit
        else f"{path.name} here is that lock, but stale: dockyard lock {stamp.ref}"
        if commit == ""
        else "no commit of this checkout holds the stamp's lock"
    )
    summary = f": {packages.summary()}" if packages is not None else ""
    return Drift(
        DRIFTED, stamp, f"{stamp.ref} here has another lock than the notebook's{summary}; {where}", plan.tag,
        False, commit, packages,
    )  # fmt: skip
