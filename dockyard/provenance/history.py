"""Which lock text has a given sha256: the checkout's lock file, else the commit of its history that held it.

A notebook stamped a month ago names a lock the checkout may have moved past; git still has it. Reading
the history of one file is a few `git show`s, well under a second for a lock's usual tens of commits.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..images.lockfile import lock_digest

MAX_COMMITS = 200  # a lock relocked more often than this: search no further back


@dataclass(frozen=True)
class FoundLock:
    text: str
    commit: str  # "" for the working tree's file


def git(repo: Path, *args: str) -> str | None:
    """git's output, None when git is missing, repo is not a checkout, or the command fails."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def find_lock(path: Path, digest: str) -> FoundLock | None:
    """The text of the lock at path (now, or in an earlier commit) whose lock_digest is digest."""
    try:
        if lock_digest(path.read_text(encoding="utf-8")) == digest:
            return FoundLock(path.read_text(encoding="utf-8"), "")
    except (OSError, UnicodeDecodeError):
        pass
    return in_history(path, digest)


def in_history(path: Path, digest: str) -> FoundLock | None:
    repo = path.parent
    top = git(repo, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    root = Path(top.strip())
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    log = git(root, "log", f"--max-count={MAX_COMMITS}", "--format=%H", "--", rel)  # pathspecs: from the top
    for commit in (log or "").split():
        text = show(root, commit, rel)
        if text is not None and lock_digest(text) == digest:
            return FoundLock(text, commit)
    return None


def show(repo: Path, rev: str, rel: str) -> str | None:
    """The file rel (relative to the checkout's top) at revision rev."""
    return git(repo, "show", f"{rev}:{rel}")


def at_revision(path: Path, rev: str) -> FoundLock | None:
    """The lock at path as revision rev had it (rev: anything git names a commit by)."""
    top = git(path.parent, "rev-parse", "--show-toplevel")
    commit = git(path.parent, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if top is None or commit is None:
        return None
    rel = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    text = show(path.parent, commit.strip(), rel)
    return None if text is None else FoundLock(text, commit.strip())
