"""`dockyard upgrade` on the real engine: a new image whose example notebook fails keeps the alias on the old
image (exit 1, nbval's words shown); one that passes moves it; --rollback moves it back with no build. A
throwaway copy of minimal under a unique name (one variable differs between the two builds); its images are
removed afterwards."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from dockyard import cli
from dockyard.engine import find_image
from dockyard.images.naming import image_repository

from .helpers import REPO

pytestmark = pytest.mark.engine


def _notebook(path: Path, expected: str) -> Path:
    cell = {
        "cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
        "source": "import os; print(os.environ['UPGRADE_TEST'])",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{expected}\n"}],
    }  # fmt: skip
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_upgrade_gates_the_alias_on_nbval_and_rolls_back(tmp_envs, tmp_path, monkeypatch, docker_client, built, capsys):
    built("minimal:cpu")  # its layers make the throwaway builds quick
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    name = f"upgtest-{uuid.uuid4().hex[:8]}"
    ref, alias = f"{name}:cpu", f"{image_repository(name)}:cpu"
    text = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", f"name: {name}")
    (tmp_envs / "locks").mkdir()
    shutil.copy(REPO / "envs" / "locks" / "minimal-cpu.txt", tmp_envs / "locks" / f"{name}-cpu.txt")
    spec = tmp_envs / f"{name}.yaml"
    try:
        spec.write_text(text + 'env:\n  UPGRADE_TEST: "1"\n')
        assert cli.main(["build", ref, "--no-kernels"]) == 0
        old = docker_client.images.get(alias).id
        spec.write_text(text + 'env:\n  UPGRADE_TEST: "2"\n')
        capsys.readouterr()

        still_one = _notebook(tmp_path / "expects-1.ipynb", "1")
        assert cli.main(["upgrade", ref, "--notebook", str(still_one)]) == 1
        err = capsys.readouterr().err
        assert "the alias stays on the old image" in err
        assert docker_client.images.get(alias).id == old

        now_two = _notebook(tmp_path / "expects-2.ipynb", "2")
        assert cli.main(["upgrade", ref, "--notebook", str(now_two)]) == 0
        assert "upgraded" in capsys.readouterr().out
        new = docker_client.images.get(alias).id
        assert new != old
        assert find_image(docker_client, old) is not None  # the old image stays

        assert cli.main(["upgrade", ref, "--rollback"]) == 0
        assert docker_client.images.get(alias).id == old
    finally:
        for image in docker_client.images.list(name=image_repository(name)):
            for tag in image.tags:
                docker_client.images.remove(tag, noprune=False)
