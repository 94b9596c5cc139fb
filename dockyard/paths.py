"""Where dockyard finds environment specs and keeps its own files."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# In a source checkout the specs live beside the package; a wheel carries a copy inside it.
SOURCE_ROOT = PACKAGE_DIR.parent


def checkout_dir(name: str) -> Path:
    """NAME/ of the dockyard checkout this package runs from, where the generated trees (kernels/, k8s/ ...)
    live, whatever the current directory; for an installed package (no checkout), NAME/ in the current one."""
    return SOURCE_ROOT / name if (SOURCE_ROOT / "pyproject.toml").is_file() else Path(name)


def _search_dirs(variable: str, name: str) -> list[Path]:
    """$VARIABLE's directories, then the checkout's NAME/, then the copy packaged with dockyard; first match wins."""
    dirs: list[Path] = []
    extra = os.environ.get(variable, "")
    dirs.extend(Path(p).expanduser() for p in extra.split(os.pathsep) if p)
    for candidate in (SOURCE_ROOT / name, PACKAGE_DIR / name):
        if candidate.is_dir() and candidate not in dirs:
            dirs.append(candidate)
    return dirs


def envs_dirs() -> list[Path]:
    """Spec directories: $DOCKYARD_ENVS_PATH, the checkout's envs/, the packaged copy."""
    return _search_dirs("DOCKYARD_ENVS_PATH", "envs")


def stacks_dirs() -> list[Path]:
    """Stack directories (stacks/NAME/stack.yaml): $DOCKYARD_STACKS_PATH, the checkout's stacks/, the packaged copy."""
    return _search_dirs("DOCKYARD_STACKS_PATH", "stacks")


def state_dir() -> Path:
    """Files that must outlive a cache wipe (a running stack's generated passwords), private to the user."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "dockyard"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "dockyard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_file() -> Path:
    explicit = os.environ.get("DOCKYARD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dockyard" / "config.yaml"
