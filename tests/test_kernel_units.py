"""The kernel's pure parts, with no engine: container arguments, GPU requests, target resolution, the
reaper's judgement of owners. Fakes stand in for the docker client only where the logic under test
is ours (the real-engine behaviour is in test_kernel_lifecycle.py)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from pathlib import Path

import docker.errors
import pytest

import dockyard.kernel.target
from dockyard.errors import DockyardError
from dockyard.kernel.container import (
    CONNECTION_FILE,
    KernelContainer,
    check_loopback,
    container_argv,
    create_kwargs,
    kernel_environment,
    workspace_mount,
)
from dockyard.kernel.reaper import owner_id, reap
from dockyard.kernel.target import Request, resolve_target
from dockyard.labels import LABEL_KERNEL_ID, LABEL_OWNER

from .helpers import REPO

ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def test_container_arguments_unit(tmp_path):
    assert container_argv(ARGV, ["--debug"]) == ["python", "-m", "ipykernel_launcher", "-f", CONNECTION_FILE, "--debug"]
    with pytest.raises(DockyardError, match="resource_dir"):
        container_argv(["python", "{resource_dir}/x.py"])
    env = kernel_environment(
        {
            "PATH": "/host",
            "HOME": "/root",
            "SECRETISH": "k=abc123",
            "OK": "1",
            "LANG": "de_DE.UTF-8",
            "FOO": "/host",
            "JUPYTER_TOKEN": "t",
        },
        kernelspec_env={"FOO": "/host"},
        image_env=["PATH=/opt/venv/bin", "LANG=C.UTF-8"],
        secret="abc123",
        user="alice",
    )
    assert env == {"OK": "1", "FOO": "/host", "HOME": "/home/dockyard-user", "USER": "alice", "LOGNAME": "alice"}
    for bad in ("0.0.0.0", "192.168.1.5"):
        with pytest.raises(DockyardError, match="loopback"):
            check_loopback(bad)
    check_loopback("127.0.0.1")
    for system in ("/", "/etc", "/usr/lib"):
        with pytest.raises(DockyardError, match="system directory"):
            workspace_mount(Path(system), None)
    with pytest.raises(DockyardError, match="does not exist"):
        workspace_mount(tmp_path / "missing", None)
    assert workspace_mount(tmp_path, None) == tmp_path.resolve()


class _FakeContainer:
    def __init__(self, name: str, owner: str) -> None:
        self.name, self.labels, self.removed = name, {LABEL_KERNEL_ID: name, LABEL_OWNER: owner}, False

    def remove(self, force: bool = False) -> None:
        self.removed = True


class _FakeContainers:
    def __init__(self, items: list[_FakeContainer]) -> None:
        self.items = items

    def list(self, all: bool = False, filters: dict | None = None) -> list[_FakeContainer]:
        assert all
        assert filters == {"label": LABEL_KERNEL_ID}
        return self.items


def test_reaper_judges_owners_by_pid_and_start_time():
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    host = socket.gethostname()
    fakes = [
        _FakeContainer("alive", owner_id()),
        _FakeContainer("other-host", f"not-{host}:{dead_pid.pid}:1"),
        _FakeContainer("dead", f"{host}:{dead_pid.pid}:12345"),
        _FakeContainer("pid-reused", f"{host}:{os.getpid()}:1"),  # our PID, someone else's start time
        _FakeContainer("unlabelled", "garbage"),
    ]
    client = type("C", (), {"containers": _FakeContainers(fakes)})()
    assert sorted(reap(client)) == ["dead", "pid-reused"]
    assert [f.name for f in fakes if f.removed] == ["dead", "pid-reused"]


def test_auto_build_builds_the_missing_image(settings, tmp_envs, monkeypatch):
    """With kernels.auto_build the provisioner builds instead of failing (the build itself is faked here:
    test_build covers real builds; this checks the plan handed over is the one whose tag was missing)."""
    (tmp_envs / "kerneltest.yaml").write_text(
        (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: kerneltest")
    )
    plans = []
    image = type("I", (), {"labels": {}, "attrs": {"Config": {"Env": []}}})()

    def fake_build(client, plan, options):
        plans.append(plan)
        return type("R", (), {"tag": plan.tag})()

    def get(tag):
        if not plans:
            raise docker.errors.ImageNotFound(tag)
        return image

    monkeypatch.setattr(dockyard.kernel.target, "build", fake_build)
    fake = type("C", (), {"images": type("Is", (), {"get": staticmethod(get)})(), "info": staticmethod(dict)})()
    auto = dataclasses.replace(settings, kernels=dataclasses.replace(settings.kernels, auto_build=True))
    target = resolve_target(fake, auto, Request(env="kerneltest", variant="cpu"))
    assert [p.variant.ref for p in plans] == ["kerneltest:cpu"]
    assert target.image == plans[0].tag


def test_container_create_args_are_hardened_and_signal_the_process_group(tmp_path):
    """What containers.create() sends for a kernel: no privileges, init as PID 1, tini told to signal the
    kernel's whole process group (the interrupt of a cell's children, see test_kernel_lifecycle)."""
    from docker.models.containers import _create_container_args

    kc = KernelContainer(
        image="dockyard/minimal:cpu-0123456789ab",
        env_name="minimal",
        variant="cpu",
        kernel_id="0123456789ab",
        owner=owner_id(),
        argv=container_argv(ARGV),
        environment={},
        workspace=tmp_path,
        cwd=tmp_path,
        connection_file=tmp_path / "k.json",
        ports=(1, 2, 3, 4, 5),
        uid=1000,
        gid=1000,
    )
    args = _create_container_args({**create_kwargs(kc), "version": "1.41"})
    host_config = args["host_config"]
    assert not host_config.get("Privileged")
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["Init"] is True
    assert args["environment"]["TINI_KILL_PROCESS_GROUP"] == "1"
    assert args["name"] == "dockyard-minimal-cpu-01234567"
