"""Generated dev container configs: checked-in files match the specs byte for byte, and say the right things."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from dockyard import specs
from dockyard.cli import main
from dockyard.frontends import devcontainer
from dockyard.generated import Tree
from dockyard.images import render

from .helpers import REPO, assert_same_files, copy_spec

CHECKED_IN = REPO / devcontainer.DIRNAME


def _jsonc(data: bytes) -> dict:
    """devcontainer.json is JSON with comments; ours only has whole-line // comments."""
    return json.loads(re.sub(rb"(?m)^\s*//.*$", b"", data))


def test_checked_in_configs_match_the_specs(tmp_path):
    """Regenerate into a temp dir; any difference means someone edited a spec without regenerating."""
    out = tmp_path / devcontainer.DIRNAME
    Tree(devcontainer.render_all(specs.load_all(), REPO), out, devcontainer.owned).write(complete=True)
    assert_same_files(out, CHECKED_IN, "dockyard devcontainer generate")


def test_check_mode_passes_on_the_repo_and_fails_on_drift(tmp_path, monkeypatch, capsys):
    assert main(["devcontainer", "generate", "--check", "--workspace", str(REPO)]) == 0
    work = tmp_path / "ws"
    shutil.copytree(CHECKED_IN, work / devcontainer.DIRNAME)
    (work / "envs").mkdir()
    for name in specs.spec_files():
        copy_spec(name, work / "envs")
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(work / "envs"))
    assert main(["devcontainer", "generate", "--check", "--workspace", str(work)]) == 0
    target = work / devcontainer.DIRNAME / "minimal" / devcontainer.CONFIG_NAME
    target.write_bytes(target.read_bytes().replace(b"--shm-size=1g", b"--shm-size=2g"))
    stale = work / devcontainer.DIRNAME / "gone-cuda" / devcontainer.CONFIG_NAME
    stale.parent.mkdir()
    stale.write_bytes(target.read_bytes())
    own = work / devcontainer.DIRNAME / "mine" / devcontainer.CONFIG_NAME  # hand-written: never touched
    own.parent.mkdir()
    own.write_text('{"image": "x"}\n')
    capsys.readouterr()
    assert main(["devcontainer", "generate", "--check", "--workspace", str(work)]) == 1
    out = capsys.readouterr().out
    assert "outdated" in out
    assert "minimal" in out
    assert "stale" in out
    assert "gone-cuda" in out
    assert "mine" not in out
    assert main(["devcontainer", "generate", "--workspace", str(work)]) == 0
    assert not stale.parent.exists()
    assert own.exists()
    assert main(["devcontainer", "generate", "--check", "--workspace", str(work)]) == 0


def test_one_folder_per_variant_default_variant_unsuffixed():
    files = devcontainer.render_all(specs.load_all(), REPO)
    for s in specs.load_all():
        assert f"{s.name}/devcontainer.json" in files
        for v in s.variants:
            if v != "cpu":
                assert f"{s.name}-{v}/devcontainer.json" in files
    assert not (CHECKED_IN / devcontainer.CONFIG_NAME).exists()  # VS Code offers a picker over the folders


def test_generation_is_deterministic_and_machine_independent(tmp_path):
    a = devcontainer.render_all(specs.load_all(), REPO)
    b = devcontainer.render_all(specs.load_all(), REPO)
    assert a == b
    for data in a.values():
        text = data.decode()
        assert str(REPO) not in text
        assert "/root" not in text
        assert "/opt/wheels" not in text
        assert data.endswith(b"\n")
        assert b"\r" not in data


@pytest.mark.parametrize("ref", ["minimal:cpu", "pytorch:cpu", "pytorch:cuda", "tensorflow:cuda", "jax:cpu"])
def test_content(ref):
    name, variant = specs.parse_ref(ref)
    s = specs.load(name)
    v = s.variant(variant)
    cfg = _jsonc(devcontainer.render(s, v, REPO))
    # Same image as the kernel: built on the host with the user's site settings, then the moving alias.
    gpu_flag = ["--devcontainer-gpu"] if variant.startswith("cuda") else []  # says whether the GPU gets in
    assert cfg["initializeCommand"] == ["dockyard", "build", *gpu_flag, f"envs/{name}.yaml:{variant}"]
    assert cfg["image"] == f"dockyard/{name}:{variant}"
    assert cfg["remoteUser"] == render.REMOTE_USER == "dockyard"
    assert cfg["updateRemoteUserUID"] is True
    assert f"--shm-size={s.resources['shm_size']}" in cfg["runArgs"]
    assert cfg["containerEnv"] == s.kernel["env"]
    vscode = cfg["customizations"]["vscode"]
    assert vscode["extensions"] == ["ms-python.python", "ms-toolsai.jupyter"]
    assert (
        vscode["settings"]["python.defaultInterpreterPath"]
        == "/opt/dockyard/venv/bin/python"
        == f"{render.VENV}/bin/python"
    )
    if variant == "cpu":
        assert "hostRequirements" not in cfg
    else:
        assert cfg["hostRequirements"] == {"gpu": "optional"}  # opens on a GPU-less host too
    assert "features" not in cfg  # features come from registries; none here
    assert "build" not in cfg
    assert "dockerFile" not in cfg


def test_spec_outside_the_workspace_is_named_not_pathed(tmp_path):
    s = specs.load("minimal")
    cfg = _jsonc(devcontainer.render(s, s.variant(), tmp_path))
    assert cfg["initializeCommand"] == ["dockyard", "build", "minimal:cpu"]


def test_resources_and_kernel_env_reach_run_args(tmp_envs):
    path = copy_spec("minimal", tmp_envs)
    text = path.read_text().replace("  shm_size: 1g\n", "  shm_size: 3g\n  memory: 6g\n  cpus: 2\n")
    path.write_text(text + "kernel:\n  env:\n    OMP_NUM_THREADS: '2'\n")
    s = specs.load_file(path)
    cfg = _jsonc(devcontainer.render(s, s.variant("cuda"), tmp_envs.parent))
    assert cfg["runArgs"] == ["--shm-size=3g", "--memory=6g", "--cpus=2"]
    assert cfg["containerEnv"] == {"OMP_NUM_THREADS": "2"}
    assert cfg["initializeCommand"][-1] == "envs/minimal.yaml:cuda"
