"""Load YAML while remembering where every value came from, so errors can name a line.

The same loader reads specs and the config file, from the CLI and (later) from a Jupyter server
extension where one uploaded file must not stall the server: so it refuses, cheaply and before any
structure is built, whatever a spec has no use for and an attacker would: anchors and aliases
(the "billion laughs" bomb), tags (object construction), more than one document, deep nesting, too
many values and oversized files. Every refusal is the caller's one-paragraph error with file and line.
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from ..errors import DockyardError, shown

# A spec is 1-2 KB with ~60 values nested 4 deep; these bounds are far above that and far below harm.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_VALUES = 2_000
MAX_NUMBER_CHARS = 100  # int("9" * 5000) raises in Python ≥ 3.11; nobody writes such a number anyway

# Explicit tags that only restate what plain YAML already means; every other tag is refused.
_STANDARD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_STANDARD}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
# Implicit types kept: YAML 1.1 scalars as PyYAML's safe loader reads them, minus timestamps (they
# would become datetime objects, which are not JSON), merge keys ('<<' needs aliases) and '=' values.
_IMPLICIT_KEPT = {f"{_STANDARD}{t}" for t in ("bool", "int", "float", "null")}
# What PyYAML's reader accepts; anything else is refused up front so the error can name the line.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same result, faster


def _json_resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    kept = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _IMPLICIT_KEPT]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }
    return {first: resolvers for first, resolvers in kept.items() if resolvers}


class _Loader(_Base):  # type: ignore[misc]
    """Safe loader whose implicit types are JSON's (no timestamps, merge keys or '=' values)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = _json_resolvers()


class _Constructor(SafeConstructor):
    """SafeConstructor that turns a value it cannot build (`!!int abc`, a 5000-digit number) into a marked error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        number = isinstance(node, yaml.ScalarNode) and node.tag in (f"{_STANDARD}int", f"{_STANDARD}float")
        if number and len(node.value) > MAX_NUMBER_CHARS:
            raise ConstructorError(None, None, f"the number {shown(node.value)} is too long", node.start_mark)
        try:
            value = super().construct_object(node, deep=deep)
        except (ValueError, LookupError, TypeError, OverflowError):  # e.g. `!!int ""` → IndexError
            kind = node.tag.removeprefix(_STANDARD)
            raise ConstructorError(None, None, f"{shown(node.value)} is not a valid {kind}", node.start_mark) from None
        # .nan slips through every range check (all comparisons are false) and .inf is not JSON: neither is a setting.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConstructorError(None, None, f"{shown(node.value)} is not a finite number", node.start_mark)
        return value


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
    text = str(path)
    if not text.isprintable():  # a file name with a line break or an undecodable byte: escaped, still one line
        text = shown(text, 200)
    return f"{text}, line {line}" if line else text


_NO_EXTRAS = "dockyard reads plain YAML only: mappings, lists, strings, numbers and true/false"


def load_yaml(path: Path, error: type[DockyardError], what: str, *, empty_ok: bool = False) -> YamlDocument:
    """Parse path as one YAML mapping; any problem, hostile or not, becomes one `error`."""
    text = _decode(path, _read(path, error, what), error, what)
    try:
        _scan(text, path, error, what)
        node = yaml.compose(text, Loader=_Loader)
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _index(node, (), lines, path, error, what)
        data = None if node is None else _Constructor().construct_document(node)
    except yaml.YAMLError as exc:
        # libyaml's scanner reads a flow collection ahead of the events _scan sees, so a flow nesting bomb
        # ('[[[[...') reaches its own depth limit first, in its own words (PyYAML ≥ 6.0.4, wording may change):
        # measure the nesting ourselves and give our paragraph whatever PyYAML said.
        deep = _flow_nesting_line(text)
        if deep is not None:
            raise _too_deep(where(path, deep), error, what) from None
        raise _syntax_error(exc, path, error, what) from None
    if data is None:  # no document, or a document that is only '---' / '~'
        if empty_ok:
            return YamlDocument(path, {}, {}, text)
        raise error(
            f"{where(path, None)}: {what} is empty", fix=f"write the {what} as a YAML mapping (see {_docs(what)})"
        )
    if not isinstance(data, dict):
        raise error(
            f"{where(path, 1)}: {what} must be a YAML mapping of fields, not a {type(data).__name__}",
            fix=f"start the file with fields such as 'name: ...' (see {_docs(what)})",
        )
    return YamlDocument(path, data, lines, text)


def _docs(what: str) -> str:
    """Where the README's documentation table sends a reader for this kind of file."""
    return {"environment spec": "docs/spec.md", "dockyard config": "docs/configuration.md"}.get(what, "README")


def _read(path: Path, error: type[DockyardError], what: str) -> bytes:
    """The file's bytes, refusing directories, FIFOs and anything over MAX_BYTES without reading it all."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{where(path, None)}: the {what} is a directory", fix="give the path of a YAML file")
        # Character devices (/dev/null) read like files; a FIFO or socket could block forever.
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise error(f"{where(path, None)}: the {what} is not a regular file", fix="give the path of a YAML file")
        with open(path, "rb") as f:
            content = f.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise error(
            f"Cannot read {what} {where(path, None)}: {reason}", fix="check the path and its permissions"
        ) from None
    except ValueError:  # e.g. a NUL byte in the path
        raise error(f"Cannot read {what} {where(path, None)}: invalid path", fix="check the path") from None
    if len(content) > MAX_BYTES:
        raise error(
            f"{where(path, None)}: the {what} is larger than {MAX_BYTES // 1024} KB",
            fix=f"check that this is the right file; {what}s are a few KB of YAML",
        )
    return content


def _decode(path: Path, content: bytes, error: type[DockyardError], what: str) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{where(path, line)}: {what} is not UTF-8 text (byte 0x{content[exc.start]:02x})",
            fix="save the file as UTF-8",
        ) from None
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise error(
            f"{where(path, line)}: {what} contains the control character U+{ord(bad.group()):04X}",
            fix="remove it; YAML files are plain text (use an escape such as \\t inside double quotes)",
        )
    return text


def _scan(text: str, path: Path, error: type[DockyardError], what: str) -> None:
    """Walk the event stream once and refuse what specs never need, before any node is built.

    Events arrive one at a time, so a bomb is refused at its first anchor and deep nesting at the
    level that crosses MAX_DEPTH: neither memory nor (C or Python) recursion grows with the input.
    """
    depth = values = documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        at = where(path, event.start_mark.line + 1 if event.start_mark else None)
        if isinstance(event, yaml.AliasEvent):
            raise error(
                f"{at}: {what} uses the YAML alias *{_short(event.anchor or '')}",
                fix=f"write the value out; {_NO_EXTRAS}",
            )
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise error(f"{at}: {what} defines the YAML anchor &{_short(event.anchor)}", fix=f"remove it; {_NO_EXTRAS}")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_TAGS:
            shown_tag = "!!" + tag.removeprefix(_STANDARD) if tag.startswith(_STANDARD) else tag
            raise error(f"{at}: {what} uses the YAML tag {_short(shown_tag)}", fix=f"remove the tag; {_NO_EXTRAS}")
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise error(
                    f"{at}: {what} holds more than one YAML document", fix="keep one document (one '---' at most)"
                )
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            values += 1
            if values > MAX_VALUES:
                raise error(
                    f"{at}: {what} has more than {MAX_VALUES} values",
                    fix=f"check that this is the right file; {what}s have a few dozen",
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(at, error, what)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep(at: str, error: type[DockyardError], what: str) -> DockyardError:
    return error(
        f"{at}: {what} nests deeper than {MAX_DEPTH} levels",
        fix=f"check that this is the right file; {what}s nest 4 levels at most",
    )


def _flow_nesting_line(text: str) -> int | None:
    """The line where '[' / '{' nesting first passes MAX_DEPTH, or None; quotes, comments, block scalars skipped.

    Only consulted once PyYAML has refused the text, to tell a nesting bomb from a plain syntax error.
    """
    depth, quote = 0, ""
    block_indent: int | None = None  # inside a block scalar ('|' or '>'): lines indented deeper than this
    for number, line in enumerate(text.split("\n"), start=1):
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        previous, i = " ", 0
        while i < len(line):
            char = line[i]
            if quote:
                if char == "\\" and quote == '"':
                    i += 1  # an escaped character, perhaps a quote
                elif char == quote:
                    quote = ""
            elif char == "#" and previous in " \t":
                break
            elif char in "'\"" and previous in " \t[{,:":
                quote = char
            elif (
                char in "|>"
                and depth == 0
                and previous in " \t"
                and not line[i + 1 :].split("#")[0].strip(" 0123456789+-")
            ):
                block_indent = indent
                break
            elif char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return number
            elif char in "]}":
                depth = max(depth - 1, 0)
            previous = char
            i += 1
    return None


def _short(name: str) -> str:
    return shown(name, 40)[1:-1]


def _syntax_error(exc: yaml.YAMLError, path: Path, error: type[DockyardError], what: str) -> DockyardError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, ConstructorError):
        return error(
            f"{where(path, line)}: in the {what}, {problem}", fix="write the value as plain YAML, quoted if it is text"
        )
    return error(
        f"{where(path, line)}: {what} is not valid YAML ({problem})",
        fix="correct the YAML syntax at that line (indentation, quotes, a missing ':')",
    )


def _index(
    node: yaml.Node, at: KeyPath, lines: dict[KeyPath, int], path: Path, error: type[DockyardError], what: str
) -> None:
    """Record each value's line; refuse duplicate and non-text keys (both silently change meaning)."""
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key_line = where(path, key_node.start_mark.line + 1)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != f"{_STANDARD}str":
                key_text = shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                raise error(
                    f"{key_line}: the {what} has a key that is not text ({key_text})",
                    fix="write keys as plain words, quoted if YAML would read them as numbers, true/false or null",
                )
            key = key_node.value
            if key in seen:
                raise error(
                    f"{key_line}: key {shown(key)} appears twice in the {what}", fix="keep one of the two entries"
                )
            seen.add(key)
            _index(value_node, (*at, key), lines, path, error, what)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*at, i), lines, path, error, what)
