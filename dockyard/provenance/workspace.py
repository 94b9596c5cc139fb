"""The content tags that stamped notebooks under a folder name: `images prune` keeps those images.

Reads only each notebook's metadata (a JSON parse per file), skips hidden folders (.git, .ipynb_checkpoints,
virtual environments) and stops after MAX_NOTEBOOKS, so a home directory as workspace stays quick."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .stamp import KEY

MAX_NOTEBOOKS = 5000
MAX_BYTES = 64 * 1024 * 1024  # a bigger .ipynb is skipped (outputs of that size are not worth a full parse)


def stamped_tags(root: Path) -> dict[str, Path]:
    """content tag → the first notebook under root whose stamp names it."""
    found: dict[str, Path] = {}
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__"))
        for name in sorted(files):
            if not name.endswith(".ipynb"):
                continue
            seen += 1
            if seen > MAX_NOTEBOOKS:
                return found
            tag = _tag_of(Path(folder) / name)
            if tag:
                found.setdefault(tag, Path(folder) / name)
    return found


def _tag_of(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    stamp = (data.get("metadata") or {}).get(KEY) if isinstance(data, dict) else None
    tag = stamp.get("content_tag") if isinstance(stamp, dict) else None
    return tag if isinstance(tag, str) else None
