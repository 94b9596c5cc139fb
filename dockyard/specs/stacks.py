"""Stack files: stacks/NAME/stack.yaml → schema check → cross-field checks → Stack.

A stack describes cooperating services (the seed's example: a data store and a PyTorch trainer) in a few
lines; `frontends/compose.py` turns it into a Compose file. It is read like an environment spec: YAML with
line numbers, the JSON Schema in stack.schema.json, and every error one paragraph with file, line and fix.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import DockyardError, StackError
from .loader import dotted, resolve, schema_error
from .validation import first_error
from .yamlsource import KeyPath, YamlDocument, load_yaml, where

STACK_FILE = "stack.yaml"
# Placeholders in a stack's client variables: a published port's host side, a generated secret.
PLACEHOLDER = re.compile(r"\{(port:([a-z][a-z0-9-]*):(\d{1,5})|secret:([a-z][a-z0-9_]*))\}")
FORMAT_DOC = "docs/compose.md, 'The stack file'"
_HINTS = {
    "name": "lower-case letters, digits and dashes, starting with a letter (e.g. 'pipeline')",
    "env": "an environment reference such as 'pytorch' or 'pytorch:cpu'",
    "base": "an image reference such as 'python:3.11-slim-bookworm'",
    "volumes": "an absolute path in the container such as '/var/lib/postgresql/data' (no ':', spaces or line "
    "breaks: a named volume is mounted there, never a host path)",
    "description": "printable text, without control, bidi-override or zero-width characters",
    "secrets": "lower-case letters, digits and underscores (e.g. 'db_password')",
    "propertyNames": (
        "service names are lower-case letters, digits and dashes; environment variable names are letters, digits "
        "and underscores"
    ),
}


@dataclass(frozen=True)
class StackService:
    name: str
    env: str | None  # "pytorch:cpu": runs on that environment's image
    build_context: Path | None  # else: a folder with a Dockerfile
    build_base: str | None
    command: tuple[str, ...] | None
    user: str | None
    files: Path | None  # mounted read-only at /stack
    environment: dict[str, str]
    secrets: dict[str, str]  # ENV_VARIABLE → secret name
    volumes: dict[str, str]  # volume → mount path
    publish: tuple[int, ...]  # container ports published on 127.0.0.1
    healthcheck: tuple[str, ...] | None
    depends_on: tuple[str, ...]
    once: bool


@dataclass(frozen=True)
class StackCheck:
    name: str
    command: tuple[str, ...]
    equals: float | None
    min: float | None
    max: float | None

    def judge(self, value: float) -> bool:
        if self.equals is not None and value != self.equals:
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)

    @property
    def expectation(self) -> str:
        parts = []
        if self.equals is not None:
            parts.append(f"= {self.equals:g}")
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Stack:
    path: Path
    name: str
    description: str
    services: dict[str, StackService]
    volumes: tuple[str, ...]
    secrets: tuple[str, ...]
    client: dict[str, str]  # what `dockyard compose env` prints, placeholders unfilled
    verify_service: str | None
    checks: tuple[StackCheck, ...]

    @property
    def dir(self) -> Path:
        return self.path.parent


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(__file__).with_name("stack.schema.json").read_text())
    return loaded


def stack_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in paths.stacks_dirs():
        for path in sorted(directory.glob(f"*/{STACK_FILE}")):
            found.setdefault(path.parent.name, path)
    return found


def load_stack(name_or_path: str | Path) -> Stack:
    """A stack by name (stacks/NAME/stack.yaml on the search path) or by the path of its file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        files = stack_files()
        if str(name_or_path) not in files:
            close = difflib.get_close_matches(str(name_or_path), files, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            searched = ", ".join(str(d) for d in paths.stacks_dirs()) or "(no stacks directory found)"
            raise StackError(
                f"No stack named '{name_or_path}' (searched {searched}; known: {', '.join(files) or 'none'})",
                fix=f"{hint}add stacks/{name_or_path}/{STACK_FILE}, or set DOCKYARD_STACKS_PATH",
            )
        path = files[str(name_or_path)]
    doc = load_yaml(path, StackError, "stack file")
    err = first_error(schema(), doc)
    if err is not None:
        raise schema_error(doc, err, StackError, FORMAT_DOC, _HINTS)
    return _to_stack(doc)


def load_all_stacks() -> list[Stack]:
    return [load_stack(p) for p in stack_files().values()]


def _fail(doc: YamlDocument, at: KeyPath, problem: str, fix: str) -> StackError:
    return StackError(f"{where(doc.path, doc.line(at))}: {problem}", fix=fix)


def _folder(doc: YamlDocument, at: KeyPath, rel: str, needs: str | None = None) -> Path:
    folder = (doc.path.parent / rel).resolve()
    if not folder.is_dir() or doc.path.parent.resolve() not in (folder, *folder.parents):
        raise _fail(
            doc,
            at,
            f"{dotted(list(at))} is {json.dumps(rel)}, which is not a folder inside {doc.path.parent}",
            fix="name a folder beside the stack file (relative to it)",
        )
    if needs and not (folder / needs).is_file():
        raise _fail(doc, at, f"{folder} has no {needs}", fix=f"add {folder / needs}")
    return folder


def _to_stack(doc: YamlDocument) -> Stack:
    data = doc.data
    if data["name"] != doc.path.parent.name:
        raise _fail(
            doc,
            ("name",),
            f"name is '{data['name']}' but the stack's folder is {doc.path.parent.name}",
            fix=f"rename the folder to {data['name']} or set name: {doc.path.parent.name}",
        )
    if data["name"].startswith("lab-"):
        raise _fail(
            doc,
            ("name",),
            f"stack name '{data['name']}' starts with 'lab-', which names JupyterLab targets",
            fix="choose a name that does not start with 'lab-' (and rename the folder)",
        )
    volumes = tuple(data.get("volumes", []))
    secrets = tuple(data.get("secrets", []))
    names = list(data["services"])
    services: dict[str, StackService] = {}
    for name, s in data["services"].items():
        at: KeyPath = ("services", name)
        if ("env" in s) == ("build" in s):
            raise _fail(
                doc,
                at,
                f"service '{name}' must have exactly one of 'env' (a dockyard environment) and 'build' (a folder with "
                "a Dockerfile)",
                fix="keep one of the two",
            )
        if "env" in s:
            try:
                resolve(s["env"])
            except DockyardError as exc:
                raise _fail(doc, (*at, "env"), f"services.{name}.env: {exc.problem}", fix=exc.fix or "") from None
        for vol in s.get("volumes", {}):
            if vol not in volumes:
                raise _fail(
                    doc,
                    (*at, "volumes", vol),
                    f"service '{name}' mounts volume '{vol}', which the stack does not declare",
                    fix=f"add '{vol}' to the top-level volumes list",
                )
        for var, secret in s.get("secrets", {}).items():
            if secret not in secrets:
                raise _fail(
                    doc,
                    (*at, "secrets", var),
                    f"service '{name}' reads secret '{secret}', which the stack does not declare",
                    fix=f"add '{secret}' to the top-level secrets list",
                )
        for i, dep in enumerate(s.get("depends_on", [])):
            if dep not in names or dep == name:
                close = difflib.get_close_matches(dep, [n for n in names if n != name], n=1)
                raise _fail(
                    doc,
                    (*at, "depends_on", i),
                    f"service '{name}' depends on '{dep}', which is not another service of this stack",
                    fix=(f"did you mean '{close[0]}'? " if close else "") + f"use one of: {', '.join(names)}",
                )
        build = s.get("build")
        services[name] = StackService(
            name=name,
            env=s.get("env"),
            build_context=_folder(doc, (*at, "build", "context"), build["context"], "Dockerfile") if build else None,
            build_base=build.get("base") if build else None,
            command=tuple(s["command"]) if "command" in s else None,
            user=s.get("user"),
            files=_folder(doc, (*at, "files"), s["files"]) if "files" in s else None,
            environment=dict(s.get("environment", {})),
            secrets=dict(s.get("secrets", {})),
            volumes=dict(s.get("volumes", {})),
            publish=tuple(s.get("publish", [])),
            healthcheck=tuple(s["healthcheck"]) if "healthcheck" in s else None,
            depends_on=tuple(s.get("depends_on", [])),
            once=bool(s.get("once", False)),
        )
    for var, value in data.get("client", {}).items():
        for m in PLACEHOLDER.finditer(value):
            service, port, secret = m.group(2), m.group(3), m.group(4)
            if secret is not None and secret not in secrets:
                raise _fail(
                    doc,
                    ("client", var),
                    f"client.{var} uses secret '{secret}', which the stack does not declare",
                    fix=f"add '{secret}' to the top-level secrets list",
                )
            if service is not None and (service not in services or int(port) not in services[service].publish):
                raise _fail(
                    doc,
                    ("client", var),
                    f"client.{var} uses port {port} of service '{service}', which the stack does not publish",
                    fix=f"add 'publish: [{port}]' to service '{service}' (or correct the placeholder)",
                )
    checks: list[StackCheck] = []
    verify = data.get("verify")
    if verify:
        if verify["service"] not in services:
            raise _fail(
                doc,
                ("verify", "service"),
                f"verify.service is '{verify['service']}', which is not a service of this stack",
                fix=f"use one of: {', '.join(names)}",
            )
        for i, c in enumerate(verify["checks"]):
            if not {"equals", "min", "max"} & set(c):
                raise _fail(
                    doc,
                    ("verify", "checks", i),
                    f"check '{c['name']}' states no expectation",
                    fix="add equals, min or max (the command's output is read as a number)",
                )
            checks.append(StackCheck(c["name"], tuple(c["command"]), c.get("equals"), c.get("min"), c.get("max")))
    return Stack(
        path=doc.path,
        name=data["name"],
        description=data["description"],
        services=services,
        volumes=volumes,
        secrets=secrets,
        client=dict(data.get("client", {})),
        verify_service=verify["service"] if verify else None,
        checks=tuple(checks),
    )
