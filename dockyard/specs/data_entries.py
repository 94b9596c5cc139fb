"""A spec's `mounts:` and `secrets:` entries → MountEntry / SecretEntry, checked as far as a spec alone can tell.

Host paths keep their `~` and `$VAR` until a kernel starts (kernel/data_mounts.py expands them on the server's
host); container paths are checked here: absolute, plain, and clear of what dockyard itself puts in a kernel
container (the venv and kit, the private home, the run and secrets directories) and of system directories.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, shown

# What dockyard's images and kernel containers use (images/render.py VENV and KIT, kernel/container.py HOME and
# RUN_DIR, kernel/kernel_secrets.py SECRETS_DIR): a mount there would replace the kernel's Python or its files.
RESERVED_TARGETS = ("/opt/dockyard", "/home/dockyard-user", "/run/dockyard", "/run/secrets")
# Inside the container these hold the image itself (or the kernel's view of the machine): never a mount target.
SYSTEM_TARGETS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
    "/var/run", "/var/lib",
)  # fmt: skip
TOP_LEVEL_TARGETS = ("/", "/home", "/opt", "/var", "/root", "/srv", "/mnt", "/media")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
CACHE_FIX = "a cache needs a target, e.g. {cache: huggingface, target: /cache/huggingface}"


@dataclass(frozen=True)
class MountEntry:
    """One `mounts:` entry: a host source (unexpanded) or a named cache, where it goes, how."""

    source: str | None  # as written: ~ and $VAR expanded at kernel start
    cache: str | None  # a named cache of the environment (a dockyard-owned folder on the host)
    target: str | None  # None: the expanded source's own path
    read_only: bool = False
    create: bool = False
    origin: str = field(default="", compare=False)  # file:line of the entry, for messages at kernel start

    @property
    def label(self) -> str:
        return f"cache {self.cache}" if self.cache else str(self.source)


@dataclass(frozen=True)
class SecretEntry:
    """One `secrets:` entry: a name, where its value comes from on the host, and an optional variable."""

    name: str
    source: tuple[str, ...]  # ("file", path) | ("env", NAME) | ("keyring", service, username)
    env: str | None = None
    required: bool = False
    origin: str = field(default="", compare=False)

    @property
    def described(self) -> str:
        """Where the value comes from, for the panel and messages (never the value)."""
        kind = self.source[0]
        if kind == "file":
            return f"file {self.source[1]}"
        if kind == "env":
            return f"the server's variable {self.source[1]}"
        return f"the keyring (service {self.source[1]}, user {self.source[2]})"


def variables(text: str) -> list[str]:
    """The $NAME / ${NAME} a host path names (expanded on the host when a kernel starts)."""
    return [m.group(1) or m.group(2) for m in _VARIABLE.finditer(text)]


def host_path_parts(text: str) -> list[tuple[str, str]]:
    """[("text", literal) | ("var", NAME)]: a leading `~` is the variable HOME (the front ends' generators write
    each in their own expansion syntax)."""
    parts: list[tuple[str, str]] = []
    if text == "~" or text.startswith("~/"):
        parts.append(("var", "HOME"))
        text = text[1:]
    at = 0
    for m in _VARIABLE.finditer(text):
        if m.start() > at:
            parts.append(("text", text[at : m.start()]))
        parts.append(("var", m.group(1) or m.group(2)))
        at = m.end()
    if at < len(text):
        parts.append(("text", text[at:]))
    return parts


def check_host_path(text: str, where: str, field: str) -> None:
    """Absolute, ~/..., or starting with a variable; any '$' is a plain $NAME or ${NAME} (no shell syntax)."""
    if "$" in _VARIABLE.sub("", text):
        raise SpecError(
            f"{where}: {field} is {shown(text)}, whose '$' is not a plain $NAME or ${{NAME}}",
            fix="write variables as $NAME or ${NAME} (no defaults, no commands); they are read on the host",
        )
    if not (text.startswith(("/", "~/", "$")) or text == "~"):
        raise SpecError(
            f"{where}: {field} is {shown(text)}, a relative path (relative to what: the server's directory, the "
            "notebook's?)",
            fix="write an absolute path, ~/... or $VAR/... (e.g. ~/datasets/imagenet or $DATA_ROOT/imagenet)",
        )


def target_refusal(target: str) -> str | None:
    """Why a container path cannot be a mount target (None: it can)."""
    if posixpath.normpath(target) != (target.rstrip("/") or "/") or "//" in target:
        return "it is not a plain absolute path (no '.', '..' or '//' parts)"
    t = target.rstrip("/") or "/"
    for reserved in RESERVED_TARGETS:
        if t == reserved or t.startswith(f"{reserved}/") or reserved.startswith(f"{t}/"):
            return f"it overlaps {reserved}, which dockyard's kernel container itself uses"
    if t in TOP_LEVEL_TARGETS or any(t == d or t.startswith(f"{d}/") for d in SYSTEM_TARGETS):
        return "it is a system directory of the image (the mount would replace it)"
    return None


def check_target(target: str, where: str) -> None:
    reason = target_refusal(target)
    if reason:
        raise SpecError(
            f"{where}: mount target {shown(target)} cannot be used: {reason}",
            fix="mount at a folder of its own such as /data/NAME or /cache/NAME (set HF_HOME, TORCH_HOME... to it)",
        )


def mount_entries(items: Sequence[Mapping[str, Any]], line: Any, path: str) -> tuple[MountEntry, ...]:
    """The `mounts:` list; line(i) is the file:line of entry i."""
    out: list[MountEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = line(i)
        source, cache, target = item.get("source"), item.get("cache"), item.get("target")
        if (source is None) == (cache is None):
            raise SpecError(
                f"{where}: {path}[{i}] must name exactly one of 'source' (a host folder) or 'cache' (a named cache)",
                fix="e.g. {source: ~/datasets, target: /data, read_only: true} or "
                "{cache: huggingface, target: /cache/huggingface}",
            )
        if source is not None:
            check_host_path(source, where, f"{path}[{i}].source")
        if cache is not None and target is None:
            raise SpecError(f"{where}: {path}[{i}] (cache {cache}) has no target", fix=CACHE_FIX)
        if cache is not None and item.get("create") is not None:
            raise SpecError(
                f"{where}: {path}[{i}] is a cache, which is always created: 'create' does not apply",
                fix="remove 'create'",
            )
        if target is not None:
            check_target(target, where)
            key = target.rstrip("/")
            if key in seen:
                problem = f"{where}: {path}[{i}] mounts at {shown(target)} again"
                raise SpecError(problem, fix="keep one mount per target")
            seen[key] = i
        out.append(
            MountEntry(source, cache, target, bool(item.get("read_only")), bool(item.get("create")), origin=where)
        )
    return tuple(out)


def secret_entries(items: Sequence[Mapping[str, Any]], line: Any, path: str) -> tuple[SecretEntry, ...]:
    out: list[SecretEntry] = []
    names: set[str] = set()
    variables_set: set[str] = set()
    for i, item in enumerate(items):
        where = line(i)
        sources = [k for k in ("from_file", "from_env", "from_keyring") if k in item]
        if len(sources) != 1:
            raise SpecError(
                f"{where}: {path}[{i}] ({shown(item['name'])}) must name exactly one of from_file, from_env, "
                "from_keyring",
                fix="e.g. {name: hf_token, from_file: ~/.config/huggingface/token, env: HF_TOKEN}",
            )
        name = item["name"]
        if name in names:
            raise SpecError(f"{where}: secret {shown(name)} is declared twice", fix="keep one entry per name")
        names.add(name)
        if (var := item.get("env")) is not None:
            if var in variables_set:
                raise SpecError(f"{where}: two secrets set the variable {var}", fix="give each secret its own env name")
            variables_set.add(var)
        kind = sources[0]
        source: tuple[str, ...]
        if kind == "from_file":
            check_host_path(item[kind], where, f"{path}[{i}].from_file")
            source = ("file", item[kind])
        elif kind == "from_env":
            source = ("env", item[kind])
        else:
            source = ("keyring", item[kind]["service"], item[kind]["username"])
        out.append(SecretEntry(name, source, item.get("env"), bool(item.get("required")), origin=where))
    return tuple(out)
