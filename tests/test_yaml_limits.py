"""Nesting and size bombs get dockyard's own paragraph and fix, whatever PyYAML says about them.

PyYAML 6.0.4's libyaml scanner refuses flow nesting past 1000 levels on its own, with its own words, before
dockyard's event scan sees the 33rd level; its generic "correct the YAML syntax" fix is wrong advice for a
hostile file. These cases pin dockyard's wording only: some make PyYAML fail first on every version (a syntax
error ahead of the bomb), so the fallback that measures nesting itself is exercised whichever PyYAML is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import ConfigError, SpecError
from dockyard.specs import load_file
from dockyard.specs.yamlsource import MAX_BYTES, MAX_DEPTH, load_yaml

DEPTH_FIX = "Fix: check that this is the right file; environment specs nest 4 levels at most"
SIZE_FIX = "Fix: check that this is the right file; environment specs are a few KB of YAML"

NESTING_BOMBS = {
    # PyYAML ≥ 6.0.4 (libyaml) refuses these itself at 1000 levels; older ones hand dockyard the events.
    "flow-sequences": (b"a: " + b"[" * 100_000, 1),
    "flow-mappings": (b"a: " + b"{b: " * 50_000, 1),
    # A syntax error on line 1 comes before the bomb's events on every PyYAML: only the fallback can tell.
    "bomb-behind-a-syntax-error": (b"a: b: c\nd: " + b"[" * 5_000, 2),
    # Quotes and comments hide brackets: this bomb starts on line 4.
    "after-quoted-brackets": (b'a: \'[[[[[\'\nb: "{{{\\"{{"\n# [[[[[[[[[[\nc: ' + b"[" * 5_000 + b" ]]", 4),
    "block": ("".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(), MAX_DEPTH + 1),
}


@pytest.mark.parametrize("case", NESTING_BOMBS)
def test_nesting_bomb_gets_dockyards_own_paragraph(tmp_path: Path, case: str) -> None:
    content, line = NESTING_BOMBS[case]
    path = tmp_path / "bomb.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        load_file(path)
    text = caught.value.text
    assert text == f"{path}, line {line}: environment spec nests deeper than {MAX_DEPTH} levels. {DEPTH_FIX}"


def test_size_bomb_gets_dockyards_own_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: [" + b"1, " * MAX_BYTES + b"]\n")
    with pytest.raises(SpecError) as caught:
        load_file(path)
    assert caught.value.text == f"{path}: the environment spec is larger than {MAX_BYTES // 1024} KB. {SIZE_FIX}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"a: " + b"[" * 2_000, "nests deeper than"), (b"x" * (MAX_BYTES + 1), "is larger than")],
    ids=["deep", "big"],
)
def test_config_file_bombs_name_the_config(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_yaml(path, ConfigError, "dockyard config", empty_ok=True)
    assert f"dockyard config {expected}" in caught.value.text or f"the dockyard config {expected}" in caught.value.text
    assert "Fix: check that this is the right file" in caught.value.text


@pytest.mark.parametrize(
    "content",
    [
        b"a: [1, [2, [3]]]\nb: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\nc: [\n",  # brackets inside quotes are text
        b"a: 1 # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nb: [\n",  # ... and inside comments
        b"script: |\n  " + b"[" * 40 + b"\nb: [\n",  # an unclosed list whose text holds brackets in a block scalar
    ],
)
def test_a_plain_syntax_error_keeps_the_syntax_advice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        load_file(path)
    assert "is not valid YAML" in caught.value.text, caught.value.text
    assert "correct the YAML syntax" in caught.value.text
