"""Provenance without the engine: the stamp's schema and stability, the labels an image gets for it, `dockyard
diff` on shipped locks (CUDA called out), git history lookups and the drift verdicts (provenance/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from dockyard import specs
from dockyard.cli import main as dockyard_main
from dockyard.images.lockfile import lock_digest
from dockyard.images.plan import make_plan
from dockyard.provenance import drift, history, identity
from dockyard.provenance.diff import compare
from dockyard.provenance.stamp import Stamp, apply, errors, read, schema

from .helpers import REPO


def _plan(settings, ref: str):
    spec, variant = specs.resolve(ref)
    return make_plan(spec, variant, settings.build)


def test_the_schema_is_a_valid_json_schema_and_accepts_what_dockyard_writes(settings) -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    stamp = identity.from_plan(_plan(settings, "pytorch:cuda"), gpu_driver="580.65.06", gpu_name="NVIDIA H100")
    assert stamp is not None
    assert errors(stamp.to_json()) == []
    assert Stamp.from_json(stamp.to_json()) == stamp


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"content_hash": "XYZ"}, "content_hash"),
        ({"lock_sha256": "short"}, "lock_sha256"),
        ({"stamp_version": 2}, "stamp_version"),
        ({"when": "2026-01-01"}, "Additional properties"),
        ({"framework": {"name": "torch"}}, "framework"),
    ],
)
def test_a_malformed_stamp_is_refused_naming_the_field(settings, change, fragment) -> None:
    stamp = identity.from_plan(_plan(settings, "minimal:cpu"))
    assert stamp is not None
    bad = {**stamp.to_json(), **change}
    found = errors(bad)
    assert found
    assert any(fragment in e for e in found), found
    with pytest.raises(ValueError, match=r"metadata\.dockyard"):
        read({"metadata": {"dockyard": bad}})


def test_the_stamp_does_not_churn(settings) -> None:
    """Same environment, second save: apply() changes nothing, so the notebook's bytes stay the same."""
    stamp = identity.from_plan(_plan(settings, "minimal:cpu"))
    assert stamp is not None
    notebook: dict = {"cells": [], "metadata": {"kernelspec": {"name": "dockyard-minimal-cpu"}}}
    assert apply(notebook, stamp) is True
    first = json.dumps(notebook, sort_keys=True)
    assert apply(notebook, identity.from_plan(_plan(settings, "minimal:cpu"))) is False  # type: ignore[arg-type]
    assert json.dumps(notebook, sort_keys=True) == first
    assert read(notebook) == stamp
    other = identity.from_plan(_plan(settings, "minimal:cuda"))
    assert other is not None
    assert apply(notebook, other) is True
    assert read(notebook) == other


def test_image_labels_carry_the_stamp(settings) -> None:
    for ref in ("minimal:cpu", "pytorch:cuda"):
        plan = _plan(settings, ref)
        assert plan.lock is not None
        from_labels = identity.from_labels(plan.labels)
        assert from_labels == identity.from_plan(plan)
        assert from_labels is not None
        assert from_labels.lock_sha256 == lock_digest(
            (REPO / "envs" / "locks" / f"{ref.replace(':', '-')}.txt").read_text()
        )
    cuda = identity.from_plan(_plan(settings, "pytorch:cuda"))
    cpu = identity.from_plan(_plan(settings, "pytorch:cpu"))
    assert cuda is not None
    assert cpu is not None
    assert "nvidia-cudnn-cu13" in cuda.cuda_wheels
    assert cpu.cuda_wheels == {}
    assert cpu.framework == "pytorch"
    assert cpu.framework_version == "2.13.0"


def test_compare_calls_out_cuda_and_the_framework_build() -> None:
    old = {"torch": "2.13.0+cpu", "numpy": "2.1.0", "gone": "1.0"}
    new = {"torch": "2.13.0", "numpy": "2.2.0", "nvidia-cudnn-cu13": "9.20.0.48"}
    d = compare(old, new)
    assert [c.name for c in d.of("added")] == ["nvidia-cudnn-cu13"]
    assert [c.name for c in d.of("removed")] == ["gone"]
    assert [c.name for c in d.of("changed")] == ["numpy", "torch"]
    assert sorted(c.name for c in d.cuda) == ["nvidia-cudnn-cu13", "torch"]
    assert compare(old, old).same


def test_diff_of_two_shipped_refs_as_json(capsys) -> None:
    assert dockyard_main(["diff", "pytorch:cpu", "pytorch:cuda", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cuda = {c["name"] for c in out["packages"]["cuda"]}
    assert {"nvidia-cudnn-cu13", "nvidia-cuda-runtime", "torch"} <= cuda
    assert out["same_lock"] is False
    assert out["a"]["content_tag"].startswith("dockyard/pytorch:cpu-")
    assert not out["packages"]["removed"]


def test_diff_of_lock_files_in_text(tmp_path, capsys) -> None:
    edited = tmp_path / "minimal-cpu.txt"
    text = (REPO / "envs" / "locks" / "minimal-cpu.txt").read_text()
    edited.write_text(text.replace("anywidget==0.11.0", "anywidget==0.11.1"))
    assert dockyard_main(["diff", str(REPO / "envs" / "locks" / "minimal-cpu.txt"), str(edited)]) == 0
    out = capsys.readouterr().out
    assert "anywidget 0.11.0 → 0.11.1" in out
    assert "1 changed" in out
    assert "CUDA" not in out


def test_diff_of_a_notebook_without_stamp_is_one_paragraph(tmp_path, capsys) -> None:
    nb = tmp_path / "plain.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert dockyard_main(["diff", str(nb), "minimal:cpu"]) == 2
    err = capsys.readouterr().err
    assert "has no dockyard stamp" in err
    assert "Traceback" not in err


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def env_repo(tmp_path, monkeypatch) -> Path:
    """A git checkout holding a copy of minimal (as 'provunit') and its locks, committed."""
    envs = tmp_path / "repo" / "envs"
    (envs / "locks").mkdir(parents=True)
    text = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: provunit")
    (envs / "provunit.yaml").write_text(text)
    for variant in ("cpu", "cuda"):
        shutil.copy(REPO / "envs" / "locks" / f"minimal-{variant}.txt", envs / "locks" / f"provunit-{variant}.txt")
    _git(envs.parent, "init", "-q")
    _git(envs.parent, "add", ".")
    _git(envs.parent, "commit", "-qm", "first")
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(envs))
    return envs


def _relock_by_hand(envs: Path, old: str, new: str) -> None:
    lock = envs / "locks" / "provunit-cpu.txt"
    lock.write_text(lock.read_text().replace(old, new))
    _git(envs.parent, "commit", "-qam", "second")


def test_drift_missing_then_drifted_with_the_commit_of_the_lock(env_repo, settings) -> None:
    plan = _plan(settings, "provunit:cpu")
    stamp = identity.from_plan(plan)
    assert stamp is not None
    first = _git(env_repo.parent, "rev-parse", "HEAD")
    missing = drift.assess(stamp, None, settings.build)
    assert missing.state == drift.MISSING
    assert missing.exact_build is True
    assert missing.current_tag == stamp.content_tag
    _relock_by_hand(env_repo, "anywidget==0.11.0", "anywidget==0.11.1")
    drifted = drift.assess(stamp, None, settings.build)
    assert drifted.state == drift.DRIFTED
    assert drifted.lock_commit == first
    assert drifted.packages is not None
    assert [(c.name, c.old, c.new) for c in drifted.packages.changes] == [("anywidget", "0.11.0", "0.11.1")]
    assert first[:12] in drifted.message


def test_ref_at_revision_and_history_lookup(env_repo, capsys) -> None:
    lock = env_repo / "locks" / "provunit-cpu.txt"
    digest = lock_digest(lock.read_text())
    _relock_by_hand(env_repo, "comm==0.2.3", "comm==0.2.4")
    found = history.find_lock(lock, digest)
    assert found is not None
    assert found.commit == _git(env_repo.parent, "rev-parse", "HEAD~1")
    assert history.find_lock(lock, "0" * 64) is None
    assert dockyard_main(["diff", "provunit:cpu@HEAD~1", "provunit:cpu"]) == 0
    assert "comm 0.2.3 → 0.2.4" in capsys.readouterr().out
    assert dockyard_main(["diff", "provunit:cpu@no-such-rev", "provunit:cpu"]) == 2
    assert "no lock of provunit:cpu at revision" in capsys.readouterr().err


def test_workspace_scan_finds_stamped_tags_and_skips_hidden_folders(tmp_path) -> None:
    from dockyard.provenance.workspace import stamped_tags

    def write(rel: str, metadata: dict) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))

    write("a/one.ipynb", {"dockyard": {"content_tag": "dockyard/x:cpu-000000000001"}})
    write(".ipynb_checkpoints/one-checkpoint.ipynb", {"dockyard": {"content_tag": "dockyard/x:cpu-000000000002"}})
    write("plain.ipynb", {})
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert stamped_tags(tmp_path) == {"dockyard/x:cpu-000000000001": tmp_path / "a" / "one.ipynb"}
