"""devcontainer.json strings.

The Dev Containers tooling replaces `${...}` in every string of the file (`${localEnv:HOME}`,
`${localWorkspaceFolder}`, ...; @devcontainers/cli variableSubstitution.ts, regex `\\$\\{(.*?)\\}`) and has no
escape for it, so a value holding `${` cannot be written without becoming an expansion: it is refused. `$`
without `{` passes unchanged. JSON itself (json.dumps) escapes quotes, backslashes and control characters.
"""

from __future__ import annotations

from typing import Any

from ..specs.data_entries import host_path_parts
from . import refuse


def value(text: str, where: str = "") -> str:
    if "${" in text:
        raise refuse(
            text,
            f"devcontainer.json{' (' + where + ')' if where else ''}",
            "the Dev Containers tooling expands every '${...}' in it (for example ${localEnv:HOME} is the host "
            "user's variable) and offers no escape",
            "write the value without '${' (for a variable the kernel should expand at run time, write $NAME)",
        )
    return text


def checked(data: Any, where: str = "") -> Any:
    """data with every string (keys too) checked: the config is walked as the tooling walks it."""
    if isinstance(data, str):
        return value(data, where)
    if isinstance(data, dict):
        return {value(k, where): checked(v, f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    if isinstance(data, list):
        return [checked(v, where) for v in data]
    return data


def host_path(text: str) -> str:
    """A spec's host path for the Dev Containers tooling: `~` → ${localEnv:HOME}, $NAME → ${localEnv:NAME} (its
    own expansion, on the host); the literal parts are checked as every other value."""
    return "".join(value(part) if kind == "text" else f"${{localEnv:{part}}}" for kind, part in host_path_parts(text))


def mount(kind: str, source: str, target: str, read_only: bool) -> str:
    """`type=...,source=...,target=...[,readonly]` (Docker's --mount syntax): the spec's schema keeps ',' out of
    paths, so no part can add an option."""
    for part in (source, target):
        if "," in part or "\n" in part:
            raise refuse(part, "a devcontainer.json mount", "',' separates its options", "use a path without ','")
    return f"type={kind},source={source},target={target}" + (",readonly" if read_only else "")
