"""Dockerfile text around values (the classic builder's and BuildKit's parser, which agree on these forms).

- exec_form: a JSON array (RUN/CMD/ENTRYPOINT ["..."]): no shell runs, the builder substitutes nothing in RUN,
  and JSON escapes every line break, so any string stays one argument;
- shell_words: words for a shell-form RUN line; single-quoted for /bin/sh, and refused when they hold a line break
  (the Dockerfile parser would end the instruction there; no quoting can carry one);
- env_value: an ENV value in double quotes, where the parser treats `\\`, `"` and `$` as escapable and nothing
  else; line breaks and other control characters are refused (an ENV line cannot hold them);
- comment: free text on a `#` line, control characters escaped so it stays one comment line.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping

from . import refuse

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ESCAPED = re.compile(r'(["$\\])')


def exec_form(args: Iterable[str]) -> str:
    return json.dumps(list(args), ensure_ascii=False)


def _one_line(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise refuse(
            value,
            f"a Dockerfile {what}",
            "it holds a line break or another control character, which ends or corrupts the instruction",
            "remove the control characters from the value",
        )
    return value


def shell_words(values: Iterable[str]) -> str:
    return " ".join(shlex.quote(_one_line(v, "RUN line")) for v in values)


def env_value(value: str) -> str:
    return '"' + _ESCAPED.sub(r"\\\1", _one_line(value, "ENV value")) + '"'


def env_line(values: Mapping[str, str]) -> str:
    for name in values:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise refuse(name, "a Dockerfile ENV line", "it is not a variable name", "use letters, digits and _")
    return "ENV " + " \\\n    ".join(f"{k}={env_value(v)}" for k, v in values.items())


def comment(text: str) -> str:
    """Free text for a `#` comment line: control characters shown escaped (repr), so no second line starts."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


# An image reference (name[:tag][@digest]), loosely: no spaces, quotes, `$` or line breaks in a FROM line.
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")


def image_ref(value: str) -> str:
    if not _IMAGE_REF.fullmatch(value):
        raise refuse(value, "a Dockerfile FROM line", "it is not an image reference", "write it like 'python:3.11'")
    return value
