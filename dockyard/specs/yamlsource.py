"""Load YAML while remembering where every value came from, so errors can name a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import DockyardError

# Where a value sits in a document: mapping keys and list indexes from the top.
KeyPath = tuple[str | int, ...]


class YamlDocument:
    """A parsed YAML mapping plus the line of each value, addressed by its path of keys/indexes."""

    def __init__(self, path: Path, data: Any, lines: dict[KeyPath, int], text: str = "") -> None:
        self.path = path
        self.text = text
        self.data = data
        self._lines = lines

    def line(self, path: KeyPath | list[str | int]) -> int | None:
        """Line (1-based) of the value at path, or of its nearest ancestor that exists."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get(())


def where(path: Path, line: int | None) -> str:
    return f"{path}, line {line}" if line else str(path)


def load_yaml(path: Path, error: type[DockyardError], what: str, *, empty_ok: bool = False) -> YamlDocument:
    """Parse path as one YAML mapping; syntax errors and duplicate keys become `error`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"Cannot read {what} {path}: {exc.strerror}", fix="check the path and its permissions") from None
    except UnicodeDecodeError:
        raise error(f"{what.capitalize()} {path} is not UTF-8 text", fix="save the file as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(
            f"{where(path, line)}: {what} is not valid YAML ({problem})",
            fix="correct the YAML syntax at that line (indentation, quotes, a missing ':')",
        ) from None
    if node is None:
        if empty_ok:
            return YamlDocument(path, {}, {}, text)
        raise error(f"{path}: {what} is empty", fix=f"write the {what} as a YAML mapping (see README)")
    lines: dict[KeyPath, int] = {}
    _index(node, (), lines, path, error, what)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise error(
            f"{where(path, 1)}: {what} must be a YAML mapping of fields, not a {type(data).__name__}",
            fix="start the file with fields such as 'name: ...' (see README)",
        )
    return YamlDocument(path, data, lines, text)


def _index(
    node: yaml.Node, at: KeyPath, lines: dict[KeyPath, int], path: Path, error: type[DockyardError], what: str
) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise error(
                    f"{where(path, key_node.start_mark.line + 1)}: key '{key}' appears twice in the {what}",
                    fix="keep one of the two entries",
                )
            seen.add(key)
            _index(value_node, (*at, key), lines, path, error, what)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*at, i), lines, path, error, what)
