"""Malformed specs: each gives one clear paragraph naming file, line, field and fix — never a traceback —
and creates no image or container, even through `dockyard build`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dockyard import cli, specs
from dockyard.errors import SpecError

GOOD = textwrap.dedent(
    """\
    name: demo
    display_name: Demo
    description: A test environment.
    framework:
      name: pytorch
      version: "2.13.0"
      package: torch
    python: "3.11"
    python_packages:
      - ipykernel==7.4.0
      - ipywidgets==8.1.9
    resources:
      shm_size: 2g
    variants:
      cpu:
        base: python:3.11-slim-bookworm
        python_packages:
          - torch==2.13.0
      cuda:
        base: python:3.11-slim-bookworm
        gpu: optional
        python_packages:
          - torch==2.13.0
    """
)

# (case id, text replacement old → new (or whole text), substrings the message must contain)
CASES: list[tuple[str, tuple[str, str] | str, list[str]]] = [
    ("bad-yaml", ("name: demo\n", "name: demo\n  bad: [unclosed\n"), ["not valid YAML", "line"]),
    ("tab-indent", ('python: "3.11"\n', "python:\n\t- x\n"), ["not valid YAML"]),
    ("not-a-mapping", "- just\n- a list\n", ["must be a YAML mapping"]),
    ("empty-file", "", ["is empty"]),
    (
        "unknown-top-key",
        ('python: "3.11"\n', 'python: "3.11"\npyhton_packages: []\n'),
        ["unknown key 'pyhton_packages'", "did you mean 'python_packages'"],
    ),
    (
        "unknown-variant-key",
        ("    gpu: optional\n", "    gpu: optional\n    bsae: x\n"),
        ["unknown key 'bsae'", "variants.cuda", "did you mean 'base'"],
    ),
    ("missing-name", ("name: demo\n", ""), ["required field 'name'"]),
    ("missing-variants", (GOOD[GOOD.index("variants:") :], ""), ["required field 'variants'"]),
    (
        "missing-base",
        ("    base: python:3.11-slim-bookworm\n    gpu: optional\n", "    gpu: optional\n"),
        ["variants.cuda", "required field 'base'"],
    ),
    ("python-as-number", ('python: "3.11"\n', "python: 3.11\n"), ["python is 3.11", "must be a string", "quote it"]),
    ("bad-python-version", ('python: "3.11"\n', 'python: "2.7"\n'), ['python is "2.7"', "Python minor version"]),
    (
        "bad-framework-version",
        ('  version: "2.13.0"\n', '  version: "latest"\n'),
        ["framework.version", '"latest"', "dotted release"],
    ),
    (
        "packages-not-list",
        ("python_packages:\n  - ipykernel==7.4.0\n  - ipywidgets==8.1.9\n", "python_packages: ipykernel\n"),
        ["python_packages", "must be a list"],
    ),
    ("unpinned-package", ("  - ipywidgets==8.1.9\n", "  - ipywidgets>=8\n"), ["not pinned", "ipywidgets==X.Y.Z"]),
    ("wildcard-pin", ("  - ipywidgets==8.1.9\n", "  - ipywidgets==8.*\n"), ["not pinned"]),
    ("invalid-requirement", ("  - ipywidgets==8.1.9\n", '  - "ipywidgets ==== 8"\n'), ["not a valid requirement"]),
    (
        "duplicate-package",
        ("  - ipywidgets==8.1.9\n", "  - ipywidgets==8.1.9\n  - IPyWidgets==8.1.8\n"),
        ["listed twice"],
    ),
    ("unknown-variant-name", ("  cuda:\n", "  tpu:\n"), ['invalid key "tpu"', "'cpu' or 'cuda'"]),
    (
        "bad-gpu-mode",
        ("    gpu: optional\n", "    gpu: maybe\n"),
        ["variants.cuda.gpu", '"maybe"', "none, optional, required"],
    ),
    (
        "cpu-variant-wants-gpu",
        (
            "    base: python:3.11-slim-bookworm\n    python_packages:\n      - torch==2.13.0\n  cuda:",
            "    base: python:3.11-slim-bookworm\n    gpu: required\n    python_packages:\n      - torch==2.13.0\n  "
            "cuda:",
        ),
        ["CPU variant", "gpu: none"],
    ),
    ("bad-shm-size", ("  shm_size: 2g\n", "  shm_size: lots\n"), ["resources.shm_size", "a size such as"]),
    ("name-mismatch", ("name: demo\n", "name: other\n"), ["file is demo.yaml"]),
    ("duplicate-key", ('python: "3.11"\n', 'python: "3.11"\npython: "3.12"\n'), ["appears twice"]),
    (
        "framework-pin-mismatch",
        ('  version: "2.13.0"\n', '  version: "2.12.0"\n'),
        ["framework.version is 2.12.0", "pins torch==2.13.0"],
    ),
    ("framework-not-installed", ("  package: torch\n", "  package: tensorflow\n"), ["does not install it"]),
    ("missing-ipykernel", ("  - ipykernel==7.4.0\n", ""), ["does not install ipykernel"]),
    (
        "env-value-not-string",
        ("  shm_size: 2g\n", "  shm_size: 2g\nenv:\n  DEBUG: 1\n"),
        ["env.DEBUG", "must be a string"],
    ),
    ("bad-env-name", ("  shm_size: 2g\n", "  shm_size: 2g\nenv:\n  1BAD: x\n"), ['invalid key "1BAD"']),
    (
        "bad-system-package",
        ("python_packages:\n", 'system_packages: ["curl; rm -rf /"]\npython_packages:\n'),
        ["system_packages[0]", "not valid"],
    ),
    (
        "pinned-both-places",
        ("  - ipywidgets==8.1.9\n", "  - ipywidgets==8.1.9\n  - torch==2.13.0\n"),
        ["pinned both at the top level and in variant"],
    ),
    ("no-variants", (GOOD[GOOD.index("variants:") :], "variants: {}\n"), ["variants is empty"]),
]


def write_case(directory: Path, change: tuple[str, str] | str) -> Path:
    if isinstance(change, str):
        text = change
    else:
        old, new = change
        assert old in GOOD, f"test case is stale: {old!r} not in GOOD"
        text = GOOD.replace(old, new, 1)
    path = directory / "demo.yaml"
    path.write_text(text)
    return path


def test_good_spec_loads(tmp_envs: Path) -> None:
    s = specs.load_file(write_case(tmp_envs, GOOD))
    assert set(s.variants) == {"cpu", "cuda"}
    assert s.variant("cuda").gpu == "optional"
    assert s.variant().name == "cpu"


@pytest.mark.parametrize(("case", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_gives_clear_error(tmp_envs: Path, case: str, change, expected: list[str]) -> None:
    path = write_case(tmp_envs, change)
    with pytest.raises(SpecError) as info:
        specs.load_file(path)
    text = info.value.text
    assert str(path) in text, text
    assert "Fix:" in text, text
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in: {text}"
    assert "\n" not in text.strip(), "a spec error is one paragraph"


def test_error_names_the_line(tmp_envs: Path) -> None:
    path = write_case(tmp_envs, ("    gpu: optional\n", "    gpu: maybe\n"))
    line = path.read_text().splitlines().index("    gpu: maybe") + 1
    with pytest.raises(SpecError, match=f"line {line}:"):
        specs.load_file(path)


@pytest.mark.parametrize(
    "command", [["env", "show", "demo"], ["render", "demo:cpu"], ["build", "demo:cpu"], ["env", "validate"]]
)
def test_cli_prints_one_paragraph_and_exits_2(tmp_envs: Path, capsys, command: list[str]) -> None:
    write_case(tmp_envs, ("  - ipywidgets==8.1.9\n", "  - ipywidgets>=8\n"))
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert "Traceback" not in err
    assert "demo.yaml" in err
    assert "ipywidgets" in err


def test_unknown_environment_and_variant(tmp_envs: Path, capsys) -> None:
    assert cli.main(["render", "pytorhc"]) == 2
    assert "did you mean 'pytorch'" in capsys.readouterr().err
    assert cli.main(["render", "pytorch:tpu"]) == 2
    assert "no variant 'tpu'" in capsys.readouterr().err


@pytest.mark.engine
def test_malformed_specs_create_nothing(tmp_envs: Path, docker_client, capsys) -> None:
    """`dockyard build` on every malformed spec fails before touching the engine."""
    images = {i.id for i in docker_client.images.list(all=True)}
    containers = {c.id for c in docker_client.containers.list(all=True)}
    for _case, change, _expected in CASES:
        write_case(tmp_envs, change)
        assert cli.main(["build", "demo:cpu"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert {i.id for i in docker_client.images.list(all=True)} == images
    assert {c.id for c in docker_client.containers.list(all=True)} == containers
