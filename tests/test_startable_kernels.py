"""Jupyter offers only kernels that can start: `kernels install` skips (and removes earlier installs of)
kernels whose image is not built, naming the build command; `dockyard build` adds the kernel of what it
built wherever dockyard kernels are installed. Real engine: the image state is the point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.cli import main
from dockyard.kernel import kernelspec

from .helpers import copy_spec

pytestmark = pytest.mark.engine


@pytest.fixture
def ghost(tmp_envs: Path) -> str:
    """An environment whose images cannot exist: a copy of minimal under a name nobody builds."""
    path = copy_spec("minimal", tmp_envs)
    (tmp_envs / "ghost.yaml").write_text(path.read_text().replace("\nname: minimal\n", "\nname: ghost\n", 1))
    path.unlink()
    return "ghost"


@pytest.fixture
def jupyter_kernels(jupyter_prefix) -> Path:
    """The only kernel directory this process's Jupyter sees (never the machine's own)."""
    return jupyter_prefix / "share" / "jupyter" / "kernels"


def _names(kernels: Path) -> set[str]:
    return {p.name for p in kernels.iterdir()} if kernels.is_dir() else set()


def test_install_offers_only_built_kernels_and_names_the_build_command(built, ghost, jupyter_kernels, capsys):
    built("minimal:cpu")
    prefix = jupyter_kernels.parent.parent.parent
    # An earlier install of everything (what the tester had: unbuilt kernels in the launcher).
    assert main(["kernels", "install", "--include-unbuilt", "ghost:cpu", "ghost:cuda", "--prefix", str(prefix)]) == 0
    assert _names(jupyter_kernels) == {"dockyard-ghost-cpu", "dockyard-ghost-cuda"}
    capsys.readouterr()

    assert (
        main(["kernels", "install", "ghost:cpu", "ghost:cuda", "minimal:cpu", "--prefix", str(prefix)]) == 1
    )  # named, not installed
    out = capsys.readouterr().out
    assert _names(jupyter_kernels) == {"dockyard-minimal-cpu"}  # the stale unbuilt ones are gone
    assert "skipped dockyard-ghost-cpu (image not built): dockyard build ghost:cpu" in out
    assert "skipped dockyard-ghost-cuda (image not built): dockyard build ghost:cuda" in out
    assert "removed dockyard-ghost-cpu" in out
    assert "dockyard build ghost:cpu ghost:cuda" in out  # one command for all of them

    # No names: every environment, and whatever is installed can start (images of others may exist or not).
    assert main(["kernels", "install", "--prefix", str(prefix)]) == 0
    names = _names(jupyter_kernels)
    assert "dockyard-minimal-cpu" in names
    assert not {n for n in names if n.startswith("dockyard-ghost-")}
    from dockyard import engine
    from dockyard.config import load_settings
    from dockyard.images.inventory import image_state

    client, settings = engine.client(), load_settings()
    for name in names:
        meta = json.loads((jupyter_kernels / name / "kernel.json").read_text())["metadata"]["dockyard"]
        s = specs.load(meta["env"])
        assert image_state(client, s, s.variant(meta["variant"]), settings.build).built, name

    capsys.readouterr()
    assert main(["kernels", "list"]) == 0
    assert "cannot start" not in capsys.readouterr().out


def test_list_warns_about_installed_kernels_that_cannot_start(ghost, jupyter_kernels, capsys):
    prefix = jupyter_kernels.parent.parent.parent
    assert main(["kernels", "install", "--include-unbuilt", "ghost:cpu", "--prefix", str(prefix)]) == 0
    capsys.readouterr()
    assert main(["kernels", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 of these cannot start until their image is built: dockyard build ghost:cpu" in out
    assert "dockyard kernels remove dockyard-ghost-cpu" in out


def test_build_adds_and_refreshes_its_kernel_where_dockyard_kernels_are_installed(
    built, ghost, jupyter_kernels, capsys
):
    built("minimal:cpu")
    s = specs.load("minimal")
    expected = kernelspec.files(s, s.variant("cpu"))
    mine = jupyter_kernels / "dockyard-minimal-cpu"

    # No dockyard kernels installed: the build says how to add one, and installs nothing.
    assert main(["build", "minimal:cpu"]) == 0
    assert "To use it in Jupyter: dockyard kernels install minimal:cpu" in capsys.readouterr().out
    assert not mine.exists()

    # Dockyard kernels installed there: the build adds its own.
    prefix = jupyter_kernels.parent.parent.parent
    assert main(["kernels", "install", "--include-unbuilt", "ghost:cpu", "--prefix", str(prefix)]) == 0
    assert main(["build", "--no-kernels", "minimal:cpu"]) == 0
    assert not mine.exists()
    assert main(["build", "minimal:cpu"]) == 0
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == expected

    # An outdated copy (an older spec's display name) is refreshed.
    (mine / "kernel.json").write_text(json.dumps({"display_name": "old", "metadata": {"dockyard": {}}}))
    capsys.readouterr()
    assert main(["build", "minimal:cpu"]) == 0
    assert f"kernel dockyard-minimal-cpu → {mine}" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == expected
    assert main(["build", "minimal:cpu"]) == 0
    assert "kernel dockyard-minimal-cpu up to date" in capsys.readouterr().out
