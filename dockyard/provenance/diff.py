"""Two environments' packages compared: added, removed, changed, with the CUDA wheels called out. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..images.lockfile import is_cuda_pin


@dataclass(frozen=True)
class Change:
    name: str
    old: str  # "" when added
    new: str  # "" when removed

    @property
    def cuda(self) -> bool:
        """A CUDA wheel, or a framework moving between its CPU and CUDA builds ('2.13.0+cpu' → '2.13.0')."""
        if is_cuda_pin(self.name, self.old) or is_cuda_pin(self.name, self.new):
            return True
        local = {v.partition("+")[2] for v in (self.old, self.new) if v}
        return len(local) > 1 and bool(local & {"cpu"})

    @property
    def kind(self) -> str:
        return "added" if not self.old else "removed" if not self.new else "changed"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old or None, "new": self.new or None, "cuda": self.cuda}


@dataclass(frozen=True)
class PackageDiff:
    changes: tuple[Change, ...]
    unchanged: int

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def cuda(self) -> list[Change]:
        return [c for c in self.changes if c.cuda]

    @property
    def same(self) -> bool:
        return not self.changes

    def summary(self) -> str:
        """One line: '2 added, 1 removed, 3 changed (CUDA: 2), 80 unchanged'."""
        cuda = f" (CUDA: {len(self.cuda)})" if self.cuda else ""
        counts = ", ".join(f"{len(self.of(k))} {k}" for k in ("added", "removed", "changed"))
        return f"{counts}{cuda}, {self.unchanged} unchanged"

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: [c.to_json() for c in self.of(k)] for k in ("added", "removed", "changed")},
            "cuda": [c.to_json() for c in self.cuda],
            "unchanged": self.unchanged,
            "summary": self.summary(),
        }


def compare(old: Mapping[str, str], new: Mapping[str, str]) -> PackageDiff:
    """old and new: canonical name → version."""
    names = sorted(set(old) | set(new))
    changes = [Change(n, old.get(n, ""), new.get(n, "")) for n in names if old.get(n) != new.get(n)]
    return PackageDiff(tuple(changes), sum(1 for n in old if n in new and old[n] == new[n]))
