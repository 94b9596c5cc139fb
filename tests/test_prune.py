"""Image lifecycle on the real engine: a build leaves no untagged stage image, and `dockyard images prune` removes
superseded content tags of one environment only, keeping the newest and any image a container uses.

Only a throwaway environment with a unique name is pruned: the engine is shared with other users' images."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest

from dockyard import cli, specs
from dockyard.engine import find_image
from dockyard.images.build import build
from dockyard.images.lockfile import installed_pins, lock_pins
from dockyard.images.naming import image_repository
from dockyard.images.plan import make_plan

from .helpers import REPO

pytestmark = pytest.mark.engine


def _throwaway_env(envs: Path) -> tuple[str, str]:
    name = f"prunetest-{uuid.uuid4().hex[:10]}"
    text = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", f"name: {name}")
    (envs / "locks").mkdir(exist_ok=True)
    for variant in ("cpu", "cuda"):  # the lock does not depend on the name: minimal's are this spec's
        shutil.copy(REPO / "envs" / "locks" / f"minimal-{variant}.txt", envs / "locks" / f"{name}-{variant}.txt")
    return name, text


def _stage_image(log: Path) -> str:
    """The Python stage's image id, from the build log: the last layer before the final stage's FROM."""
    lines = log.read_text().splitlines()
    final = max(i for i, line in enumerate(lines) if line.startswith("Step ") and line.endswith(" : FROM system"))
    return next(line.split()[-1] for line in reversed(lines[:final]) if line.startswith(" ---> "))


def _untagged(docker_client, image_id: str) -> bool:
    image = find_image(docker_client, image_id)
    return image is not None and not image.tags


def test_prune_keeps_newest_and_in_use_removes_the_rest_and_builds_leave_no_stage(
    tmp_envs: Path, docker_client, settings, containers, built, capsys
) -> None:
    built("minimal:cpu")
    name, text = _throwaway_env(tmp_envs)
    repo = image_repository(name)
    others_before = {t for i in docker_client.images.list() for t in i.tags if not t.startswith(f"{repo}:")}
    tags: list[str] = []
    stages: list[str] = []
    try:
        for n in range(3):  # three content tags of one variant: only the spec-wide variable differs
            (tmp_envs / f"{name}.yaml").write_text(text + f'env:\n  PRUNE_TEST: "{n}"\n')
            s = specs.load(name)
            plan = make_plan(s, s.variant("cpu"), settings.build)
            result = build(docker_client, plan, settings.build)
            assert result.built
            assert result.log_path is not None
            tags.append(plan.tag)
            stages.append(_stage_image(result.log_path))
            time.sleep(1.1)  # distinct creation times
        # (Other users' builds on this engine may leave untagged images: only this test's stages are looked at.)
        assert not any(_untagged(docker_client, i) for i in stages), "a build left its stage image untagged"
        assert find_image(docker_client, f"{repo}:cpu-stage") is not None  # the stage, kept tagged for the cache
        # The newest image installs exactly its lock.
        assert plan.lock is not None
        freeze = containers.run_and_wait(tags[2], ["pip", "freeze", "--all"])
        assert installed_pins(freeze, plan.lock) == lock_pins(plan.lock)

        in_use = containers.run_detached(tags[0], ["sleep", "300"])  # stands for a running kernel
        assert cli.main(["images", "prune", "--dry-run", name]) == 0
        out = capsys.readouterr().out
        assert f"would remove {tags[1]}" in out
        assert all(find_image(docker_client, t) is not None for t in tags)  # --dry-run removed nothing

        # A stamped notebook in the workspace names the superseded image: prune keeps it (and says why).
        workspace = tmp_envs.parent / "workspace"
        (workspace / "sub").mkdir(parents=True)
        stamped = {"cells": [], "metadata": {"dockyard": {"content_tag": tags[1]}}, "nbformat": 4, "nbformat_minor": 5}
        (workspace / "sub" / "old.ipynb").write_text(json.dumps(stamped))
        assert cli.main(["images", "prune", "--dry-run", "--workspace", str(workspace), name]) == 0
        out = capsys.readouterr().out
        assert f"keep {tags[1]}" in out
        assert "old.ipynb names it" in out

        assert cli.main(["images", "prune", name]) == 0
        assert find_image(docker_client, tags[0]) is not None, "the image a container uses was removed"
        assert find_image(docker_client, tags[1]) is None, "the superseded image survived"
        assert find_image(docker_client, tags[2]) is not None, "the newest image was removed"
        assert in_use.status in ("created", "running")
        others_after = {t for i in docker_client.images.list() for t in i.tags if not t.startswith(f"{repo}:")}
        assert others_before <= others_after, "prune touched another environment's images"
        assert not any(_untagged(docker_client, i) for i in stages), "prune left a stage image untagged"
    finally:
        containers.remove_all()
        for image in docker_client.images.list(name=repo):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)
