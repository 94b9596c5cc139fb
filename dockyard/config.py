"""User settings for builds and kernels: config file < environment variables < command-line flags.

The options themselves (keys, variables, kinds, defaults) are one table in options.py; this module reads
them into the Settings the rest of dockyard uses.

Everything here describes the user's *site* (proxy, CA, mirrors, local base images), never the
environment itself, so specs stay portable while builds work behind corporate networks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import options, paths
from .errors import ConfigError, shown
from .specs.loader import schema_error
from .specs.validation import first_error
from .specs.yamlsource import YamlDocument, load_yaml, where

CONFIG_SCHEMA: dict[str, Any] = options.schema()
_FORMAT = "docs/configuration.md"
_HINTS = {
    "max_memory": "a size such as '6g' or '512m'",
    **dict.fromkeys(("pip_index_url", "pip_extra_index_urls"), "an http(s):// or file:// URL without spaces"),
}


# BuildOptions.proxy keys → the standard variables that carry them (read from the environment, passed to builds).
PROXY_VARIABLES = {
    "http": ("HTTP_PROXY", "http_proxy"),
    "https": ("HTTPS_PROXY", "https_proxy"),
    "no_proxy": ("NO_PROXY", "no_proxy"),
}


@dataclass(frozen=True)
class BuildOptions:
    """Site settings that shape a build. Those that change image content enter the content hash."""

    ca_certs: tuple[Path, ...] = ()
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    wheelhouse: Path | None = None
    ignore_spec_indexes: bool = False
    base_overrides: dict[str, str] = field(default_factory=dict)
    proxy: dict[str, str] = field(default_factory=dict)
    pull: str = "missing"  # "never": a missing base image is an error, no registry is contacted

    def base_for(self, upstream: str) -> str:
        return self.base_overrides.get(upstream, upstream)

    def with_flags(self, **flags: Any) -> BuildOptions:
        """Apply command-line flags (None means 'not given'); a flag beats the file and the environment."""
        changes: dict[str, Any] = {}
        for option in options.FLAGGED:
            assert option.flag is not None
            value = option.from_flag(flags.get(option.flag.dest))
            if value is not None:
                field_name = option.key.rpartition(".")[2]
                changes[field_name] = {**getattr(self, field_name), **value} if option.kind.merge else value
        return replace(self, **changes)


@dataclass(frozen=True)
class KernelOptions:
    gpu: str = "auto"
    gpus: str = "all"  # which GPUs (gpu/choice.py); all but "all" take a lease (gpu/ledger.py)
    gpu_wait: int = 0  # s in the GPU queue; 0: refuse at once
    network: str = "host"
    workspace_root: Path | None = None
    auto_build: bool = False
    pool: PoolOptions = field(default_factory=lambda: PoolOptions())
    cull: CullOptions = field(default_factory=lambda: CullOptions())


@dataclass(frozen=True)
class CullOptions:
    """Idle kernels handed back (kernel/culling.py, docs/resources.md): Jupyter's culler, dockyard's timeouts."""

    idle_timeout: int = 0  # s; 0: never
    gpu_idle_timeout: int = 0  # s, for kernels holding GPU memory; 0: as idle_timeout
    busy: bool = False
    connected: bool = False
    interval: int = 60


@dataclass(frozen=True)
class PoolOptions:
    """The warm kernel pool (kernel/pool/pooled.py, docs/pool.md): small by default, capped per process."""

    size: int = 1  # warm containers per environment+directory a kernel started in recently (0: no pool)
    max_containers: int = 4  # all pooled containers of one process together
    max_memory: str = "6g"  # what they may hold together while idle, measured


@dataclass(frozen=True)
class RegistryOptions:
    """The registry images are shared through (registry/, docs/registry.md); host None: no registry."""

    host: str | None = None
    prefix: str | None = None  # repository path before dockyard/ENV ("team/ml")
    ca_cert: Path | None = None  # the CA its TLS certificate is signed by (else the system's trust store)
    pull_first: bool = False  # build: pull the content tag before building

    def remote(self, local: str) -> str:
        """The registry's name of a local image name (dockyard/ENV:TAG → HOST/PREFIX/dockyard/ENV:TAG)."""
        assert self.host is not None
        return "/".join(p for p in (self.host, self.prefix, local) if p)


@dataclass(frozen=True)
class Settings:
    build: BuildOptions
    kernels: KernelOptions
    source: str
    registry: RegistryOptions = field(default_factory=RegistryOptions)


def _config_path() -> Path:
    """The config file's path (it need not exist); an unusable DOCKYARD_CONFIG is a ConfigError."""
    try:
        path = paths.config_file()
        path.exists()  # raises on a name too long for the file system
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. '~nosuchuser/config.yaml'
        value = os.environ.get("DOCKYARD_CONFIG", "")
        raise ConfigError(
            f"DOCKYARD_CONFIG={shown(value)} is not a usable path ({getattr(exc, 'strerror', None) or exc})",
            fix="point DOCKYARD_CONFIG at a YAML file, or unset it to use ~/.config/dockyard/config.yaml",
        ) from None
    return path


def _read_config(path: Path) -> tuple[dict[str, Any], YamlDocument]:
    doc = load_yaml(path, ConfigError, "dockyard config", empty_ok=True)
    err = first_error(CONFIG_SCHEMA, doc)
    if err is not None:  # one paragraph as for specs: file, line, key, value, fix, "did you mean" for typos
        raise schema_error(doc, err, ConfigError, _FORMAT, _HINTS)
    data: dict[str, Any] = doc.data
    return data, doc


def _values(cfg_path: Path) -> dict[str, Any]:
    """Every option's value: its default, else the config file's, else the environment's (the table's order)."""
    data, doc = _read_config(cfg_path) if cfg_path.exists() else ({}, None)
    values: dict[str, Any] = {}
    for option in options.OPTIONS:
        value = option.default
        found, raw = options.lookup(data, option.key) if option.key else (False, None)
        if found and doc is not None:
            at: list[str | int] = [*option.key.split(".")]
            value = option.kind.from_file(raw, where(cfg_path, doc.line(at)))
        if (from_env := option.from_env(os.environ)) is not None:
            value = {**value, **from_env[0]} if option.kind.merge and value else from_env[0]
        values[option.name] = value
    return values


def load_settings() -> Settings:
    """The settings: defaults < config file < DOCKYARD_* (and the standard proxy) variables; flags come later
    (BuildOptions.with_flags)."""
    cfg_path = _config_path()
    v = _values(cfg_path)
    proxy = {key: v[f"build.proxy.{key}"] for key in PROXY_VARIABLES if v[f"build.proxy.{key}"]}
    build = BuildOptions(
        ca_certs=tuple(v["build.ca_certs"]),
        pip_index_url=v["build.pip_index_url"],
        pip_extra_index_urls=tuple(v["build.pip_extra_index_urls"]),
        wheelhouse=v["build.wheelhouse"],
        ignore_spec_indexes=v["build.ignore_spec_indexes"],
        base_overrides=dict(v["base_overrides"]),
        proxy=proxy,
        pull=v["build.pull"],
    )
    pool = PoolOptions(
        size=v["kernels.pool.size"],
        max_containers=v["kernels.pool.max_containers"],
        max_memory=v["kernels.pool.max_memory"],
    )
    kernels = KernelOptions(
        gpu=v["kernels.gpu"],
        gpus=v["kernels.gpus"],
        gpu_wait=v["kernels.gpu_wait"],
        network=v["kernels.network"],
        workspace_root=v["kernels.workspace_root"],
        auto_build=v["kernels.auto_build"],
        pool=pool,
        cull=CullOptions(**{key: v[f"kernels.cull.{key}"] for key in CullOptions.__dataclass_fields__}),
    )
    registry = RegistryOptions(**{key: v[f"registry.{key}"] for key in RegistryOptions.__dataclass_fields__})
    source = str(cfg_path) if cfg_path.exists() else "defaults"
    return Settings(build=build, kernels=kernels, source=source, registry=registry)
