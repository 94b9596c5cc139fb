"""The validated, immutable form of an environment spec: Spec and its Variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError, shown
from ..gpu.requirements import CudaNeeds
from .data_entries import MountEntry, SecretEntry


@dataclass(frozen=True)
class Variant:
    """One buildable flavour of an environment (e.g. pytorch:cuda), with spec-wide values merged in."""

    env: str
    name: str
    base: str
    description: str
    system_packages: tuple[str, ...]
    python_packages: tuple[str, ...]
    pip_extra_index_urls: tuple[str, ...]
    env_vars: dict[str, str]
    gpu: str
    cuda: CudaNeeds | None = None  # what the wheels need from the host's driver and GPU (cuda variants)

    @property
    def ref(self) -> str:
        return f"{self.env}:{self.name}"


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    display_name: str
    description: str
    framework: str
    framework_version: str
    python: str
    resources: dict[str, Any]
    kernel: dict[str, Any]
    variants: dict[str, Variant] = field(repr=False)
    mounts: tuple[MountEntry, ...] = ()  # docs/data-and-secrets.md
    secrets: tuple[SecretEntry, ...] = ()

    def summary(self, variant: Variant) -> dict[str, str]:
        """What a running kernel or a kernelspec reader needs to know about one variant."""
        return {
            "env": self.name,
            "variant": variant.name,
            "framework": self.framework,
            "framework_version": self.framework_version,
            "python": self.python,
            "gpu": variant.gpu,
        }

    def variant(self, name: str | None = None) -> Variant:
        if name is None:
            name = "cpu" if "cpu" in self.variants else next(iter(self.variants))
        try:
            return self.variants[name]
        except KeyError:
            raise SpecError(
                f"Environment '{self.name}' has no variant {shown(name)} (it has: {', '.join(self.variants)})",
                fix=f"use one of {', '.join(f'{self.name}:{v}' for v in self.variants)}",
            ) from None


_MAX_REF = 200  # names are at most 39 characters, variants a few; a longer ref is a mistake


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'pytorch:cuda' → ('pytorch', 'cuda'); 'pytorch' → ('pytorch', None); anything else is a SpecError."""
    name, sep, variant = ref.partition(":")
    malformed = not name or (bool(sep) and not variant) or ":" in variant or len(ref) > _MAX_REF
    # Spaces, line breaks and other invisible characters are never part of a name; refuse them by name.
    if malformed or not ref.isprintable() or any(c.isspace() for c in ref):
        raise SpecError(
            f"{shown(ref)} is not an environment reference",
            fix="write NAME or NAME:VARIANT, e.g. 'pytorch' or 'pytorch:cuda' ('dockyard env list' shows them)",
        )
    return name, (variant or None)
