"""User settings for builds and kernels: config file < environment variables < command-line flags.

Everything here describes the user's *site* (proxy, CA, mirrors, local base images), never the
environment itself, so specs stay portable while builds work behind corporate networks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import hostfiles, paths
from .errors import ConfigError, shown
from .specs.validation import first_error
from .specs.yamlsource import load_yaml, where

# The allowed values of the enumerated settings, here only (the schema, env variables and kernelspecs use them).
GPU_MODES = ("auto", "off", "required")
NETWORK_MODES = ("host", "bridge")
PULL_POLICIES = ("missing", "never")

_STR_LIST = {"type": "array", "items": {"type": "string"}}
# Index URLs are written into the Dockerfile and pip.conf: no spaces or line breaks (as for specs' own indexes).
_URL_PATTERN = r"^(https?|file)://\S+$"
_URL = {"type": "string", "pattern": _URL_PATTERN}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "build": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ca_certs": _STR_LIST,
                "pip_index_url": _URL,
                "pip_extra_index_urls": {"type": "array", "items": _URL},
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
                "pool": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "size": {"type": "integer", "minimum": 0, "maximum": 16},
                        "max_containers": {"type": "integer", "minimum": 0, "maximum": 64},
                        "max_memory": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?[kmgKMG]?$"},
                    },
                },
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
            changes["pip_index_url"] = _index_url(flags["pip_index_url"], "--pip-index-url")
        if flags.get("pip_extra_index_url"):
            changes["pip_extra_index_urls"] = tuple(
                _index_url(u, "--pip-extra-index-url") for u in flags["pip_extra_index_url"]
            )
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
    pool: PoolOptions = field(default_factory=lambda: PoolOptions())


@dataclass(frozen=True)
class PoolOptions:
    """The warm kernel pool (kernel/pool.py, docs/pool.md): small by default, capped per process."""

    size: int = 1  # warm containers per environment+directory a kernel started in recently (0: no pool)
    max_containers: int = 4  # all pooled containers of one process together
    max_memory: str = "6g"  # what they may hold together while idle, measured


@dataclass(frozen=True)
class Settings:
    build: BuildOptions
    kernels: KernelOptions
    source: str


def _host_path(value: str | Path, origin: str, what: str) -> Path:
    """value as an absolute host path; a path that cannot even be looked up is a ConfigError, not a traceback."""
    try:
        path = Path(value).expanduser().resolve()
        path.exists()  # raises on a name too long for the file system, which exists() does not swallow
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, unknown ~user, symlink loop, too long
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConfigError(
            f"{origin}: {what} {shown(str(value))} is not a usable path ({reason})", fix="check the path"
        ) from None
    return path


def _ca_path(path: Path, origin: str) -> Path:
    resolved = _host_path(path, origin, "CA certificate path")
    if not resolved.exists():
        raise ConfigError(
            f"{origin}: CA certificate path {shown(str(path))} does not exist",
            fix="give a PEM file or a directory of PEM files",
        )
    return hostfiles.ca_source(resolved, origin)  # a regular file of bounded size (not /dev/zero), or a folder


def _wheelhouse_path(value: str, origin: str) -> Path:
    path = _host_path(value, origin, "wheelhouse")
    if not path.is_dir():
        raise ConfigError(
            f"{origin}: wheelhouse {shown(value)} is not a directory", fix="point it at a directory of .whl files"
        )
    return path


# What Docker accepts as an image reference (name[:tag][@digest]), loosely: enough to keep spaces, newlines,
# quotes and other Dockerfile-breaking text out of the FROM line an override is written into.
_IMAGE_REF = re.compile(r"[a-z0-9][A-Za-z0-9._/:@-]{0,254}")
_OVERRIDE_FIX = "write it like 'python:3.11-slim-bookworm=dockyard-local/python:3.11-bookworm'"


def _check_override(upstream: object, local: object, origin: str) -> None:
    for side, value in (("upstream image", upstream), ("local image", local)):
        if not isinstance(value, str) or not _IMAGE_REF.fullmatch(value):
            raise ConfigError(
                f"{origin}: base override {shown(upstream)}={shown(local)}: the {side} is not an image reference",
                fix=_OVERRIDE_FIX,
            )


def _parse_overrides(text: str, origin: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        upstream, sep, local = item.partition("=")
        if not sep or not upstream or not local:
            raise ConfigError(f"{origin}: base override {shown(item)} is not UPSTREAM=LOCAL", fix=_OVERRIDE_FIX)
        _check_override(upstream, local, origin)
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
    raise ConfigError(f"Environment variable {name}={shown(value)} is not a boolean", fix=f"set {name} to 1 or 0")


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


def _read_config(path: Path) -> dict[str, Any]:
    doc = load_yaml(path, ConfigError, "dockyard config", empty_ok=True)
    err = first_error(CONFIG_SCHEMA, doc)
    if err is not None:
        at = list(err.absolute_path)
        field_name = shown(".".join(map(str, at)), 80)[1:-1] or "top level"
        raise ConfigError(
            f"{where(path, doc.line(at))}: {field_name}: {shown(err.message, 160)[1:-1]}",
            fix="correct the value; the config file format is described in README (section 'Corporate proxies')",
        )
    for upstream, local in doc.data.get("base_overrides", {}).items():
        _check_override(upstream, local, where(path, doc.line(["base_overrides", upstream])))
    data: dict[str, Any] = doc.data
    return data


def _index_url(value: str, origin: str) -> str:
    if not re.fullmatch(_URL_PATTERN, value):
        raise ConfigError(
            f"{origin}: {shown(value)} is not a package index URL",
            fix="give an http(s):// or file:// URL without spaces, e.g. https://pypi.example/simple",
        )
    if hidden := without_credentials(value):
        # The URL reaches the build's RUN line and /etc/pip.conf, so it would ship in every layer and in
        # `docker history`. The classic builder (Docker's default through the SDK) has no build secrets.
        raise ConfigError(
            f"{origin}: the package index URL {shown(hidden, 120)} carries credentials (user:token@), which "
            "would be written into the image's layers and history",
            fix="give the URL without credentials: download the wheels you need into a wheelhouse (build.wheelhouse "
            "/ --wheelhouse), or point at a mirror that needs no login on your network",
        )
    return value


def without_credentials(url: str) -> str | None:
    """url with its user info masked (for messages), when it carries any (user:token@host); else None."""
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    if not sep or "@" not in authority:
        return None
    return f"{scheme}://***@{authority.rpartition('@')[2]}{rest[len(authority) :]}"


def load_settings() -> Settings:
    """Read the config file (if any), then let DOCKYARD_* environment variables override it."""
    cfg_path = _config_path()
    data: dict[str, Any] = {}
    if cfg_path.exists():
        data = _read_config(cfg_path)
    build_cfg = data.get("build", {})
    origin = str(cfg_path)
    ca = [_ca_path(Path(p), origin) for p in build_cfg.get("ca_certs", [])]
    wheelhouse = _wheelhouse_path(build_cfg["wheelhouse"], origin) if build_cfg.get("wheelhouse") else None
    overrides = dict(data.get("base_overrides", {}))
    proxy = {k: v for k, v in build_cfg.get("proxy", {}).items() if v}
    index_url = build_cfg.get("pip_index_url")
    if index_url:
        index_url = _index_url(index_url, f"{origin}: build.pip_index_url")
    extra = [_index_url(u, f"{origin}: build.pip_extra_index_urls") for u in build_cfg.get("pip_extra_index_urls", [])]
    ignore = build_cfg.get("ignore_spec_indexes", False)

    env = os.environ
    if env.get("DOCKYARD_CA_CERTS"):
        ca = [_ca_path(Path(p), "DOCKYARD_CA_CERTS") for p in env["DOCKYARD_CA_CERTS"].split(os.pathsep) if p]
    if env.get("DOCKYARD_WHEELHOUSE"):
        wheelhouse = _wheelhouse_path(env["DOCKYARD_WHEELHOUSE"], "DOCKYARD_WHEELHOUSE")
    if env.get("DOCKYARD_PIP_INDEX_URL"):
        index_url = _index_url(env["DOCKYARD_PIP_INDEX_URL"], "DOCKYARD_PIP_INDEX_URL")
    if env.get("DOCKYARD_PIP_EXTRA_INDEX_URLS"):
        extra = [_index_url(u, "DOCKYARD_PIP_EXTRA_INDEX_URLS") for u in env["DOCKYARD_PIP_EXTRA_INDEX_URLS"].split()]
    if (flag := _env_flag("DOCKYARD_IGNORE_SPEC_INDEXES")) is not None:
        ignore = flag
    pull = env.get("DOCKYARD_PULL") or build_cfg.get("pull", "missing")
    if pull not in PULL_POLICIES:
        raise ConfigError(
            f"DOCKYARD_PULL={shown(pull)} is not a pull policy",
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
        raise ConfigError(f"DOCKYARD_GPU={shown(gpu)} is not a GPU mode", fix=f"use {', '.join(GPU_MODES)}")
    network = env.get("DOCKYARD_KERNEL_NETWORK") or kernels_cfg.get("network", "host")
    if network not in NETWORK_MODES:
        raise ConfigError(
            f"DOCKYARD_KERNEL_NETWORK={shown(network)} is not a network mode", fix=f"use {', '.join(NETWORK_MODES)}"
        )
    root = env.get("DOCKYARD_WORKSPACE_ROOT") or kernels_cfg.get("workspace_root")
    root_origin = (
        "DOCKYARD_WORKSPACE_ROOT" if env.get("DOCKYARD_WORKSPACE_ROOT") else f"{origin}: kernels.workspace_root"
    )
    auto_build = _env_flag("DOCKYARD_AUTO_BUILD")
    pool_cfg = kernels_cfg.get("pool", {})
    pool_size = env.get("DOCKYARD_POOL_SIZE") or pool_cfg.get("size", PoolOptions.size)
    if not re.fullmatch(r"[0-9]{1,2}", str(pool_size)) or int(pool_size) > 16:
        where_set = "DOCKYARD_POOL_SIZE" if env.get("DOCKYARD_POOL_SIZE") else f"{origin}: kernels.pool.size"
        raise ConfigError(
            f"{where_set}={shown(str(pool_size))} is not a pool size",
            fix="use a whole number from 0 (no warm pool) to 16",
        )
    kernels = KernelOptions(
        gpu=gpu,
        network=network,
        workspace_root=hostfiles.mount_source(
            _host_path(root, root_origin, "workspace root"), root_origin, "workspace root"
        )
        if root
        else None,
        auto_build=kernels_cfg.get("auto_build", False) if auto_build is None else auto_build,
        pool=PoolOptions(
            size=int(pool_size),
            max_containers=pool_cfg.get("max_containers", PoolOptions.max_containers),
            max_memory=pool_cfg.get("max_memory", PoolOptions.max_memory),
        ),
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
