"""Every user setting, once: its config-file key, environment variables, flag, kind, default and what it is for.

The config file's schema, the environment reading, the build flags and the table in docs/configuration.md
are all made from OPTIONS, so adding a setting is one line here (plus its test). Precedence, for every
option alike: default < config file < environment < flag. config.py turns the values into Settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hostfiles
from .errors import ConfigError, DockyardError, shown

# The allowed values of the enumerated settings, here only (the schema, env variables and kernelspecs use them).
GPU_MODES = ("auto", "off", "required")
NETWORK_MODES = ("host", "bridge")
PULL_POLICIES = ("missing", "never")

# Index URLs are written into the Dockerfile and pip.conf: no spaces or line breaks (as for specs' own indexes).
URL_PATTERN = r"^(https?|file)://\S+$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?[kmgKMG]?$"
# A registry as image references name it: HOST[:PORT] (the distribution reference grammar's domain), and the
# repository path components after it (lower case, separators inside).
REGISTRY_HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(:[0-9]{1,5})?$"
REPOSITORY_PREFIX_PATTERN = r"^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*){0,8}$"
# What Docker accepts as an image reference (name[:tag][@digest]), loosely: enough to keep spaces, newlines,
# quotes and other Dockerfile-breaking text out of the FROM line an override is written into.
_IMAGE_REF = re.compile(r"[a-z0-9][A-Za-z0-9._/:@-]{0,254}")
OVERRIDE_FIX = "write it like 'python:3.11-slim-bookworm=dockyard-local/python:3.11-bookworm'"


# --- checks shared by files, variables and flags -----------------------------------------------------


def host_path(value: str | Path, origin: str, what: str) -> Path:
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


def ca_path(value: str | Path, origin: str) -> Path:
    resolved = host_path(value, origin, "CA certificate path")
    if not resolved.exists():
        raise ConfigError(
            f"{origin}: CA certificate path {shown(str(value))} does not exist",
            fix="give a PEM file or a directory of PEM files",
        )
    return hostfiles.ca_source(resolved, origin)  # a regular file of bounded size (not /dev/zero), or a folder


def ca_file(value: str, origin: str) -> Path:
    """One PEM file (the registry's CA: requests verifies against a file)."""
    path = ca_path(value, origin)
    if not path.is_file():
        raise ConfigError(f"{origin}: {shown(value)} is not a file", fix="give the CA certificate's PEM file")
    return path


def _matching(pattern: str, what: str, fix: str) -> Callable[[str, str], str]:
    """A check of (value, origin) against pattern: the value, or one paragraph naming what it is not."""

    def check(value: str, origin: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"{origin}: {shown(value)} is not a {what}", fix=fix)
        return value

    return check


registry_host = _matching(
    REGISTRY_HOST_PATTERN,
    "registry host",
    "give HOST or HOST:PORT without scheme or path, e.g. registry.example.com:5000 (the path goes into "
    "registry.prefix)",
)
repository_prefix = _matching(
    REPOSITORY_PREFIX_PATTERN,
    "repository path",
    "give lower-case path components separated by '/', e.g. team/ml (no leading or trailing '/')",
)


def wheelhouse_path(value: str, origin: str) -> Path:
    path = host_path(value, origin, "wheelhouse")
    if not path.is_dir():
        raise ConfigError(
            f"{origin}: wheelhouse {shown(value)} is not a directory", fix="point it at a directory of .whl files"
        )
    return path


def index_url(value: str, origin: str) -> str:
    if not re.fullmatch(URL_PATTERN, value):
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


def workspace_path(value: str, origin: str) -> Path:
    """A directory every kernel mounts: not /, a system directory or one holding the engine socket."""
    return hostfiles.mount_source(host_path(value, origin, "workspace root"), origin, "workspace root")


def check_override(upstream: object, local: object, origin: str) -> None:
    for side, value in (("upstream image", upstream), ("local image", local)):
        if not isinstance(value, str) or not _IMAGE_REF.fullmatch(value):
            raise ConfigError(
                f"{origin}: base override {shown(upstream)}={shown(local)}: the {side} is not an image reference",
                fix=OVERRIDE_FIX,
            )


def parse_overrides(text: str, origin: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        upstream, sep, local = item.partition("=")
        if not sep or not upstream or not local:
            raise ConfigError(f"{origin}: base override {shown(item)} is not UPSTREAM=LOCAL", fix=OVERRIDE_FIX)
        check_override(upstream, local, origin)
        out[upstream] = local
    return out


# --- kinds: how one option's value is checked and read ---------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How an option's value is written in the config file (schema), read from a variable and from the file."""

    schema: dict[str, Any]
    from_env: Callable[[str, str], Any]  # (text, variable name) → value
    from_file: Callable[[Any, str], Any] = lambda value, _origin: value  # (schema-valid value, origin) → value
    merge: bool = False  # the variable adds to the file's mapping instead of replacing it
    sep: str = ""  # how a variable lists several values (a repeated flag's values are joined with it)

    @staticmethod
    def text() -> Kind:
        return Kind({"type": "string"}, lambda text, _name: text)

    @staticmethod
    def url() -> Kind:
        return Kind({"type": "string", "pattern": URL_PATTERN}, index_url, index_url)

    @staticmethod
    def urls() -> Kind:
        return Kind(
            {"type": "array", "items": {"type": "string", "pattern": URL_PATTERN}},
            lambda text, name: tuple(index_url(u, name) for u in text.split()),
            lambda value, origin: tuple(index_url(u, origin) for u in value),
            sep=" ",
        )

    @staticmethod
    def ca_paths() -> Kind:
        return Kind(
            {"type": "array", "items": {"type": "string"}},
            lambda text, name: tuple(ca_path(p, name) for p in text.split(os.pathsep) if p),
            lambda value, origin: tuple(ca_path(p, origin) for p in value),
            sep=os.pathsep,
        )

    @staticmethod
    def directory(check: Callable[[str, str], Path]) -> Kind:
        return Kind({"type": "string"}, check, lambda value, origin: check(value, origin) if value else None)

    @staticmethod
    def flag() -> Kind:
        return Kind({"type": "boolean"}, _boolean)

    @staticmethod
    def choice(values: tuple[str, ...], what: str, fix: str = "") -> Kind:
        def read(text: str, name: str) -> str:
            if text not in values:
                raise ConfigError(f"{name}={shown(text)} is not a {what}", fix=fix or f"use {', '.join(values)}")
            return text

        return Kind({"enum": list(values)}, read)

    @staticmethod
    def count(most: int, what: str, fix: str) -> Kind:
        def read(text: str, name: str) -> int:
            if not re.fullmatch(r"[0-9]{1,2}", text) or int(text) > most:
                raise ConfigError(f"{name}={shown(text)} is not a {what}", fix=fix)
            return int(text)

        return Kind({"type": "integer", "minimum": 0, "maximum": most}, read)

    @staticmethod
    def seconds() -> Kind:
        """A duration in whole seconds (0: off), up to a week."""
        most = 7 * 86400

        def read(text: str, name: str) -> int:
            if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) > most:
                raise ConfigError(
                    f"{name}={shown(text)} is not a number of seconds", fix=f"use a whole number from 0 (off) to {most}"
                )
            return int(text)

        return Kind({"type": "integer", "minimum": 0, "maximum": most}, read)

    @staticmethod
    def gpu_choice() -> Kind:
        """A GPU choice (gpu/choice.py: all, any-free, 2, device:0,2, shared@0.25, ...), checked when read."""

        def read(text: str, origin: str) -> str:
            from .gpu.choice import parse  # the docker SDK's types: only when the setting is given

            try:
                parse(text, origin)
            except DockyardError as exc:
                raise ConfigError(exc.problem, fix=exc.fix) from None
            return text

        return Kind({"type": "string"}, read, read)

    @staticmethod
    def size() -> Kind:
        return Kind({"type": "string", "pattern": SIZE_PATTERN}, lambda text, _name: text)

    @staticmethod
    def registry_host() -> Kind:
        return Kind({"type": "string", "pattern": REGISTRY_HOST_PATTERN}, registry_host, registry_host)

    @staticmethod
    def repository_prefix() -> Kind:
        return Kind({"type": "string", "pattern": REPOSITORY_PREFIX_PATTERN}, repository_prefix, repository_prefix)

    @staticmethod
    def pem_file() -> Kind:
        def read(value: str, origin: str) -> Path | None:
            return ca_file(value, origin) if value else None

        return Kind({"type": "string"}, read, read)

    @staticmethod
    def overrides() -> Kind:
        def from_file(value: Mapping[str, str], origin: str) -> dict[str, str]:
            for upstream, local in value.items():
                check_override(upstream, local, origin)
            return dict(value)

        return Kind(
            {"type": "object", "additionalProperties": {"type": "string"}}, parse_overrides, from_file, True, ","
        )


def _boolean(text: str, name: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"Environment variable {name}={shown(text)} is not a boolean", fix=f"set {name} to 1 or 0")


@dataclass(frozen=True)
class Flag:
    """A build flag (cli/shared.add_build_flags): its name, argument, help; `const` for one without argument."""

    name: str
    help: str
    metavar: str = ""  # "": a switch, whose value is const
    const: str = "1"
    repeat: bool = False

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")

    def text(self, given: Any) -> str | None:
        """The flag's value as the variable would be written, or None when not given."""
        if given in (None, False, []):
            return None
        if not self.metavar:
            return self.const
        return given if isinstance(given, str) else None

    def shown(self) -> str:
        return f"{self.name} {self.metavar}".strip() + (" (repeatable)" if self.repeat else "")


# --- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    key: str  # config file key, dotted ("build.pip_index_url"); "" for an environment-only setting
    env: tuple[str, ...]  # environment variables, the first one set (non-empty) wins
    kind: Kind
    default: Any
    doc: str  # what it is for (docs/configuration.md)
    flag: Flag | None = None  # the command-line flag of a build setting (cli/shared.add_build_flags)
    example: str = ""  # how the variable is written, when a bare name does not say it

    @property
    def name(self) -> str:
        return self.key or self.env[0]

    def from_flag(self, given: Any) -> Any:
        """The flag's value (argparse's: a string, a list for a repeated flag, True for a switch), or None."""
        assert self.flag is not None
        text = self.kind.sep.join(given) if self.flag.repeat and given else self.flag.text(given)
        return None if text is None else self.kind.from_env(text, self.flag.name)

    def from_env(self, environ: Mapping[str, str]) -> tuple[Any, str] | None:
        """(value, variable) from the first variable set, or None."""
        for name in self.env:
            text = environ.get(name)
            if text:
                return self.kind.from_env(text, name), name
        return None


_SITE = "build"
OPTIONS: tuple[Option, ...] = (
    Option(
        "build.ca_certs",
        ("DOCKYARD_CA_CERTS",),
        Kind.ca_paths(),
        (),
        "trust a proxy's CA (installed in the image's trust store; `pip`, `requests`, `curl` and `ssl` use it)",
        flag=Flag("--ca-cert", "extra CA certificate file or directory to trust in the image", "PATH", repeat=True),
        example="DOCKYARD_CA_CERTS=a.pem:b.pem",
    ),
    Option(
        "build.pip_index_url",
        ("DOCKYARD_PIP_INDEX_URL",),
        Kind.url(),
        None,
        "a package index mirror (also written to the image's `/etc/pip.conf`)",
        flag=Flag("--pip-index-url", "package index to use instead of PyPI", "URL"),
    ),
    Option(
        "build.pip_extra_index_urls",
        ("DOCKYARD_PIP_EXTRA_INDEX_URLS",),
        Kind.urls(),
        (),
        "more indexes",
        flag=Flag("--pip-extra-index-url", "additional package index", "URL", repeat=True),
        example='DOCKYARD_PIP_EXTRA_INDEX_URLS="u1 u2"',
    ),
    Option(
        "build.wheelhouse",
        ("DOCKYARD_WHEELHOUSE",),
        Kind.directory(wheelhouse_path),
        None,
        "a local wheelhouse (wheels for the packages a spec pins are used first)",
        flag=Flag("--wheelhouse", "local directory of wheels to install from", "DIR"),
    ),
    Option(
        "build.ignore_spec_indexes",
        ("DOCKYARD_IGNORE_SPEC_INDEXES",),
        Kind.flag(),
        False,
        "ignore indexes named in specs (your mirror has everything)",
        flag=Flag("--ignore-spec-indexes", "ignore package indexes named in specs (your mirror has everything)"),
        example="DOCKYARD_IGNORE_SPEC_INDEXES=1",
    ),
    Option("build.proxy.http", ("HTTP_PROXY", "http_proxy"), Kind.text(), None, "the proxy for http:// URLs"),
    Option("build.proxy.https", ("HTTPS_PROXY", "https_proxy"), Kind.text(), None, "the proxy for https:// URLs"),
    Option("build.proxy.no_proxy", ("NO_PROXY", "no_proxy"), Kind.text(), None, "hosts reached without the proxy"),
    Option(
        "build.pull",
        ("DOCKYARD_PULL",),
        Kind.choice(PULL_POLICIES, "pull policy", "use missing (pull absent base images) or never (offline)"),
        "missing",
        "never contact a registry (offline): `never` makes a missing base image an error",
        flag=Flag("--no-pull", "never contact a registry: a missing base image is an error", const="never"),
        example="DOCKYARD_PULL=never",
    ),
    Option(
        "base_overrides",
        ("DOCKYARD_BASE_OVERRIDES",),
        Kind.overrides(),
        {},
        "no registry: use local images for upstream bases, specs unchanged (the variable adds to the file's)",
        flag=Flag("--base-override", "use a local image instead of an upstream base", "UPSTREAM=LOCAL", repeat=True),
        example='DOCKYARD_BASE_OVERRIDES="a=b,c=d"',
    ),
    Option(
        "registry.host",
        ("DOCKYARD_REGISTRY",),
        Kind.registry_host(),
        None,
        "the registry teammates share images through (`dockyard push`/`pull`, docs/registry.md); credentials come "
        "from Docker's own config and credential store (`docker login HOST`)",
        example="DOCKYARD_REGISTRY=registry.example.com:5000",
    ),
    Option(
        "registry.prefix",
        ("DOCKYARD_REGISTRY_PREFIX",),
        Kind.repository_prefix(),
        None,
        "repository path in that registry before `dockyard/ENV` (e.g. `team/ml`)",
    ),
    Option(
        "registry.ca_cert",
        ("DOCKYARD_REGISTRY_CA_CERT",),
        Kind.pem_file(),
        None,
        "the site CA the registry's TLS certificate is signed by (dockyard checks the registry with it; the engine "
        "trusts it from `/etc/docker/certs.d/HOST/ca.crt`)",
    ),
    Option(
        "registry.pull_first",
        ("DOCKYARD_PULL_FIRST",),
        Kind.flag(),
        False,
        "`dockyard build` (and the panel) pull the content tag from the registry before building "
        "(`build --pull-first`)",
        example="DOCKYARD_PULL_FIRST=1",
    ),
    Option(
        "kernels.gpu",
        ("DOCKYARD_GPU",),
        Kind.choice(GPU_MODES, "GPU mode"),
        "auto",
        "GPUs for kernels: `auto` (when the spec wants one and the engine gives one), `off`, `required`",
    ),
    Option(
        "kernels.gpus",
        ("DOCKYARD_GPUS",),
        Kind.gpu_choice(),
        "all",
        "which GPUs a GPU kernel gets: `all`, `any-free`, a count, `device:0,2`, UUIDs, `shared[:DEVICE][@SHARE]`; "
        "all but `all` take a lease (docs/gpu.md, Choosing and sharing)",
        example="DOCKYARD_GPUS=any-free",
    ),
    Option(
        "kernels.gpu_wait",
        ("DOCKYARD_GPU_WAIT",),
        Kind.seconds(),
        0,
        "seconds a kernel start waits in the GPU queue when its GPUs are held (0: refuse at once, naming the holders)",
        example="DOCKYARD_GPU_WAIT=600",
    ),
    Option(
        "kernels.network",
        ("DOCKYARD_KERNEL_NETWORK",),
        Kind.choice(NETWORK_MODES, "network mode"),
        "host",
        "kernel networking: `host` (Linux), or `bridge` with ports published on 127.0.0.1 (Docker Desktop)",
    ),
    Option(
        "kernels.workspace_root",
        ("DOCKYARD_WORKSPACE_ROOT",),
        Kind.directory(workspace_path),
        None,
        "mount this directory (a whole project tree) instead of the notebook's own directory",
    ),
    Option(
        "kernels.auto_build",
        ("DOCKYARD_AUTO_BUILD",),
        Kind.flag(),
        False,
        "a kernel start builds its image when it is not built (else it says which command to run)",
        example="DOCKYARD_AUTO_BUILD=1",
    ),
    Option(
        "kernels.pool.size",
        ("DOCKYARD_POOL_SIZE",),
        Kind.count(16, "pool size", "use a whole number from 0 (no warm pool) to 16"),
        1,
        "warm containers per environment and directory a kernel started in recently (0: no pool; docs/pool.md)",
    ),
    Option(
        "kernels.pool.max_containers",
        (),
        Kind.count(64, "container count", "use a whole number from 0 to 64"),
        4,
        "all pooled containers of one Jupyter server together",
    ),
    Option(
        "kernels.pool.max_memory",
        (),
        Kind.size(),
        "6g",
        "what the pooled containers may hold together while idle, measured",
    ),
    Option(
        "kernels.cull.idle_timeout",
        ("DOCKYARD_CULL_IDLE_TIMEOUT",),
        Kind.seconds(),
        0,
        "shut down a dockyard kernel idle this many seconds (0: never); Jupyter's own culler, see docs/resources.md",
        example="DOCKYARD_CULL_IDLE_TIMEOUT=3600",
    ),
    Option(
        "kernels.cull.gpu_idle_timeout",
        ("DOCKYARD_CULL_GPU_IDLE_TIMEOUT",),
        Kind.seconds(),
        0,
        "the same for a kernel holding GPU memory, usually shorter (0: as `kernels.cull.idle_timeout`)",
        example="DOCKYARD_CULL_GPU_IDLE_TIMEOUT=900",
    ),
    Option(
        "kernels.cull.busy",
        ("DOCKYARD_CULL_BUSY",),
        Kind.flag(),
        False,
        "a kernel running a cell counts as idle too (Jupyter's `cull_busy`)",
    ),
    Option(
        "kernels.cull.connected",
        ("DOCKYARD_CULL_CONNECTED",),
        Kind.flag(),
        False,
        "a kernel with an open notebook counts as idle too (Jupyter's `cull_connected`)",
    ),
    Option(
        "kernels.cull.interval",
        ("DOCKYARD_CULL_INTERVAL",),
        Kind.seconds(),
        60,
        "seconds between the culler's checks (Jupyter's `cull_interval`)",
    ),
    Option(
        "",
        ("DOCKYARD_ENVS_PATH",),
        Kind.text(),
        None,
        "more directories of environment specs, searched before the checkout's `envs/` (`:`-separated)",
        example="DOCKYARD_ENVS_PATH=~/my-envs:/opt/team-envs",
    ),
    Option(
        "",
        ("DOCKYARD_STACKS_PATH",),
        Kind.text(),
        None,
        "more directories of stacks (`NAME/stack.yaml`), searched before the checkout's `stacks/` (`:`-separated)",
    ),
    Option(
        "",
        ("DOCKYARD_CONFIG",),
        Kind.text(),
        None,
        "the config file itself (default `~/.config/dockyard/config.yaml`, or under `$XDG_CONFIG_HOME`)",
    ),
)

BY_KEY = {o.key: o for o in OPTIONS if o.key}
FLAGGED = tuple(o for o in OPTIONS if o.flag is not None)


def schema() -> dict[str, Any]:
    """The config file's JSON schema, made from the table: nested mappings, no unknown keys."""
    root: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    for option in BY_KEY.values():
        node = root
        *parents, leaf = option.key.split(".")
        for part in parents:
            node = node["properties"].setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}}
            )
        node["properties"][leaf] = option.kind.schema
    return root


def lookup(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in the config file's data."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def markdown_table() -> str:
    """The settings table of docs/configuration.md (a test compares the file with this)."""
    rows = ["| setting | config file | environment | flag | default |", "| --- | --- | --- | --- | --- |"]
    for o in OPTIONS:
        env = o.example or ", ".join(o.env)
        default = "" if o.default in (None, (), {}) else f"`{str(o.default).lower()}`"
        flag = f"`{o.flag.shown()}`" if o.flag else ""
        cells = [o.doc, f"`{o.key}`" if o.key else "", f"`{env}`" if env else "", flag, default]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # the table for docs/configuration.md
    print(markdown_table(), end="")
