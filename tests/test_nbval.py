"""The example notebooks, validated by nbval in the container kernels: what a user sees is what we test.

nbval runs in a subprocess (as a user would run it) with the dockyard kernelspecs installed into a temp
prefix on JUPYTER_PATH; the subprocess starts the kernel, so the kernel containers carry its PID as owner
and the test can check that none outlives the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import REPO, TEST_USER, install_kernelspecs, jupyter_env, remove_leftovers, remove_mounting, run_and_clean

NOTEBOOKS = REPO / "notebooks"


pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    return install_kernelspecs(tmp_path_factory.mktemp("kernels-prefix"))


@pytest.mark.parametrize(
    ("ref", "folders"),
    [
        pytest.param("minimal:cpu", ["common"], id="minimal-cpu"),
        pytest.param("pytorch:cpu", ["common", "pytorch"], id="pytorch-cpu", marks=pytest.mark.slow),
    ],
)
def test_notebooks_pass_nbval_in_the_container_kernel(ref, folders, built, docker_client, jupyter_path, tmp_path):
    built(ref)  # the kernel would fail with "image not built" otherwise; build (or find) it first
    kernel = "dockyard-" + ref.replace(":", "-")
    # A copy, so the run writes nothing into the checkout and works for a user who may not write there.
    work = tmp_path / "notebooks"
    for folder in folders:
        shutil.copytree(NOTEBOOKS / folder, work / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    cmd = [
        sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", kernel,
        "--nbval-kernel-startup-timeout", "120", "-p", "no:cacheprovider", "-q",
        *(str(work / f) for f in folders),
    ]  # fmt: skip
    code, out, leftovers = run_and_clean(
        cmd,
        timeout=600,
        clean=lambda pid: remove_leftovers(docker_client, pid, wait=10),
        cwd=work,
        env=jupyter_env(jupyter_path, tmp_path / "jupyter"),
    )
    assert code == 0, f"nbval failed in {kernel}:\n{out[-6000:]}"
    assert " passed" in out
    assert "skipped" not in out.splitlines()[-1]
    assert not leftovers, f"kernel containers left behind: {leftovers}"
    # The notebooks clean up after themselves: nothing new next to them.
    for folder in folders:
        assert sorted(p.name for p in (work / folder).iterdir()) == sorted(
            p.name for p in (NOTEBOOKS / folder).glob("*.ipynb")
        )


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's temp root is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-nbval-user-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_common_notebooks_pass_as_an_unprivileged_user(user_python, user_dir, built, docker_client):
    """CI runs as root, which hides UID bugs: the kernel must write the notebook's folder and its home as the user."""
    built("minimal:cpu")
    base = user_dir
    shutil.copytree(NOTEBOOKS / "common", base / "work" / "common")
    prefix = base / "prefix"
    subprocess.run(
        [str(user_python), "-m", "dockyard", "kernels", "install", "minimal:cpu", "--prefix", str(prefix)],
        check=True,
        capture_output=True,
    )
    (base / "home").mkdir()
    subprocess.run(["chown", "-R", f"{TEST_USER}:{TEST_USER}", str(base)], check=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base / "home"), "JUPYTER_PATH": str(prefix / "share" / "jupyter")}
    env |= {k: v for k, v in os.environ.items() if k.startswith("DOCKYARD_")}  # the site settings
    runuser = shutil.which("runuser") or "runuser"  # the env's PATH has no sbin: resolve it here
    nbval = ["--nbval", "--nbval-kernel-name", "dockyard-minimal-cpu", "-p", "no:cacheprovider", "-q", "common"]
    cmd = [runuser, "-u", TEST_USER, "--", str(user_python), "-m", "pytest", *nbval]
    # runuser forks, so the owner label names its child: find this run's kernels by their workspace mount.
    code, out, leftovers = run_and_clean(
        cmd, timeout=300, clean=lambda _pid: remove_mounting(docker_client, base), cwd=base / "work", env=env
    )
    assert code == 0, f"nbval failed as {TEST_USER}:\n{out[-6000:]}"
    assert not leftovers, f"kernel containers left behind: {leftovers}"
    assert [p.name for p in (base / "work" / "common").iterdir()] == ["environment.ipynb"]
