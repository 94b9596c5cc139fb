"""Compose values: Compose (v2 and 1.29) interpolates `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?err}` in every
string of a compose file; `$$` is its escape for one literal `$`. Variables dockyard itself sets are written with
variable(); every value from a spec or stack goes through literal()."""

from __future__ import annotations


def literal(value: str) -> str:
    return value.replace("$", "$$")


def variable(name: str, default: str) -> str:
    """${NAME:-default}: a variable `dockyard compose up` sets; the default is dockyard's own (an image alias)."""
    return f"${{{name}:-{default}}}"
