"""The example notebooks, validated by nbval in their environments' container kernels: what a user sees is what we
test. Every notebook runs as the unprivileged test account (tests/helpers.nbval_as_test_user); the common one also
as the invoking user, where the kernel containers carry nbval's PID as owner and none may outlive the run. The
pipeline's client notebook needs the running stack: tests/test_compose_engine.py runs it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from .helpers import REPO, install_kernelspecs, jupyter_env, nbval_as_test_user, remove_leftovers, run_and_clean

NOTEBOOKS = REPO / "notebooks"


pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    return install_kernelspecs(tmp_path_factory.mktemp("kernels-prefix"))


# Every example notebook, in its own environment's container kernel. TensorFlow and JAX images are built for this
# (CPU variants; their builds add a few minutes to a CI run from scratch, see docs/compose.md).
FRAMEWORK_NOTEBOOKS = [
    pytest.param("minimal:cpu", ["common"], id="minimal-cpu"),
    pytest.param("pytorch:cpu", ["common", "pytorch"], id="pytorch-cpu", marks=pytest.mark.slow),
    pytest.param("tensorflow:cpu", ["common", "tensorflow"], id="tensorflow-cpu", marks=pytest.mark.slow),
    pytest.param("jax:cpu", ["common", "jax"], id="jax-cpu", marks=pytest.mark.slow),
]


@pytest.mark.timeout(1800)  # includes building the image from scratch (tensorflow:cpu: minutes on 2 cores)
@pytest.mark.parametrize(("ref", "folders"), FRAMEWORK_NOTEBOOKS)
def test_notebooks_pass_nbval_as_the_test_user(ref, folders, user_python, built, docker_client):
    """CI runs as root, which hides UID bugs: nbval runs as the unprivileged account, the kernel as its UID."""
    built(ref)  # the kernel would fail with "image not built" otherwise; build (or find) it first
    out = nbval_as_test_user(user_python, docker_client, ref, folders)
    assert " passed" in out


def test_notebooks_directory_has_a_test_for_every_folder():
    # pipeline: test_compose_engine runs it against the stack; panel: the test below (its outputs depend on the host).
    covered = {f for p in FRAMEWORK_NOTEBOOKS for f in p.values[1]} | {"pipeline", "panel"}
    assert {p.name for p in NOTEBOOKS.iterdir() if p.is_dir()} == covered


def _nbval_as_root(docker_client, jupyter_path: Path, tmp_path: Path, folder: str, mode: str) -> str:
    """nbval (`mode`: --nbval or --nbval-lax) on a copy of notebooks/FOLDER in minimal:cpu's container kernel, as
    the invoking user: its kernel containers carry nbval's PID as owner, and none may outlive the run."""
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS / folder, work / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    cmd = [
        sys.executable, "-m", "pytest", mode, "--nbval-kernel-name", "dockyard-minimal-cpu",
        "--nbval-kernel-startup-timeout", "120", "-p", "no:cacheprovider", "-q", str(work / folder),
    ]  # fmt: skip
    code, out, leftovers = run_and_clean(
        cmd,
        timeout=600,
        clean=lambda pid: remove_leftovers(docker_client, pid, wait=10),
        cwd=work,
        env=jupyter_env(jupyter_path, tmp_path / "jupyter"),
    )
    assert code == 0, f"nbval failed:\n{out[-6000:]}"
    assert not leftovers, f"kernel containers left behind: {leftovers}"
    return out


def test_common_notebooks_pass_nbval_as_root_and_leave_no_kernel(built, docker_client, jupyter_path, tmp_path):
    """The same run as the invoking user (root in CI), where the kernel containers carry nbval's PID as owner."""
    built("minimal:cpu")
    out = _nbval_as_root(docker_client, jupyter_path, tmp_path, "common", "--nbval")
    assert " passed" in out
    assert sorted(p.name for p in (tmp_path / "notebooks" / "common").iterdir()) == ["environment.ipynb"]


def test_panel_notebook_runs_in_a_container_kernel(built, docker_client, jupyter_path, tmp_path):
    """notebooks/panel in minimal:cpu's container kernel: the panel (anywidget, a kit file in the image) displays
    and the facts cell runs. Lax: the panel's rows depend on what this host has built, so no outputs are stored;
    Build and Switch themselves are exercised in the browser (test_panel_browser.py)."""
    built("minimal:cpu")
    out = _nbval_as_root(docker_client, jupyter_path, tmp_path, "panel", "--nbval-lax")
    assert "2 passed" in out  # both code cells ran without an error
