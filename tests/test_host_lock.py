"""The host side is locked: requirements/lab.txt (scripts/lab.sh) and requirements/dev.txt (.ci/run, developers).

Offline checks that the locks still cover pyproject.toml (a dependency added without `bash scripts/lock-host.sh`
fails here), that every pin is exact and hashed (pip's --require-hashes mode then refuses anything else), and that
torch stays out (see requirements/README.md).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BUILD_IN = REPO / "requirements" / "build.in"
RELOCK = "bash scripts/lock-host.sh"
LOCKS = {"lab.txt": ["lab"], "dev.txt": ["lab", "test"]}


def pins(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """{name: (version, hashes)} of the pins that apply to this interpreter and platform."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())  # one line per requirement
    found: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{lock.name}: {spec} is not an exact pin: run {RELOCK}"
        found[canonicalize_name(requirement.name)] = (Version(specifier.version), options)
    return found


def wanted(extras: list[str]) -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    lines += [line for line in BUILD_IN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_covers_every_requirement_of_pyproject(lock: str) -> None:
    locked = pins(REPO / "requirements" / lock)
    for requirement in wanted(LOCKS[lock]):
        if requirement.marker and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"requirements/{lock} lacks {requirement}: run {RELOCK}"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, outside {requirement}: run {RELOCK}"
        )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_hashed_and_torch_stays_out(lock: str) -> None:
    locked = pins(REPO / "requirements" / lock)
    assert locked, f"requirements/{lock} pins nothing"
    for name, (_, hashes) in locked.items():
        assert hashes, f"{lock}: {name} has no hash"
        assert all(h.startswith("sha256:") for h in hashes), f"{lock}: {name} has a hash that is not sha256"
    assert "torch" not in locked  # the frameworks run in the images; see requirements/README.md


def test_the_dev_lock_pins_what_lab_sh_installs_at_the_same_versions() -> None:
    lab, dev = pins(REPO / "requirements" / "lab.txt"), pins(REPO / "requirements" / "dev.txt")
    differ = {name: (lab[name][0], dev[name][0]) for name in lab if name in dev and lab[name][0] != dev[name][0]}
    assert not differ, f"lab.txt and dev.txt disagree on {differ}: run {RELOCK}"
    assert lab.keys() <= dev.keys()


def test_build_requirements_are_pyprojects() -> None:
    """requirements/build.in restates [build-system] requires (plus editables), so they are locked too."""
    lines = [line for line in BUILD_IN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    locked_build = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier) for line in lines}
    declared = PYPROJECT["build-system"]["requires"]
    assert locked_build.pop("editables")
    assert locked_build == {canonicalize_name(Requirement(r).name): str(Requirement(r).specifier) for r in declared}
