"""The panel's labextension comes built with the checkout, so installing from a clone needs neither Node nor npm.

dockyard/frontends/panel/labextension is a generated tree like kernels/: scripts/build-labextension.sh rebuilds it
from extension/ and records the sources' hashes in it (sources.sha256). Offline, the hashes show whether extension/
changed since the last build; with the npm registry (marker `index`) a fresh build is compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import LABEXTENSION, REPO

EXTENSION = REPO / "extension"
REBUILD = "bash scripts/build-labextension.sh"


def recorded_sources() -> dict[str, str]:
    """sources.sha256 as {path under extension/: sha256}."""
    lines = (LABEXTENSION / "sources.sha256").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def current_sources() -> dict[str, str]:
    """What the build script hashes: package.json, yarn.lock, .yarnrc.yml, tsconfig.json and src/."""
    files = [EXTENSION / name for name in ("package.json", "yarn.lock", ".yarnrc.yml", "tsconfig.json")]
    files += [path for path in (EXTENSION / "src").rglob("*") if path.is_file()]
    return {str(path.relative_to(EXTENSION)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def test_the_built_tree_is_from_todays_sources() -> None:
    recorded, current = recorded_sources(), current_sources()
    changed = sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))
    assert not changed, f"extension/ changed since the labextension was built ({', '.join(changed)}): run {REBUILD}"


def test_the_built_tree_is_what_jupyterlab_loads() -> None:
    built = json.loads((LABEXTENSION / "package.json").read_text())
    source = json.loads((EXTENSION / "package.json").read_text())
    assert (built["name"], built["version"]) == (source["name"], source["version"])
    entry = built["jupyterlab"]["_build"]["load"]
    assert (LABEXTENSION / entry).is_file(), f"{entry} is missing from {LABEXTENSION}: run {REBUILD}"
    # Production build: hashed names and no source maps or build log (those belong to `jlpm build`, a dev build).
    assert not list(LABEXTENSION.rglob("*.map")), f"a development build is checked in: run {REBUILD}"
    assert not (LABEXTENSION / "build_log.json").exists()


def test_git_tracks_the_built_tree() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(LABEXTENSION.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    on_disk = sorted(str(path.relative_to(REPO)) for path in LABEXTENSION.rglob("*") if path.is_file())
    assert sorted(tracked) == on_disk


def test_a_wheel_builds_without_node_and_carries_the_labextension(tmp_path: Path) -> None:
    """What `pip install` from a clone does, with no node, npm or jlpm on PATH and no build isolation (no index)."""
    pytest.importorskip("hatchling", reason="hatchling comes with requirements/dev.txt")
    empty = tmp_path / "bin"  # PATH: nothing, so no node, npm or jlpm
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "NODE_", "npm_"))}
    env["PATH"] = str(empty)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    run = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), str(REPO)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = tmp_path.glob("dockyard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shared = "share/jupyter/labextensions/dockyard-panel/"
    built = {str(p.relative_to(LABEXTENSION)) for p in LABEXTENSION.rglob("*") if p.is_file()}
    assert {n.split(shared, 1)[1] for n in names if shared in n} == built
    # `pip install -e .` builds an editable wheel, where a Node build hook would run even with the tree present.
    editable = tmp_path / "editable"
    build = "import sys, hatchling.build as b; print(b.build_editable(sys.argv[1]))"
    run = subprocess.run(
        [sys.executable, "-c", build, str(editable)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    names = zipfile.ZipFile(editable / run.stdout.split()[-1]).namelist()
    assert {n.split(shared, 1)[1] for n in names if shared in n} == built


@pytest.mark.index
def test_a_fresh_build_gives_the_checked_in_tree_byte_for_byte() -> None:
    """The npm registry (through NODE_EXTRA_CA_CERTS behind a TLS-intercepting proxy) and Node are needed."""
    if not shutil.which("node") or not shutil.which("jlpm"):
        pytest.fail("node and jlpm are needed to rebuild the labextension (apt-get install nodejs; jupyterlab)")
    run = subprocess.run(["bash", "scripts/build-labextension.sh", "--check"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
