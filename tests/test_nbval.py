"""The example notebooks, validated by nbval in the container kernels: what a user sees is what we test.

nbval runs in a subprocess (as a user would run it) with the dockyard kernelspecs installed into a temp
prefix on JUPYTER_PATH; the subprocess starts the kernel, so the kernel containers carry its PID as owner
and the test can check that none outlives the run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO
from .jupyter_helpers import install_kernelspecs, jupyter_env, remove_leftovers

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
    cmd = [
        sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", kernel,
        "--nbval-kernel-startup-timeout", "120", "-p", "no:cacheprovider", "-q",
        *(str(NOTEBOOKS / f) for f in folders),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=jupyter_env(jupyter_path, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, _ = proc.communicate()
        leftovers = remove_leftovers(docker_client, proc.pid, wait=10)
    assert proc.returncode == 0, f"nbval failed in {kernel}:\n{out[-6000:]}"
    assert " passed" in out and "skipped" not in out.splitlines()[-1]
    assert not leftovers, f"kernel containers left behind: {leftovers}"
    # The notebooks clean up after themselves: nothing new next to them.
    for folder in folders:
        assert sorted(p.name for p in (NOTEBOOKS / folder).iterdir() if not p.name.startswith(".")) == sorted(
            p.name for p in (NOTEBOOKS / folder).glob("*.ipynb")
        )
