"""Lock files: every shipped lock matches its spec, a changed pin is refused until relocked, CUDA never enters
a CPU variant, and the tag does not depend on where the checkout lies or when its files were touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dockyard import cli, specs
from dockyard.config import BuildOptions
from dockyard.images.lockfile import LockError, cuda_pins, is_cpu, load_lock, lock_path
from dockyard.images.plan import make_plan

from .helpers import REPO, copy_spec

# download.pytorch.org/whl/cu128 is unreachable where the locks are made (see docs/locks.md): not locked.
UNLOCKABLE_HERE = {"pytorch:cuda-12"}


def _shipped() -> list[tuple[specs.Spec, specs.Variant]]:
    return [(s, v) for s in specs.load_all() for v in s.variants.values() if s.path.parent == REPO / "envs"]


def test_every_shipped_lock_matches_its_spec_and_holds_its_pins() -> None:
    unlocked = set()
    for spec, variant in _shipped():
        if not lock_path(spec, variant).is_file():
            unlocked.add(variant.ref)
            continue
        lock = load_lock(spec, variant)  # raises on a stale lock or CUDA in a CPU variant
        for pin in variant.python_packages:
            req = Requirement(pin)
            locked = lock.pin(req.name)
            assert locked is not None, f"{variant.ref}: {req.name} missing from its lock"
            assert req.specifier.contains(locked.version), f"{variant.ref}: {locked.version} breaks {pin}"
        assert all(p.hashes for p in lock.pins)
        assert "dockyard-lock-" not in lock.text  # no temp dir of the machine that locked it
    assert unlocked == UNLOCKABLE_HERE


def test_cpu_locks_hold_no_cuda_and_cuda_locks_do() -> None:
    """The check can fail: the CUDA variants' locks are full of what it looks for."""
    for spec, variant in _shipped():
        if variant.ref in UNLOCKABLE_HERE:
            continue
        found = cuda_pins(load_lock(spec, variant))
        if is_cpu(variant):
            assert found == [], variant.ref
        elif spec.name != "minimal":
            assert found, f"{variant.ref}: a CUDA lock without CUDA wheels"
    torch = load_lock(*specs.resolve("pytorch:cpu")).pin("torch")
    assert torch is not None
    assert torch.version.endswith("+cpu")


def test_lock_check_command_passes_on_the_shipped_locks(capsys) -> None:
    assert cli.main(["lock", "--check"]) == 0
    out = capsys.readouterr().out
    assert "not locked pytorch:cuda-12" in out
    assert "up to date minimal:cpu" in out


def test_changing_one_pin_without_relocking_is_refused_before_anything_runs(tmp_envs: Path, capsys) -> None:
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text().replace("ipywidgets==8.1.9", "ipywidgets==8.1.8"))
    plan = make_plan(*specs.resolve("minimal:cpu"), BuildOptions())
    assert isinstance(plan.lock_error, LockError)
    # No engine is contacted: this passes with DOCKER_HOST pointing nowhere (the unit half's setting).
    assert cli.main(["build", "minimal:cpu"]) == 2
    err = capsys.readouterr().err
    assert "is stale" in err
    assert "dockyard lock minimal:cpu" in err
    assert "Traceback" not in err
    assert cli.main(["lock", "--check", "minimal"]) == 1


def test_a_missing_lock_names_the_lock_command(tmp_envs: Path, capsys) -> None:
    copy_spec("minimal", tmp_envs)
    (tmp_envs / "locks" / "minimal-cpu.txt").unlink()
    assert cli.main(["build", "minimal:cpu"]) == 2
    err = capsys.readouterr().err
    assert "has no lock file" in err
    assert "dockyard lock minimal:cpu" in err


def test_a_cpu_lock_with_a_cuda_wheel_is_refused_before_any_download(tmp_envs: Path, capsys) -> None:
    copy_spec("pytorch", tmp_envs)
    cpu_lock = tmp_envs / "locks" / "pytorch-cpu.txt"
    cuda_lock = (tmp_envs / "locks" / "pytorch-cuda.txt").read_text()
    # The CUDA variant's torch and NVIDIA wheels put into the CPU lock (what a resolver without the CPU index
    # or the wheelhouse finds); the header stays, so only the CUDA check can catch it.
    body = cuda_lock.split("\n", 4)[4]
    cpu_lock.write_text("".join(cpu_lock.read_text().splitlines(keepends=True)[:4]) + body)
    plan = make_plan(*specs.resolve("pytorch:cpu"), BuildOptions())
    assert isinstance(plan.lock_error, LockError)
    assert cli.main(["build", "pytorch:cpu"]) == 2
    err = capsys.readouterr().err
    assert "holds CUDA packages: " in err
    assert "nvidia-" in err
    assert "https://download.pytorch.org/whl/cpu" in err
    assert "--wheelhouse" in err


def test_a_hand_edited_lock_entry_is_named(tmp_envs: Path, capsys) -> None:
    copy_spec("minimal", tmp_envs)
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    lock.write_text(lock.read_text() + "requests>=2\n")
    assert cli.main(["build", "minimal:cpu"]) == 2
    err = capsys.readouterr().err
    assert "'requests>=2'" in err
    assert "dockyard lock minimal:cpu" in err


def test_two_clones_give_the_same_tags(tmp_path: Path, monkeypatch) -> None:
    """Different directories, different mtimes, the same content: the same tag for every locked variant."""
    options = BuildOptions(wheelhouse=Path(os.environ.get("DOCKYARD_WHEELHOUSE", "/opt/wheels")))
    tags = []
    for n, mtime in ((1, 1_000_000_000), (2, 1_700_000_000)):
        clone = tmp_path / f"clone{n}" / ("deeper/" * n) / "envs"
        shutil.copytree(REPO / "envs", clone)
        for f in clone.rglob("*"):
            os.utime(f, (mtime, mtime))
        monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(clone))
        found = {}
        for s in specs.load_all():
            assert s.path.is_relative_to(clone)
            for v in s.variants.values():
                plan = make_plan(s, v, options)
                found[v.ref] = (plan.tag, plan.lock_error is None)
        tags.append(found)
    assert tags[0] == tags[1]
    assert sum(ok for _, ok in tags[0].values()) == len(tags[0]) - len(UNLOCKABLE_HERE)


def test_the_tag_covers_the_lock(tmp_envs: Path) -> None:
    copy_spec("minimal", tmp_envs)
    before = make_plan(*specs.resolve("minimal:cpu"), BuildOptions())
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    lock.write_text(lock.read_text().replace("tornado==", "tornado==", 1).replace("# via", "#  via", 1))
    after = make_plan(*specs.resolve("minimal:cpu"), BuildOptions())
    assert after.lock_error is None
    assert after.tag != before.tag


def test_freeze_output_and_locks_compare_canonically_and_venv_bootstrap_counts_only_when_locked() -> None:
    from dockyard.images.lockfile import installed_pins, lock_pins

    lock = load_lock(*specs.resolve("pytorch:cpu"))  # it pins setuptools (torch needs it), not pip
    setuptools = lock.pin("setuptools")
    assert setuptools is not None
    freeze = "\n".join(f"{p.name.replace('-', '_')}=={p.version}" for p in lock.pins) + "\npip==24.0"
    assert installed_pins(freeze, lock) == lock_pins(lock)
    assert installed_pins(freeze + "\nextra==1.0", lock) != lock_pins(lock)
    wrong_setuptools = freeze.replace(f"setuptools=={setuptools.version}", "setuptools==65.5.0")
    assert installed_pins(wrong_setuptools, lock) != lock_pins(lock)
    assert canonicalize_name("Typing_Extensions") == "typing-extensions"


@pytest.mark.index
def test_relocking_after_a_pin_change_clears_the_error_and_changes_the_tag(tmp_envs: Path, capsys) -> None:
    """The real resolver (uv) against the package index, as builds reach it (through the site's proxy)."""
    path = copy_spec("minimal", tmp_envs)
    before = make_plan(*specs.resolve("minimal:cpu"), BuildOptions())
    path.write_text(path.read_text().replace("ipywidgets==8.1.9", "ipywidgets==8.1.8"))
    assert make_plan(*specs.resolve("minimal:cpu"), BuildOptions()).lock_error is not None
    assert cli.main(["lock", "minimal:cpu"]) == 0
    after = make_plan(*specs.resolve("minimal:cpu"), BuildOptions())
    assert after.lock_error is None
    assert after.tag != before.tag
    assert after.lock is not None
    widgets = after.lock.pin("ipywidgets")
    assert widgets is not None
    assert widgets.version == "8.1.8"
    assert "/tmp/" not in after.lock.text
    # Everything the pin change does not force stays at its locked version.
    assert after.lock.pin("ipykernel") == before.lock.pin("ipykernel") if before.lock else False


@pytest.mark.index
def test_upgrade_moves_one_package_and_keeps_the_others(tmp_envs: Path) -> None:
    """An older packaging in the lock stays on a plain relock (uv prefers the locked versions) and moves with
    --upgrade packaging; ipykernel's transitive pins stay put either way."""
    copy_spec("minimal", tmp_envs)
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    original = load_lock(*specs.resolve("minimal:cpu"))
    newest = original.pin("packaging")
    assert newest is not None
    lock.write_text(lock.read_text().replace(f"packaging=={newest.version}", "packaging==24.0"))
    assert cli.main(["lock", "minimal:cpu"]) == 0
    kept = load_lock(*specs.resolve("minimal:cpu"))
    assert kept.pin("packaging") is not None
    assert kept.pin("packaging").version == "24.0"  # type: ignore[union-attr]
    assert cli.main(["lock", "minimal:cpu", "--upgrade", "packaging"]) == 0
    moved = load_lock(*specs.resolve("minimal:cpu"))
    assert moved.pin("packaging") == newest
    assert moved.pin("tornado") == original.pin("tornado")


@pytest.mark.index
def test_upgrade_of_a_package_the_lock_does_not_hold_is_refused_and_writes_nothing(
    tmp_envs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_spec("minimal", tmp_envs)
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    before = lock.read_text()
    assert cli.main(["lock", "minimal:cpu", "--upgrade", "packagingg"]) == 2
    err = capsys.readouterr().err
    assert "--upgrade packagingg" in err
    assert "no lock was written" in err
    assert lock.read_text() == before
