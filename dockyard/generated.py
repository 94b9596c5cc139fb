"""Generated, checked-in file trees (kernels/, .devcontainer/): compare with disk, write, prune.

A tree is {'<folder>/<file>': bytes}. Only files the generator owns (told by `owned`, which reads the
generator's own marker) are ever replaced or removed, so hand-written files beside them stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_HEAD = 400  # bytes: a marker "within the first lines" (after a YAML document start, a comment or two)


def marked(paths: Iterable[Path], marker: str, *, at_start: bool = True) -> list[Path]:
    """The files among paths that carry a generator's marker: first thing in the file, or (at_start=False)
    within its first lines. A missing or unreadable file is not ours, so hand-written files are never touched."""
    found = []
    for path in paths:
        try:
            with path.open("rb") as f:
                head = f.read(len(marker.encode()) if at_start else _HEAD)
        except OSError:
            continue
        if (head == marker.encode()) if at_start else (marker.encode() in head):
            found.append(path)
    return found


@dataclass(frozen=True)
class Tree:
    files: dict[str, bytes]
    out_dir: Path
    owned: Callable[[Path], list[Path]]  # the files of a folder this generator wrote ([] when none)

    @property
    def folders(self) -> set[str]:
        return {rel.split("/")[0] for rel in self.files}

    def _ours(self) -> dict[str, list[Path]]:
        if not self.out_dir.is_dir():
            return {}
        return {p.name: files for p in sorted(self.out_dir.iterdir()) if p.is_dir() and (files := self.owned(p))}

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def differences(self, *, complete: bool) -> list[str]:
        """What `write` would change: missing, outdated, extra and (with the complete set) stale entries."""
        problems = []
        for rel, data in self.files.items():
            path = self.out_dir / rel
            if not path.exists():
                problems.append(f"missing: {path}")
            elif path.read_bytes() != data:
                problems.append(f"outdated: {path}")
        for folder, owned in self._ours().items():
            if folder in self.folders:
                problems += [f"extra: {p}" for p in owned if self._rel(p) not in self.files]
            elif complete:
                problems.append(f"stale: {self.out_dir / folder}")
        return problems

    def write(self, *, complete: bool) -> list[Path]:
        """Write what differs; remove our files that no longer belong (whole stale folders only when complete)."""
        changed = []
        for rel, data in self.files.items():
            path = self.out_dir / rel
            if path.exists() and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            changed.append(path)
        for folder, owned in self._ours().items():
            if folder not in self.folders and not complete:
                continue
            for path in owned:
                if self._rel(path) not in self.files:
                    path.unlink()
                    changed.append(path)
            for directory in sorted({p.parent for p in owned}, key=lambda d: len(d.parts), reverse=True):
                if directory.is_dir() and not any(directory.iterdir()):  # keep folders holding the user's own files
                    directory.rmdir()
        return changed
