"""The warm pool's pure parts, with no engine: what a pooled container is made of, what its key covers, the
caps' sizes, the settings, and whose a pooled container is (the real-engine behaviour is in test_pool.py)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from dockyard.config import load_settings
from dockyard.errors import ConfigError
from dockyard.kernel.container import RUN_DIR, KernelContainer, container_argv, create_kwargs
from dockyard.kernel.pool import pooled as pool
from dockyard.kernel.reaper import container_owner
from dockyard.labels import LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_DIR, LABEL_POOL_KEY

from .helpers import make_kernel_container

ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def _cold(tmp_path: Path, **changes) -> KernelContainer:
    fields = {
        "image": "dockyard/pytorch:cpu-0123456789ab",
        "env_name": "pytorch",
        "environment": {"FOO": "bar", "JPY_SESSION_NAME": "a.ipynb", "HOME": "/home/dockyard-user"},
        "cwd": tmp_path / "sub",
        "shm_size": "2g",
    }
    return make_kernel_container(tmp_path, **{**fields, **changes})


def test_pooled_container_is_the_cold_one_but_for_the_claim(tmp_path):
    cold = _cold(tmp_path)
    base = pool.template(cold)
    assert base is not None
    assert base.cwd == tmp_path  # the claim moves the kernel to cold.cwd
    assert "JPY_SESSION_NAME" not in base.environment  # the notebook's name is the claimer's
    pooled = dataclasses.replace(
        base, pool_key="k", run_dir=tmp_path / "run", pool_name="dockyard-pool-pytorch-cpu-x", argv=["python", "x"]
    )
    a, b = create_kwargs(cold), create_kwargs(pooled)
    differ = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert differ == {"name", "command", "working_dir", "mounts", "labels", "environment"}
    assert b["environment"] == {k: v for k, v in a["environment"].items() if k != "JPY_SESSION_NAME"}
    assert a["mounts"][0] == b["mounts"][0]  # the workspace, at the same path
    assert (b["mounts"][1]["Target"], b["mounts"][1]["Source"], b["mounts"][1]["ReadOnly"]) == (
        RUN_DIR,
        str(tmp_path / "run"),
        False,
    )
    # Labelled like a kernel (so reaped like one), with a kernel id of its own until a claim renames it.
    assert b["labels"] == {
        **a["labels"],
        LABEL_KERNEL_ID: "pool",
        LABEL_POOL_KEY: "k",
        LABEL_POOL_DIR: str(tmp_path / "run"),
    }


def test_only_ipykernel_argvs_and_shared_connection_files_are_pooled(tmp_path):
    assert pool.kernel_args(container_argv(ARGV)) == ["-f", f"{RUN_DIR}/kernel.json"]
    assert pool.template(_cold(tmp_path, argv=["python", "-c", "print(1)"])) is None
    assert pool.template(_cold(tmp_path, argv=["R", "-m", "ipykernel_launcher"])) is None
    assert pool.template(_cold(tmp_path, connection_file_writable=True)) is None  # CurveZMQ's private copy


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"cwd": Path("/elsewhere")}, True),  # set at the claim
        ({"kernel_id": "ffffffffffff", "owner": "other:2:3"}, True),
        ({"environment": {"FOO": "other", "HOME": "/home/dockyard-user"}}, True),  # applied at the claim
        ({"ports": (6, 7, 8, 9, 10)}, True),  # the pool picks its own
        ({"image": "dockyard/pytorch:cpu-ba9876543210"}, False),
        ({"workspace": Path("/other")}, False),  # bind mounts are fixed at creation
        ({"uid": 1234}, False),
        ({"memory": "8g"}, False),
        ({"network": "bridge"}, False),
        ({"argv": [*container_argv(ARGV), "--debug"]}, False),
        ({"environment": {"FOO": "bar", "PYTHONHASHSEED": "0"}}, False),  # read at interpreter start
        ({"environment": {"FOO": "bar", "OMP_NUM_THREADS": "1"}}, False),  # read at framework import
    ],
)
def test_pool_key_covers_what_is_fixed_at_creation(tmp_path, change, same):
    cold = _cold(tmp_path)
    assert (pool.pool_key(cold) == pool.pool_key(dataclasses.replace(cold, **change))) is same


def test_every_pool_memory_size_the_config_admits_is_read_as_bytes():
    """kernels.pool.max_memory is read by docker.utils.parse_bytes: what the schema admits, it reads."""
    from docker.utils import parse_bytes

    from dockyard.options import SIZE_PATTERN

    for text, expected in (("6g", 6 << 30), ("512M", 512 << 20), ("1.5g", int(1.5 * (1 << 30))), ("100", 100)):
        assert re.fullmatch(SIZE_PATTERN.strip("^$"), text)
        assert parse_bytes(text) == expected
    assert not re.fullmatch(SIZE_PATTERN.strip("^$"), "lots")


def test_pool_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_POOL_SIZE", raising=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("kernels:\n  pool: {size: 2, max_containers: 6, max_memory: 3g}\n")
    monkeypatch.setenv("DOCKYARD_CONFIG", str(cfg))
    opts = load_settings().kernels.pool
    assert (opts.size, opts.max_containers, opts.max_memory) == (2, 6, "3g")
    monkeypatch.setenv("DOCKYARD_POOL_SIZE", "0")
    assert load_settings().kernels.pool.size == 0
    for bad in ("-1", "many", "17", "²"):
        monkeypatch.setenv("DOCKYARD_POOL_SIZE", bad)
        with pytest.raises(ConfigError, match="DOCKYARD_POOL_SIZE") as err:
            load_settings()
        assert "0 (no warm pool) to 16" in str(err.value)
    monkeypatch.delenv("DOCKYARD_POOL_SIZE")
    cfg.write_text("kernels:\n  pool: {sise: 2}\n")
    with pytest.raises(ConfigError, match="sise"):
        load_settings()


def test_pooled_container_owner_is_its_claimer_once_claimed(tmp_path):
    run_dir = tmp_path / "dockyard-pool" / "dockyard-pool-minimal-cpu-1"
    run_dir.mkdir(parents=True, mode=0o700)
    labels = {LABEL_OWNER: "host:1:2", LABEL_POOL_DIR: str(run_dir)}
    assert container_owner(labels) == "host:1:2"  # unclaimed: the filler's
    assert pool._take(run_dir, "host:3:4")
    assert not pool._take(run_dir, "host:5:6")  # never twice
    assert container_owner(labels) == "host:3:4"
    assert container_owner({LABEL_OWNER: "host:7:8"}) == "host:7:8"  # a cold kernel


def test_a_run_dir_open_to_others_is_never_claimed(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)
    assert not pool._take(run_dir, "host:1:2")
    assert not (run_dir / "taken").exists()


def test_the_keeper_does_not_import_the_provisioner():
    """No import cycle: the provisioner uses the keeper, so no import in keeper.py (a function's too) names the
    provisioner; filling for a kernelspec, which needs the provisioner, lives in kernel/pool/fill.py."""
    import ast

    import dockyard.kernel.pool.keeper as keeper

    tree = ast.parse(Path(keeper.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m.endswith("provisioner")], imported
