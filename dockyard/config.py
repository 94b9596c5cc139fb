"""User settings for builds and kernels: config file < environment variables < command-line flags.

Everything here describes the user's *site* (proxy, CA, mirrors, local base images), never the
environment itself, so specs stay portable while builds work behind corporate networks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import paths
from .errors import ConfigError
from .specs.validation import first_error
from .specs.yamlsource import load_yaml, where

# The allowed values of the enumerated settings, here only (the schema, env variables and kernelspecs use them).
GPU_MODES = ("auto", "off", "required")
NETWORK_MODES = ("host", "bridge")
PULL_POLICIES = ("missing", "never")

_STR_LIST = {"type": "array", "items": {"type": "string"}}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "build": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ca_certs": _STR_LIST,
                "pip_index_url": {"type": "string"},
                "pip_extra_index_urls": _STR_LIST,
                "wheelhouse": {"type": "string"},
                "ignore_spec_indexes": {"type": "boolean"},
                "pull": {"enum": list(PULL_POLICIES)},
                "proxy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {k: {"type": "string"} for k in ("http", "https", "no_proxy")},
                },
            },
        },
        "base_overrides": {"type": "object", "additionalProperties": {"type": "string"}},
        "kernels": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "gpu": {"enum": list(GPU_MODES)},
                "network": {"enum": list(NETWORK_MODES)},
                "workspace_root": {"type": "string"},
                "auto_build": {"type": "boolean"},
            },
        },
    },
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
        """Apply command-line flags (None means 'not given')."""
        changes: dict[str, Any] = {}
        if flags.get("ca_cert"):
            changes["ca_certs"] = tuple(_ca_path(Path(p), "--ca-cert") for p in flags["ca_cert"])
        if flags.get("pip_index_url"):
            changes["pip_index_url"] = flags["pip_index_url"]
        if flags.get("pip_extra_index_url"):
            changes["pip_extra_index_urls"] = tuple(flags["pip_extra_index_url"])
        if flags.get("wheelhouse"):
            changes["wheelhouse"] = _wheelhouse_path(flags["wheelhouse"], "--wheelhouse")
        if flags.get("ignore_spec_indexes"):
            changes["ignore_spec_indexes"] = True
        if flags.get("no_pull"):
            changes["pull"] = "never"
        if flags.get("base_override"):
            changes["base_overrides"] = {
                **self.base_overrides,
                **_parse_overrides(",".join(flags["base_override"]), "--base-override"),
            }
        return replace(self, **changes)


@dataclass(frozen=True)
class KernelOptions:
    gpu: str = "auto"
    network: str = "host"
    workspace_root: Path | None = None
    auto_build: bool = False


@dataclass(frozen=True)
class Settings:
    build: BuildOptions
    kernels: KernelOptions
    source: str


def _ca_path(path: Path, origin: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise ConfigError(
            f"{origin}: CA certificate path {path} does not exist", fix="give a PEM file or a directory of PEM files"
        )
    return path.resolve()


def _wheelhouse_path(value: str, origin: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"{origin}: wheelhouse {path} is not a directory", fix="point it at a directory of .whl files"
        )
    return path.resolve()


def _parse_overrides(text: str, origin: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        upstream, sep, local = item.partition("=")
        if not sep or not upstream or not local:
            raise ConfigError(
                f"{origin}: base override {item!r} is not UPSTREAM=LOCAL",
                fix="write it like 'python:3.11-slim-bookworm=dockyard-local/python:3.11-bookworm'",
            )
        out[upstream] = local
    return out


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"Environment variable {name}={value!r} is not a boolean", fix=f"set {name} to 1 or 0")


def load_settings() -> Settings:
    """Read the config file (if any), then let DOCKYARD_* environment variables override it."""
    cfg_path = paths.config_file()
    data: dict[str, Any] = {}
    if cfg_path.exists():
        doc = load_yaml(cfg_path, ConfigError, "dockyard config", empty_ok=True)
        err = first_error(CONFIG_SCHEMA, doc)
        if err is not None:
            at = list(err.absolute_path)
            raise ConfigError(
                f"{where(cfg_path, doc.line(at))}: {'.'.join(map(str, at)) or 'top level'}: {err.message}",
                fix="correct the value; the config file format is described in README (section 'Corporate proxies')",
            )
        data = doc.data
    build_cfg = data.get("build", {})
    origin = str(cfg_path)
    ca = [_ca_path(Path(p), origin) for p in build_cfg.get("ca_certs", [])]
    wheelhouse = _wheelhouse_path(build_cfg["wheelhouse"], origin) if build_cfg.get("wheelhouse") else None
    overrides = dict(data.get("base_overrides", {}))
    proxy = {k: v for k, v in build_cfg.get("proxy", {}).items() if v}
    index_url = build_cfg.get("pip_index_url")
    extra = list(build_cfg.get("pip_extra_index_urls", []))
    ignore = build_cfg.get("ignore_spec_indexes", False)

    env = os.environ
    if env.get("DOCKYARD_CA_CERTS"):
        ca = [_ca_path(Path(p), "DOCKYARD_CA_CERTS") for p in env["DOCKYARD_CA_CERTS"].split(os.pathsep) if p]
    if env.get("DOCKYARD_WHEELHOUSE"):
        wheelhouse = _wheelhouse_path(env["DOCKYARD_WHEELHOUSE"], "DOCKYARD_WHEELHOUSE")
    if env.get("DOCKYARD_PIP_INDEX_URL"):
        index_url = env["DOCKYARD_PIP_INDEX_URL"]
    if env.get("DOCKYARD_PIP_EXTRA_INDEX_URLS"):
        extra = env["DOCKYARD_PIP_EXTRA_INDEX_URLS"].split()
    if (flag := _env_flag("DOCKYARD_IGNORE_SPEC_INDEXES")) is not None:
        ignore = flag
    pull = env.get("DOCKYARD_PULL") or build_cfg.get("pull", "missing")
    if pull not in PULL_POLICIES:
        raise ConfigError(
            f"DOCKYARD_PULL={pull!r} is not a pull policy",
            fix="use missing (pull absent base images) or never (offline)",
        )
    if env.get("DOCKYARD_BASE_OVERRIDES"):
        overrides.update(_parse_overrides(env["DOCKYARD_BASE_OVERRIDES"], "DOCKYARD_BASE_OVERRIDES"))
    # Standard proxy variables win over nothing, lose to the config file's explicit proxy section.
    for key, names in PROXY_VARIABLES.items():
        for name in names:
            if env.get(name) and key not in proxy:
                proxy[key] = env[name]

    kernels_cfg = data.get("kernels", {})
    gpu = env.get("DOCKYARD_GPU") or kernels_cfg.get("gpu", "auto")
    if gpu not in GPU_MODES:
        raise ConfigError(f"DOCKYARD_GPU={gpu!r} is not a GPU mode", fix=f"use {', '.join(GPU_MODES)}")
    network = env.get("DOCKYARD_KERNEL_NETWORK") or kernels_cfg.get("network", "host")
    if network not in NETWORK_MODES:
        raise ConfigError(
            f"DOCKYARD_KERNEL_NETWORK={network!r} is not a network mode", fix=f"use {', '.join(NETWORK_MODES)}"
        )
    root = env.get("DOCKYARD_WORKSPACE_ROOT") or kernels_cfg.get("workspace_root")
    auto_build = _env_flag("DOCKYARD_AUTO_BUILD")
    kernels = KernelOptions(
        gpu=gpu,
        network=network,
        workspace_root=Path(root).expanduser().resolve() if root else None,
        auto_build=kernels_cfg.get("auto_build", False) if auto_build is None else auto_build,
    )
    build = BuildOptions(
        ca_certs=tuple(ca),
        pip_index_url=index_url,
        pip_extra_index_urls=tuple(extra),
        wheelhouse=wheelhouse,
        ignore_spec_indexes=ignore,
        base_overrides=overrides,
        proxy=proxy,
        pull=pull,
    )
    return Settings(build=build, kernels=kernels, source=str(cfg_path) if cfg_path.exists() else "defaults")
