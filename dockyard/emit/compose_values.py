"""Compose values: Compose (v2 and 1.29) interpolates `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?err}` in every
string of a compose file; `$$` is its escape for one literal `$`. Variables dockyard itself sets are written with
variable(); every value from a spec or stack goes through literal()."""

from __future__ import annotations

import re

from ..specs.data_entries import host_path_parts
from . import refuse


def literal(value: str) -> str:
    return value.replace("$", "$$")


def variable(name: str, default: str) -> str:
    """${NAME:-default}: a variable `dockyard compose up` sets; the default is dockyard's own (an image alias)."""
    return f"${{{name}:-{default}}}"


def volume(source: str, target: str, mode: str = "") -> str:
    """SOURCE:TARGET[:MODE] in Compose's short syntax, which splits at ':' and interpolates '$': a part holding
    either, a line break or a control character cannot be written."""
    for part in (source, target, mode):
        if re.search(r"[:\x00-\x1f\x7f]", part):
            raise refuse(part, "a Compose volume", "':' separates its parts", "use a path without ':'")
    return ":".join(literal(p) for p in (source, target, mode) if p)


def host_path(text: str) -> str:
    """A spec's host path (`~`, $NAME, ${NAME}) for Compose, which reads ${NAME} from its own environment on the host,
    as a kernel's start reads the server's: `~` → ${HOME}, each variable → ${NAME}, every other '$' literal."""
    return "".join(literal(part) if kind == "text" else f"${{{part}}}" for kind, part in host_path_parts(text))
