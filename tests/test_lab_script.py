"""The README's first command (scripts/lab.sh --local-base) stays true: on this registry-less machine it
records the site settings, finds the images the suite built (same content tags) and installs the kernels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager

from .helpers import HOST_CA, LOCAL_BASE, REPO, UPSTREAM_BASE

pytestmark = [pytest.mark.engine, pytest.mark.slow]


SYS_PREFIX_KERNELS = Path(sys.prefix) / "share" / "jupyter" / "kernels"  # where lab.sh installs them


def _sys_prefix_dockyard_kernels() -> set[str]:
    return {p.name for p in SYS_PREFIX_KERNELS.glob("dockyard-*")}


def test_lab_script_sets_up_the_main_job(built, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("lab.sh sets up the machine as root")
    tags = {ref: built(ref).tag for ref in ("minimal:cpu", "pytorch:cpu")}
    before = _sys_prefix_dockyard_kernels()
    # A user's environment: none of the test suite's DOCKYARD_* settings, an empty config home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    try:
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "lab.sh"), "--local-base", "--no-lab"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
        config = yaml.safe_load((tmp_path / "config" / "dockyard" / "config.yaml").read_text())
        assert config["base_overrides"] == {UPSTREAM_BASE: LOCAL_BASE}
        assert config["build"]["ca_certs"] == [HOST_CA]
        assert config["build"]["pull"] == "never"
        for tag in tags.values():  # the images the suite built: nothing was rebuilt
            assert f"up to date {tag}" in out, out[-5000:]
        installed = KernelSpecManager().find_kernel_specs()
        assert {"dockyard-minimal-cpu", "dockyard-pytorch-cpu"} <= set(installed)
    finally:
        for name in _sys_prefix_dockyard_kernels() - before:  # leave the host's Jupyter as it was
            shutil.rmtree(SYS_PREFIX_KERNELS / name)
