"""The registry's names of a plan's image: HOST[/PREFIX]/dockyard/ENV:VARIANT-HASH and the alias
HOST[/PREFIX]/dockyard/ENV:VARIANT."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import RegistryOptions
from ..errors import ConfigError
from ..images.plan import BuildPlan


@dataclass(frozen=True)
class RemoteNames:
    tag: str  # the content tag: one exact build
    alias: str  # the moving tag: the newest push of the variant

    @property
    def repository(self) -> str:
        return self.tag.rpartition(":")[0]


def require_registry(registry: RegistryOptions, command: str) -> str:
    """The configured registry host; a ConfigError saying how to set one when there is none."""
    if not registry.host:
        raise ConfigError(
            f"No registry is configured for '{command}'",
            fix="set registry.host in the config file or DOCKYARD_REGISTRY=HOST[:PORT] (docs/registry.md)",
        )
    return registry.host


def remote_names(registry: RegistryOptions, plan: BuildPlan) -> RemoteNames:
    return RemoteNames(registry.remote(plan.tag), registry.remote(plan.alias))


def split(ref: str) -> tuple[str, str]:
    """(repository, tag) of NAME:TAG (a registry's :PORT is part of the repository)."""
    repository, _, tag = ref.rpartition(":")
    return repository, tag
