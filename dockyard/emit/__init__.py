"""One emitter per consumer: the only code that writes another program's syntax around dockyard's values.

Every value a spec, stack or config file sets reaches a consumer that interprets something: a shell (`$(...)`,
quotes), the Dockerfile parser (line breaks, `$`, JSON arrays), jupyter_client (`${VAR}` in kernel.json env),
the Dev Containers tooling (`${localEnv:...}` anywhere in devcontainer.json), Compose (`$VAR`), YAML (`: `, `#`,
documents), Jinja (`{{ }}`). Generators build their files from these functions only, so a value stays a value:
parsed back by its consumer it is the same string, and it adds no instruction, key, line or expansion. A value a
consumer has no way to carry (a line break in a Dockerfile ENV value, `${` in devcontainer.json) is refused with
one paragraph, never altered.

    shell       POSIX shell words (shlex.quote) and commands
    dockerfile  instructions: JSON exec form, ENV values, shell-form RUN words, comments
    jupyter     kernel.json env values (jupyter_client's string.Template: `$` → `$$`)
    devcontainer_values devcontainer.json strings (no escape exists for `${...}`: refused)
    compose_values Compose values (`$` → `$$`) and documents
    yamldoc     YAML documents through a safe dumper (no anchors, no tags)
    kubernetes  container env values, command and args (the kubelet's `$(NAME)`: `$` → `$$`)
    (Jinja: the Kubernetes pod template is fixed text; its values travel as data in kernel.json, see
    frontends/k8s/podtemplate.py, and the launcher renders it in a sandbox)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import DockyardError, shown


class Unrepresentable(DockyardError):
    """A value the target file format has no way to carry unchanged."""


def refuse(value: str, consumer: str, why: str, fix: str) -> Unrepresentable:
    return Unrepresentable(f"The value {shown(value)} cannot be written into {consumer}: {why}", fix=fix)


@contextlib.contextmanager
def source(path: Path, what: str) -> Iterator[None]:
    """Refusals inside the block name the file the value came from and the file being written."""
    try:
        yield
    except Unrepresentable as exc:
        raise Unrepresentable(f"{path}: {exc.problem} (writing {what})", fix=exc.fix) from None
