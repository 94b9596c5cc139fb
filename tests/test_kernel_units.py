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
    check_loopback,
    container_argv,
    create_kwargs,
    kernel_environment,
    workspace_mount,
)
from dockyard.kernel.reaper import owner_id, reap, remove_owned
from dockyard.kernel.target import Request, resolve_target
from dockyard.labels import LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_DIR

from .helpers import REPO, make_kernel_container, write_kernelspec

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
        self.id = name

    def remove(self, force: bool = False) -> None:
        self.removed = True


class _FakeContainers:
    def __init__(self, items: list[_FakeContainer]) -> None:
        self.items = items

    def list(self, all: bool = False, filters: dict | None = None) -> list[_FakeContainer]:
        assert all
        assert filters == {"label": LABEL_KERNEL_ID}
        return [c for c in self.items if not c.removed]

    def get(self, cid: str) -> _FakeContainer:
        for c in self.list(all=True, filters={"label": LABEL_KERNEL_ID}):
            if c.id == cid:
                return c
        raise docker.errors.NotFound(cid)


# The reaper also frees GPU leases (gpu/ledger.py, tests/test_gpu_leases.py): these engines hold none.
_NO_LEASES = type("Api", (), {"containers": staticmethod(lambda **kw: [])})()


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
    client = type("C", (), {"containers": _FakeContainers(fakes), "api": _NO_LEASES})()
    assert sorted(reap(client)) == ["dead", "pid-reused"]
    assert [f.name for f in fakes if f.removed] == ["dead", "pid-reused"]


class _SlowToGo(_FakeContainer):
    """A container whose removal someone else began: the engine answers 409 and it stays listed a while."""

    def __init__(self, name: str, owner: str, polls: int) -> None:
        super().__init__(name, owner)
        self.polls = polls

    def remove(self, force: bool = False) -> None:
        raise docker.errors.APIError("removal in progress", response=type("R", (), {"status_code": 409})())

    @property  # type: ignore[override]
    def removed(self) -> bool:  # listed (and found by get) until polled `polls` times
        self.polls -= 1
        return self.polls < 0

    @removed.setter
    def removed(self, value: bool) -> None:
        pass


def test_gc_returns_only_when_what_it_removes_is_gone():
    dead = subprocess.Popen(["true"])
    dead.wait()
    slow = _SlowToGo("in-progress", f"{socket.gethostname()}:{dead.pid}:12345", polls=5)
    fakes = [_FakeContainer("dead", f"{socket.gethostname()}:{dead.pid}:12345"), slow]
    client = type("C", (), {"containers": _FakeContainers(fakes), "api": _NO_LEASES})()
    assert reap(client) == ["dead"]  # the other one was someone else's removal, but reap waited for it
    assert slow.polls < 0, "reap returned while a container it was removing still existed"


def test_remove_owned_takes_this_process_kernels_and_pool_not_others_claims(tmp_path):
    me, other = owner_id(), f"{socket.gethostname()}:1:1"

    def pooled(name: str, filler: str, taken: str | None) -> _FakeContainer:
        c = _FakeContainer(name, filler)
        run_dir = tmp_path / name
        run_dir.mkdir()
        if taken is not None:
            (run_dir / "taken").write_text(taken)
        c.labels[LABEL_POOL_DIR] = str(run_dir)
        return c

    fakes = [
        _FakeContainer("my-kernel", me),
        _FakeContainer("their-kernel", other),
        pooled("my-unclaimed", me, None),
        pooled("my-drained", me, "drain"),
        pooled("mine-claimed-by-them", me, other),
        pooled("theirs-claimed-by-me", other, me),
    ]
    client = type("C", (), {"containers": _FakeContainers(fakes), "api": _NO_LEASES})()
    assert sorted(remove_owned(client, me)) == ["my-drained", "my-kernel", "my-unclaimed", "theirs-claimed-by-me"]
    assert sorted(f.name for f in fakes if not f.removed) == ["mine-claimed-by-them", "their-kernel"]


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

    kc = make_kernel_container(tmp_path, owner=owner_id())
    args = _create_container_args({**create_kwargs(kc), "version": "1.41"})
    host_config = args["host_config"]
    assert not host_config.get("Privileged")
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["Init"] is True
    assert args["environment"]["TINI_KILL_PROCESS_GROUP"] == "1"
    assert args["name"] == "dockyard-minimal-cpu-01234567"


def test_engine_down_and_config_mistakes_fail_before_any_container(tmp_path, monkeypatch):
    """Engine-free: the kernel start stops at the provisioner's config or at the engine connection."""
    from jupyter_client import KernelManager

    from dockyard.errors import EngineError
    from dockyard.kernel.provisioner import DockerProvisioner

    root = tmp_path / "jupyter"
    cfg = {"env": "minimal", "variant": "cpu"}
    write_kernelspec(root, "dy-minimal", cfg)
    write_kernelspec(root, "dy-typo", {**cfg, "varient": "cpu"})
    write_kernelspec(root, "dy-always", {**cfg, "gpu": "always"})
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    with pytest.raises(EngineError, match="Cannot reach the Docker engine"):
        KernelManager(kernel_name="dy-minimal").start_kernel(cwd=str(tmp_path))
    with pytest.raises(DockyardError, match="varient"):
        KernelManager(kernel_name="dy-typo").start_kernel(cwd=str(tmp_path))
    with pytest.raises(DockyardError, match=r"Invalid value.*gpu is one of auto, off, required"):  # traitlets.Enum
        KernelManager(kernel_name="dy-always").start_kernel(cwd=str(tmp_path))
    with pytest.raises(DockyardError, match="Invalid value"):
        DockerProvisioner(kernel_id="x", env="minimal", cpus="lots")


def test_jupyter_config_files_set_the_provisioners_traits():
    """The traits are config=True: c.DockerProvisioner.gpu = 'off' in jupyter_server_config.py holds for every
    container kernel of that server, and a kernelspec's own config still wins."""
    from traitlets.config import Config

    from dockyard.kernel.provisioner import DockerProvisioner

    config = Config({"DockerProvisioner": {"gpu": "off", "memory": "4g", "startup_timeout": 90.0}})
    p = DockerProvisioner(kernel_id="x", config=config)
    assert (p.gpu, p.memory, p.startup_timeout) == ("off", "4g", 90.0)
    assert DockerProvisioner(kernel_id="x", config=config, gpu="required").gpu == "required"
