"""POSIX shell words: every value is one single-quoted word, so the shell expands and splits nothing in it."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def word(value: str) -> str:
    return shlex.quote(value)


def words(values: Iterable[str]) -> str:
    return " ".join(shlex.quote(v) for v in values)
