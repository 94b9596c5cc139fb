"""YAML documents through PyYAML's safe dumper: every string is a scalar the dumper quotes as it must, so no
value can add a key, an item, a tag or a document. No anchors/aliases (a value used twice is written twice)."""

from __future__ import annotations

from typing import Any

import yaml


class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


# YAML readers treat NEL and the Unicode line/paragraph separators as line breaks, yet PyYAML's emitter writes them
# raw with allow_unicode (a value would come back with a space instead); the double-quoted style escapes them.
_BREAKS = frozenset("\x85\u2028\u2029")


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if _BREAKS & set(data) else None)


Dumper.add_representer(str, _str)


class BlockDumper(Dumper):
    """Multi-line strings (a ConfigMap's files, scripts) as literal blocks, readable in review; PyYAML falls back
    to a quoted style where a block cannot hold the value exactly."""


def _block_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _BREAKS & set(data):
        return _str(dumper, data)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


BlockDumper.add_representer(str, _block_str)


def dump(data: Any, *, blocks: bool = False) -> str:
    return yaml.dump(
        data,
        Dumper=BlockDumper if blocks else Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
    )


def documents(header: str, *docs: Any, blocks: bool = False) -> bytes:
    """`header` (comment lines) then the documents, '---' between them."""
    return (header + "---\n".join(dump(d, blocks=blocks) for d in docs)).encode()
