"""Lock files: every package of one environment variant, exact version and hashes (no I/O but reading the file).

A spec pins its top-level packages; the lock (`envs/locks/ENV-VARIANT.txt`, next to the spec) pins everything
below them too, so two builds of one spec a month apart, or on two machines, install the same files. Its
header records a digest of the spec inputs it was resolved from, so "is it stale?" is a pure comparison.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import DockyardError
from ..specs import Spec, Variant

LOCK_DIR = "locks"
FORMAT = "dockyard-lock-1"
# The platform the images run on: the base images are Debian bookworm (glibc 2.36) on x86_64.
PLATFORM = "x86_64-manylinux_2_28"
_INPUTS = re.compile(r"^# inputs: ([0-9a-f]{64})$", re.M)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
# Distributions that only exist to bring CUDA: NVIDIA's runtime wheels, CUDA toolkits, GPU compilers and
# plugins. torch's "+cu128"-style local versions are CUDA builds too.
_CUDA_NAMES = re.compile(
    r"^(nvidia-.*|cuda-.*|cupy-cuda.*|jax-cuda.*|triton|pytorch-triton|tensorrt.*|tensorflow-gpu)$"
)
_CUDA_VERSION = re.compile(r"\+cu\d+")


class LockError(DockyardError):
    """A lock file is missing, stale, malformed, or holds CUDA in a CPU variant."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Lock:
    path: Path
    text: str
    inputs: str
    pins: tuple[Pin, ...]

    def pin(self, name: str) -> Pin | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.pins if p.name == wanted), None)


def lock_path(spec: Spec, variant: Variant) -> Path:
    return spec.path.parent / LOCK_DIR / f"{spec.name}-{variant.name}.txt"


def is_cpu(variant: Variant) -> bool:
    """'cpu' and 'cpu-*' variants promise no CUDA libraries."""
    return variant.name == "cpu" or variant.name.startswith("cpu-")


def inputs_digest(spec: Spec, variant: Variant) -> str:
    """What the resolution depends on: the pins, the spec's indexes, Python and the platform (not the name,
    so a copied spec with the same pins shares the lock)."""
    data = {
        "format": FORMAT,
        "platform": PLATFORM,
        "python": spec.python,
        "packages": sorted(variant.python_packages),
        "indexes": list(variant.pip_extra_index_urls),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def header(spec: Spec, variant: Variant) -> str:
    return (
        f"# dockyard lock of {variant.ref}: every package of the image, with hashes. Written by\n"
        f"# `dockyard lock {variant.ref}`; edit the spec ({spec.path.name}) and relock, never this file.\n"
        f"# target: {PLATFORM}, CPython {spec.python}\n"
        f"# inputs: {inputs_digest(spec, variant)}\n"
    )


def parse(path: Path, text: str, ref: str) -> Lock:
    """The pins of a requirements file with hashes (uv's or pip-compile's output)."""
    found = _INPUTS.search(text)
    if found is None:
        raise LockError(f"{path} has no '# inputs:' line, so it was not written by dockyard", fix=_relock_fix(ref))
    joined = re.sub(r"\\\n", " ", text)
    pins: list[Pin] = []
    for number, raw in enumerate(joined.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.split(" #", 1)[0]  # a trailing comment; hashes hold no '#'
        requirement, *options = line.split()
        m = _PIN.match(requirement)
        hashes = tuple(o.removeprefix("--hash=") for o in options if o.startswith("--hash="))
        if m is None or not hashes or len(hashes) != len(options) or not _valid_version(m.group(2)):
            raise LockError(
                f"{path}: entry {number} ({requirement!r}) is not 'NAME==VERSION --hash=...'",
                fix=_relock_fix(ref),
            )
        pins.append(Pin(canonicalize_name(m.group(1)), m.group(2), hashes))
    return Lock(path, text, found.group(1), tuple(pins))


def _valid_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _relock_fix(ref: str) -> str:
    return f"run 'dockyard lock {ref}' and commit the lock"


def is_cuda_pin(name: str, version: str) -> bool:
    """A distribution that brings CUDA (by name, or a '+cuXXX' build of a framework)."""
    return bool(_CUDA_NAMES.match(name) or _CUDA_VERSION.search(version))


def cuda_pins(lock: Lock) -> list[str]:
    return [f"{p.name}=={p.version}" for p in lock.pins if is_cuda_pin(p.name, p.version)]


def lock_digest(text: str) -> str:
    """The lock's identity in stamps and image labels: sha256 of its text as UTF-8 with '\\n' line ends."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def check_cpu(variant: Variant, lock: Lock) -> None:
    """A CPU variant must never hold CUDA libraries: refuse before anything is downloaded."""
    if not is_cpu(variant):
        return
    found = cuda_pins(lock)
    if found:
        shown_pins = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        indexes = ", ".join(variant.pip_extra_index_urls) or "the framework's CPU index"
        raise LockError(
            f"The lock of the CPU variant {variant.ref} ({lock.path}) holds CUDA packages: {shown_pins}; the "
            "resolver found the CUDA build of the framework (PyPI's) instead of the CPU build",
            fix=f"make the CPU build reachable when locking: the spec's index ({indexes}) or a mirror of it "
            "(--pip-index-url / --pip-extra-index-url, build.pip_extra_index_urls) or a wheelhouse holding the "
            f"'+cpu' wheel (--wheelhouse), then run 'dockyard lock {variant.ref}'",
        )


def load_lock(spec: Spec, variant: Variant) -> Lock:
    """The variant's lock, checked: present, made from the spec as it is now, no CUDA in a CPU variant."""
    path = lock_path(spec, variant)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(
            f"{variant.ref} has no lock file ({path}): builds install only locked, hash-checked packages",
            fix=f"run 'dockyard lock {variant.ref}' and commit {path.name}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"Cannot read the lock file {path} ({exc})", fix="check the file") from None
    lock = parse(path, text, variant.ref)
    if lock.inputs != inputs_digest(spec, variant):
        raise LockError(
            f"The lock file {path} is stale: {spec.path.name}'s packages, indexes or Python for {variant.ref} "
            "changed since it was written",
            fix=f"run 'dockyard lock {variant.ref}' (it keeps the other locked versions where it can) and commit "
            "the lock",
        )
    check_cpu(variant, lock)
    return lock


# What `python -m venv` puts into every venv: part of the environment only where the lock pins them.
_VENV_BOOTSTRAP = frozenset({"pip", "setuptools", "wheel", "distribute"})


def installed_pins(freeze_all_output: str, lock: Lock) -> set[tuple[str, str]]:
    """`pip freeze --all` (or `pip list --format=freeze`) output as (canonical name, version) pairs, to compare
    with lock_pins(lock): the venv's own pip/setuptools count only where the lock pins them."""
    locked = {p.name for p in lock.pins}
    out: set[tuple[str, str]] = set()
    for line in freeze_all_output.splitlines():
        name, sep, version = line.strip().partition("==")
        canonical = canonicalize_name(name)
        if sep and (canonical not in _VENV_BOOTSTRAP or canonical in locked):
            out.add((canonical, version))
    return out


def lock_pins(lock: Lock) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in lock.pins}
