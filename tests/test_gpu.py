"""GPU truth: detection from recorded `docker info` answers of real setups, the device requests sent, the
CUDA needs check, the optional-GPU fallback, dev container parity, and no GPU variables that defeat gpu: off.

No GPU exists on the machines these tests run on, so GPU setups are replayed: each tests/data/gpu/*.json is
a `docker info` answer of one setup, and RecordedEngine answers a container start the way that setup's
dockerd does (moby's own error texts). Everything from the answer on (reading info, choosing and ordering
requests, classifying errors, the verdict, the kernel's create arguments) is the real code. The engine
tests at the end run the probe and the fallback against the real (GPU-less) daemon.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from docker.models.containers import _create_container_args
from docker.types import DeviceRequest

from dockyard import gpu, specs
from dockyard.cli import doctor_cmd
from dockyard.errors import DockyardError, SpecError
from dockyard.frontends import devcontainer
from dockyard.gpu import probe, verdict
from dockyard.kernel.container import KernelContainer, create_kwargs, gpu_environment, kernel_banner_args
from dockyard.kernel.provisioner import DockerProvisioner
from dockyard.kernel.target import KernelTarget, Request, resolve_target
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import REPO, make_kernel_container

DATA = Path(__file__).with_name("data") / "gpu"
GPUS = {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
CDI = {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": [], "Options": {}}

# moby's answers to a start with a device request it cannot serve (daemon/devices.go, the NVIDIA hook/CLI).
NO_DRIVER = 'could not select device driver "" with capabilities: [[gpu]]'
WSL_NO_ADAPTER = (
    "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create "
    "failed: unable to start container process: error during container init: error running prestart hook #0: "
    "exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization "
    "error: WSL environment detected but no adapters were found: unknown"
)
NO_LIBNVML = (
    "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create "
    "failed: unable to start container process: error during container init: error running prestart hook #0: "
    "exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization "
    "error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory: "
    "unknown"
)

# setup → (what each request gets: an error text, or nvidia-smi's output), expected verdict, requests sent
SETUPS: dict[str, dict[str, Any]] = {
    "runtime-registered": {
        "answers": {"--gpus": "580.95.05, 8.9, NVIDIA GeForce RTX 4090"},
        "usable": True,
        "method": "--gpus",
        "tried": [[GPUS]],
    },
    "hook-only-cdi-off": {  # no runtime entry, CDI off: --gpus works through the hook on dockerd's PATH
        "answers": {"--gpus": "550.127.05, 8.6, NVIDIA RTX A6000"},
        "usable": True,
        "method": "--gpus",
        "tried": [[GPUS]],
    },
    "cdi-discovered": {  # no hook on dockerd's PATH; the daemon lists CDI devices
        "answers": {"--gpus": NO_DRIVER, "cdi": "570.133.20, 9.0, NVIDIA H100 80GB HBM3"},
        "usable": True,
        "method": "cdi",
        "tried": [[GPUS], [CDI]],
    },
    "docker-desktop-phantom": {  # 'nvidia' runtime listed, no NVIDIA hardware
        "answers": {"--gpus": WSL_NO_ADAPTER},
        "usable": False,
        "method": None,
        "tried": [[GPUS]],
        "reason": "Docker Desktop lists an 'nvidia' runtime",
    },
    "remote-engine": {  # DOCKER_HOST=ssh://...: the local disk says nothing about that daemon
        "docker_host": "ssh://me@gpu-server",
        "answers": {"--gpus": "535.230.02, 7.0, Tesla V100-SXM2-32GB"},
        "usable": True,
        "method": "--gpus",
        "tried": [[GPUS]],
    },
    "toolkit-no-driver": {  # runtime registered, no driver loaded
        "answers": {"--gpus": NO_LIBNVML},
        "usable": False,
        "method": None,
        "tried": [[GPUS]],
        "reason": "could not use it",
    },
}


def recorded_info(setup: str) -> dict[str, Any]:
    return json.loads((DATA / f"{setup}.json").read_text())


class _Image:
    labels: dict[str, str] = {}  # noqa: RUF012
    attrs: dict[str, Any] = {"Config": {"Env": ["PATH=/opt/dockyard/venv/bin:/usr/bin"]}}  # noqa: RUF012
    tags = ["dockyard/minimal:cuda-000000000000"]  # noqa: RUF012


class _Container:
    def __init__(self, engine: RecordedEngine, kwargs: dict[str, Any]) -> None:
        self.engine, self.kwargs = engine, kwargs
        self.id = f"c{len(engine.created)}"
        self.labels = kwargs.get("labels") or {}
        self.removed = False

    def _answer(self) -> str | None:
        reqs = self.kwargs.get("device_requests") or []
        if not reqs:
            return None
        method = "cdi" if reqs[0].get("Driver") == "cdi" else "--gpus"
        return self.engine.answers.get(method, NO_DRIVER)

    def start(self) -> None:
        answer = self._answer()
        if answer is not None and not answer[0].isdigit():  # an error text, not nvidia-smi rows
            raise docker.errors.APIError("500 Server Error", explanation=answer)

    def wait(self, timeout: int | None = None) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, **_: Any) -> bytes:
        return (self._answer() or "").encode()

    def remove(self, force: bool = False) -> None:
        self.removed = True


class RecordedEngine:
    """A docker client that answers like the recorded setup's daemon: info, and container starts."""

    def __init__(self, info: dict[str, Any], answers: dict[str, str]) -> None:
        self._info, self.answers = info, answers
        self.created: list[_Container] = []
        engine = self

        class _Containers:
            def create(self, image: str | None = None, command: Any = None, **kwargs: Any) -> _Container:
                c = _Container(engine, {**kwargs, "command": command})
                engine.created.append(c)
                return c

            def get(self, name: str) -> _Container:
                raise docker.errors.NotFound(name)

        class _Images:
            def get(self, ref: str) -> _Image:
                return _Image()

            def list(self, **_: Any) -> list[_Image]:
                return [_Image()]

        class _Api:
            def remove_container(self, cid: str, force: bool = False) -> None:
                for c in engine.created:
                    if c.id == cid:
                        c.removed = True

        self.containers, self.images, self.api = _Containers(), _Images(), _Api()

    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def sent(self) -> list[list[dict]]:
        """The device requests of every container created, as the API receives them."""
        return [[dict(r) for r in c.kwargs.get("device_requests") or []] for c in self.created]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test starts without a cached verdict (file or memo)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(verdict, "_memo", {})


def _scenario(setup: str, monkeypatch) -> tuple[RecordedEngine, dict[str, Any]]:
    s = SETUPS[setup]
    if s.get("docker_host"):
        monkeypatch.setenv("DOCKER_HOST", s["docker_host"])
    return RecordedEngine(recorded_info(setup), s["answers"]), s


# --- detection ---------------------------------------------------------------------------------


def test_every_recorded_setup_has_a_scenario():
    assert {p.stem for p in DATA.glob("*.json")} == set(SETUPS)


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_verdict_and_requests_tried(setup, monkeypatch):
    engine, s = _scenario(setup, monkeypatch)
    v = gpu.assess(engine, engine.info())
    assert (v.usable, v.method) == (s["usable"], s["method"]), v.reason
    assert engine.sent == s["tried"]  # what was asked, in order; nothing more once one works
    assert all(c.removed for c in engine.created)  # probe containers never stay
    assert v.reason
    if not v.usable:
        assert s["reason"] in v.reason
        assert v.fix
        assert v.device_requests == []
    else:
        assert v.gpus, "nvidia-smi's rows are parsed"


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_kernel_create_args_carry_the_verdicts_request(setup, monkeypatch, settings, tmp_path):
    engine, s = _scenario(setup, monkeypatch)
    target = resolve_target(engine, settings, Request(env="minimal", variant="cuda"))
    expected = {"--gpus": [GPUS], "cdi": [CDI], None: []}[s["method"]]
    args = _create_container_args({**create_kwargs(_container(target, tmp_path)), "version": "1.44"})
    assert args["host_config"].get("DeviceRequests", []) == expected
    env = [f"{k}={v}" for k, v in args["environment"].items()]
    if expected:
        assert not any(e.startswith("NVIDIA_VISIBLE_DEVICES=") for e in env)  # dockerd derives it from the request
    else:
        assert "NVIDIA_VISIBLE_DEVICES=void" in env
        assert "runs on the CPU" in target.notices[0]
    # gpu: off never asks the engine and never attaches a GPU, whatever the setup
    off = resolve_target(engine, settings, Request(env="minimal", variant="cuda", gpu="off"))
    assert off.device_requests == []


def test_verdict_is_cached_per_engine_and_refreshed_on_change(monkeypatch):
    engine, _ = _scenario("hook-only-cdi-off", monkeypatch)
    info = engine.info()
    first = gpu.assess(engine, info)
    verdict._memo.clear()  # the file cache alone answers now
    assert gpu.assess(engine, info) == first
    assert len(engine.created) == 1
    changed = {**info, "Runtimes": {**info["Runtimes"], "nvidia": {"path": "nvidia-container-runtime"}}}
    gpu.assess(engine, changed)  # a newly registered runtime is a different engine state: probed again
    assert len(engine.created) == 2
    gpu.forget(changed)
    gpu.assess(engine, changed)
    assert len(engine.created) == 3
    gpu.assess(engine, info, fresh=True)  # doctor always probes
    assert len(engine.created) == 4


def test_stale_verdicts_expire(monkeypatch):
    engine, _ = _scenario("runtime-registered", monkeypatch)
    gpu.assess(engine, engine.info())
    verdict._memo.clear()
    monkeypatch.setattr(verdict, "CACHE_TTL", -1.0)
    gpu.assess(engine, engine.info())
    assert len(engine.created) == 2


def test_remote_engine_never_reads_the_local_disk(monkeypatch, tmp_path):
    """The old detection globbed CDISpecDirs on this machine; with ssh:// those dirs are the remote's."""
    info = recorded_info("remote-engine")
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n")
    info["CDISpecDirs"] = [str(tmp_path)]  # even a local dir that holds an NVIDIA spec does not count
    view = gpu.read_info(info)
    assert view.cdi == "on"
    assert view.cdi_gpus == ()
    assert [m for m, _ in view.candidates()] == ["--gpus"]


def test_engine_view_reads_cdi_state():
    assert gpu.read_info({}).cdi == "unsupported"  # API < 1.44
    assert gpu.read_info({"CDISpecDirs": []}).cdi == "off"
    assert gpu.read_info({"CDISpecDirs": None}).cdi == "off"
    view = gpu.read_info(recorded_info("cdi-discovered"))
    assert view.cdi == "on"
    assert "nvidia.com/gpu=all" in view.cdi_gpus
    assert "CDI on" in view.summary()
    assert gpu.read_info(recorded_info("docker-desktop-phantom")).docker_desktop


def test_no_image_to_probe_with_is_said_and_not_cached(monkeypatch):
    engine, _ = _scenario("runtime-registered", monkeypatch)
    monkeypatch.setattr(engine.images, "list", lambda **_: [])
    monkeypatch.setattr(engine.images, "get", lambda ref: (_ for _ in ()).throw(docker.errors.ImageNotFound(ref)))
    v = gpu.assess(engine, engine.info())
    assert not v.usable
    assert "no dockyard image" in v.reason
    assert "dockyard build" in v.fix
    assert verdict._memo == {}


def test_gpu_errors_are_told_from_other_errors():
    for text in (NO_DRIVER, WSL_NO_ADAPTER, NO_LIBNVML, 'could not select device driver "cdi" with capabilities: []'):
        assert gpu.is_gpu_error(text)
    for text in ('invalid mount config for type "bind": bind source path does not exist', "No such image", ""):
        assert not gpu.is_gpu_error(text)


# --- policy ------------------------------------------------------------------------------------


def test_device_requests_modes():
    usable = verdict.Verdict(True, "--gpus", "ok")
    cdi = verdict.Verdict(True, "cdi", "ok")
    none = verdict.Verdict(False, None, "dockerd serves no GPU requests", fix="install the toolkit")
    assert gpu.device_requests("optional", "auto", usable, "t:cuda") == [
        DeviceRequest(count=-1, capabilities=[["gpu"]])
    ]
    assert gpu.device_requests("optional", "auto", cdi, "t:cuda") == [
        DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])
    ]
    assert gpu.device_requests("required", "required", usable, "t:cuda") != []
    assert gpu.device_requests("optional", "auto", none, "t:cuda") == []
    assert gpu.device_requests("optional", "off", usable, "t:cuda") == []
    assert gpu.device_requests("none", "auto", usable, "t:cpu") == []
    for env_gpu, mode, v in (("optional", "required", none), ("required", "auto", none), ("none", "required", usable)):
        with pytest.raises(DockyardError) as err:
            gpu.device_requests(env_gpu, mode, v, "t:x")
        assert err.value.fix
    with pytest.raises(DockyardError, match="dockerd serves no GPU requests") as err:
        gpu.device_requests("required", "auto", none, "t:cuda")
    assert "install the toolkit" in err.value.fix


# --- nvidia-smi and CUDA needs -----------------------------------------------------------------


def test_parse_smi():
    out = "580.95.05, 8.9, NVIDIA GeForce RTX 4090\n\n535.230.02, 7.0, Tesla V100-SXM2-32GB\n"
    assert gpu.parse_smi(out) == [
        gpu.GpuInfo("580.95.05", "8.9", "NVIDIA GeForce RTX 4090"),
        gpu.GpuInfo("535.230.02", "7.0", "Tesla V100-SXM2-32GB"),
    ]
    assert gpu.parse_smi('Field "compute_cap" is not a valid field to query.\n') == []  # drivers < 510
    assert gpu.parse_smi("[N/A], [N/A], NVIDIA A100\n") == []
    assert gpu.parse_smi("") == []


NEEDS_13 = gpu.CudaNeeds(13, "580.65.06", "7.5")
NEEDS_12 = gpu.CudaNeeds(12, "525.60.13", "7.0")


@pytest.mark.parametrize(
    ("needs", "row", "problems"),
    [
        (NEEDS_13, "580.95.05, 8.9, RTX 4090", []),
        (NEEDS_13, "580.65.06, 7.5, T4", []),  # exactly the minimums
        (NEEDS_13, "570.133.20, 9.0, H100", ["driver 570.133.20", "install NVIDIA driver 580 or newer"]),
        (NEEDS_13, "550.127.05, 8.6, A6000", ["driver ≥ 580.65.06", "demo:cuda-12"]),
        (NEEDS_13, "580.95.05, 7.0, V100", ["compute capability 7.0", "older CUDA"]),
        (NEEDS_13, "535.230.02, 6.1, GTX 1080", ["driver 535.230.02", "compute capability 6.1"]),
        (NEEDS_12, "535.230.02, 7.0, V100", []),
        (NEEDS_12, "520.61.05, 8.6, A10", ["driver ≥ 525.60.13"]),
    ],
)
def test_cuda_needs_check(needs, row, problems):
    found = gpu.check(needs, gpu.parse_smi(row), "demo:cuda", ["demo:cuda-12"] if needs.major == 13 else [])
    text = " ".join(p + " " + f for p, f in found)
    for expected in problems:
        assert expected in text
    assert bool(found) == bool(problems)


def test_cuda_major_is_derived_from_the_wheels():
    assert gpu.derive_major(["torch==2.13.0"]) == 13  # PyPI's torch 2.13 is CUDA 13
    assert gpu.derive_major(["torch==2.13.0"], ["https://download.pytorch.org/whl/cu128"]) == 12
    assert gpu.derive_major(["torch==2.13.0+cu126"]) == 12
    assert gpu.derive_major(["torch==2.13.0"], ["https://download.pytorch.org/whl/cpu"]) is None
    assert gpu.derive_major(["torch==2.1.0"]) is None  # a release dockyard has no table entry for
    assert gpu.derive_major(["jax[cuda12]==0.10.2"]) == 12
    assert gpu.derive_major(["jax[cuda13]==0.10.2"]) == 13
    assert gpu.derive_major(["tensorflow[and-cuda]==2.21.0"]) == 12
    assert gpu.derive_major(["nvidia-cublas-cu12==12.8.4.1"]) == 12
    assert gpu.derive_major(["jax[cuda12]==0.10.2", "nvidia-cublas-cu13==13.0.0"]) is None  # a mix: declare it
    assert gpu.derive_major(["ipykernel==7.4.0"]) is None


def test_shipped_cuda_variants_declare_what_their_wheels_need():
    needs = {v.ref: v.cuda for s in specs.load_all() for v in s.variants.values()}
    assert needs["pytorch:cuda"] == gpu.CudaNeeds(13, "580.65.06", "7.5")
    assert needs["pytorch:cuda-12"] == gpu.CudaNeeds(12, "525.60.13", "7.0")
    assert needs["tensorflow:cuda"].major == 12
    assert needs["jax:cuda"].major == 12
    assert needs["minimal:cuda"] is None  # no framework, nothing to check but the GPU itself
    assert all(needs[r] is None for r in needs if r.endswith(":cpu"))


GOOD = textwrap.dedent(
    """\
    name: demo
    display_name: Demo
    description: A test environment.
    framework: {name: pytorch, version: "2.13.0", package: torch}
    python: "3.11"
    python_packages: [ipykernel==7.4.0, ipywidgets==8.1.9]
    variants:
      cpu:
        base: python:3.11-slim-bookworm
        python_packages: [torch==2.13.0]
      cuda:
        base: python:3.11-slim-bookworm
        python_packages: [torch==2.13.0]
    """
)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  cuda:\n    base: python:3.11-slim-bookworm\n",
            "  cuda:\n    base: python:3.11-slim-bookworm\n    cuda: {major: 12}\n",
            ["declares cuda.major 12, but its pins pull CUDA 13", "set cuda.major: 13"],
        ),
        (
            "  cpu:\n    base: python:3.11-slim-bookworm\n",
            "  cpu:\n    base: python:3.11-slim-bookworm\n    cuda: {major: 13}\n",
            ["gpu: none but declares cuda needs"],
        ),
        (
            "  cuda:\n    base: python:3.11-slim-bookworm\n",
            "  cuda:\n    base: python:3.11-slim-bookworm\n    env: {NVIDIA_VISIBLE_DEVICES: all}\n",
            ["variants.cuda.env sets NVIDIA_VISIBLE_DEVICES", "even with gpu: off", "remove NVIDIA_VISIBLE_DEVICES"],
        ),
        (
            "variants:\n",
            "kernel: {env: {NVIDIA_DRIVER_CAPABILITIES: all}}\nvariants:\n",
            ["kernel.env sets NVIDIA_DRIVER_CAPABILITIES"],
        ),
        (
            "  cuda:\n    base: python:3.11-slim-bookworm\n    python_packages: [torch==2.13.0]\n",
            "  cuda:\n    base: python:3.11-slim-bookworm\n    python_packages: [torch==2.13.0]\n"
            "    pip_extra_index_urls: [https://example.invalid/whl/cu999]\n",
            ["does not know what CUDA 99 needs", "declare cuda.min_driver"],
        ),
        (
            "  cuda:\n    base: python:3.11-slim-bookworm\n",
            '  cuda:\n    base: python:3.11-slim-bookworm\n    cuda: {min_driver: "r580"}\n',
            ['variants.cuda.cuda.min_driver is "r580"', "a driver version such as '580.65.06'"],
        ),
    ],
    ids=[
        "major-mismatch",
        "cuda-on-cpu",
        "nvidia-visible-devices",
        "kernel-env-capabilities",
        "unknown-major",
        "driver",
    ],
)
def test_spec_gpu_errors(tmp_path, old, new, message):
    assert old in GOOD
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        specs.load(path)
    text = err.value.text
    assert str(path) in text
    for m in message:
        assert m in text, text
    assert "Traceback" not in text


def test_declared_needs_override_the_defaults(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD + '    cuda: {min_compute_capability: "8.0"}\n')
    assert specs.load(path).variant("cuda").cuda == gpu.CudaNeeds(13, "580.65.06", "8.0")


# --- kernel start: needs checked, optional fallback -------------------------------------------


def test_kernel_start_checks_the_cuda_needs(monkeypatch, settings):
    engine, _ = _scenario("hook-only-cdi-off", monkeypatch)  # driver 550: too old for CUDA 13
    t = resolve_target(engine, settings, Request(env="pytorch", variant="cuda"))
    assert t.device_requests  # optional: the GPU still goes in (nvidia-smi works), the user is told why it is idle
    assert any("driver 550.127.05" in n and "pytorch:cuda-12" in n for n in t.notices), t.notices
    assert resolve_target(engine, settings, Request(env="pytorch", variant="cuda-12")).notices == ()
    with pytest.raises(DockyardError, match="requires a usable GPU") as err:
        resolve_target(engine, settings, Request(env="pytorch", variant="cuda", gpu="required"))
    assert "580" in err.value.fix
    assert "pytorch:cuda-12" in err.value.fix


def _container(t: KernelTarget, tmp_path: Path, argv: list[str] | None = None) -> KernelContainer:
    return make_kernel_container(
        tmp_path,
        image=t.image,
        env_name=t.env_name,
        variant=t.variant,
        owner="host:1:1",
        argv=[
            *(argv or ["python", "-m", "ipykernel_launcher", "-f", "x"]),
            *kernel_banner_args(argv or ["ipykernel"], t.notices),
        ],
        environment={"NVIDIA_VISIBLE_DEVICES": "all", "FOO": "bar"},  # as if inherited from a GPU host's shell
        device_requests=t.device_requests,
    )


def _provisioner(engine: RecordedEngine, target: KernelTarget, tmp_path: Path) -> DockerProvisioner:
    p = DockerProvisioner(kernel_id="0123456789ab")
    p._client = engine
    p._target = target
    p._kernel_container = lambda cmd, cwd, env: _container(p._target, tmp_path)  # needs no KernelManager
    return p


@pytest.mark.parametrize("setup", ["docker-desktop-phantom", "toolkit-no-driver", "hook-only-cdi-off"])
def test_optional_gpu_kernel_starts_again_without_the_gpu(setup, monkeypatch, settings, tmp_path):
    """A stale or wrong verdict: the start with the GPU fails in earnest, the kernel starts on the CPU."""
    engine, _ = _scenario(setup, monkeypatch)
    monkeypatch.setattr(verdict, "_memo", {verdict._key(engine.info()): verdict.Verdict(True, "--gpus", "stale")})
    engine.answers = {"--gpus": {"hook-only-cdi-off": NO_DRIVER}.get(setup, engine.answers["--gpus"])}
    target = resolve_target(engine, settings, Request(env="minimal", variant="cuda"))
    assert target.device_requests
    assert target.gpu_fallback
    p = _provisioner(engine, target, tmp_path)
    p._start_with_gpu_fallback(_container(target, tmp_path), [], tmp_path, {})
    first, second = engine.created
    assert first.kwargs["device_requests"]
    assert first.removed
    assert second.kwargs["device_requests"] == []
    assert p.container_id == second.id
    assert second.kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "started without its GPU" in p._target.notices[-1]
    assert any(a.startswith("--InteractiveShell.banner2=dockyard: ") for a in second.kwargs["command"])
    assert verdict._memo == {}  # the wrong verdict is forgotten: the next kernel probes again


def test_required_gpu_and_other_errors_do_not_fall_back(monkeypatch, settings, tmp_path):
    engine, _ = _scenario("toolkit-no-driver", monkeypatch)
    monkeypatch.setattr(verdict, "_memo", {verdict._key(engine.info()): verdict.Verdict(True, "--gpus", "stale")})
    target = resolve_target(engine, settings, Request(env="minimal", variant="cuda", gpu="required"))
    assert not target.gpu_fallback
    with pytest.raises(docker.errors.APIError, match="500"):
        _provisioner(engine, target, tmp_path)._start_with_gpu_fallback(_container(target, tmp_path), [], tmp_path, {})
    assert len(engine.created) == 1
    engine.answers = {"--gpus": "invalid mount config for type bind: bind source path does not exist"}
    optional = resolve_target(engine, settings, Request(env="minimal", variant="cuda"))
    with pytest.raises(docker.errors.APIError):
        _provisioner(engine, optional, tmp_path)._start_with_gpu_fallback(
            _container(optional, tmp_path), [], tmp_path, {}
        )
    assert len(engine.created) == 2  # not a GPU error: no retry


# --- no GPU variables that defeat gpu: off ----------------------------------------------------


def test_no_shipped_image_or_config_sets_nvidia_variables():
    for s in specs.load_all():
        for v in s.variants.values():
            assert not any(k.startswith("NVIDIA_") for k in v.env_vars), v.ref
    for path in [*REPO.glob("kernels/*/kernel.json"), *REPO.glob(".devcontainer/*/devcontainer.json")]:
        assert "NVIDIA_" not in path.read_text(), path


def test_gpu_environment():
    host = {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "all", "FOO": "1"}
    assert gpu_environment(host, []) == {"FOO": "1", "NVIDIA_VISIBLE_DEVICES": "void"}
    assert gpu_environment(host, [gpu.gpus_all()]) == {"FOO": "1"}
    assert kernel_banner_args(["python", "-m", "ipykernel_launcher"], ["x"]) == [
        "--InteractiveShell.banner2=dockyard: x\n"
    ]
    assert kernel_banner_args(["my-kernel"], ["x"]) == []  # only ipykernel knows the option
    assert kernel_banner_args(["python", "-m", "ipykernel_launcher"], []) == []


# --- dev containers: parity with the kernel ---------------------------------------------------


def _docker_cli_gpus(args: list[str]) -> list[dict]:
    """What the docker CLI sends for `--gpus all` (docker/cli opts/gpus.go): count -1, capabilities [[gpu]]."""
    if "--gpus" not in args:
        return []
    assert args[args.index("--gpus") + 1] == "all"
    return [GPUS]


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_devcontainer_gets_the_gpu_whenever_the_kernel_does(setup, monkeypatch, settings, tmp_path):
    engine, _ = _scenario(setup, monkeypatch)
    info = engine.info()
    target = resolve_target(engine, settings, Request(env="pytorch", variant="cuda"))
    kernel = [dict(r) for r in target.device_requests]
    spec = specs.load("pytorch")
    cfg = devcontainer.config(spec, spec.variant("cuda"), REPO)
    v = gpu.assess(engine, info)
    setting, _ = devcontainer.gpu_availability_for(v)
    dev = _docker_cli_gpus(devcontainer.cli_gpu_args(cfg, info, setting) + cfg["runArgs"])
    if v.method == "cdi":
        # The one setup the tooling cannot serve (it only knows --gpus): doctor says so, with the fix.
        assert dev == []
        assert kernel == [CDI]
    else:
        assert dev == kernel
    # what the tooling does by default, and whether doctor warns about it
    default = _docker_cli_gpus(devcontainer.cli_gpu_args(cfg, info, "detect"))
    checks = {c.what: c for c in doctor_cmd.gpu_checks(engine, info)}
    parity = checks["devcontainer GPU"]
    if default == kernel:
        assert parity.status == "pass"
    else:
        assert parity.status == "warn"
        assert f'"dev.containers.gpuAvailability": "{setting}"' in parity.fix
        assert f"--gpu-availability {setting}" in parity.fix


def test_cli_gpu_rule_matches_the_devcontainers_cli():
    """@devcontainers/cli 0.89 (spec-node): hostRequirements.gpu and (all, or detect and the runtime's path)."""
    with_gpu = {"hostRequirements": {"gpu": "optional"}}
    hook_only = recorded_info("hook-only-cdi-off")
    registered = recorded_info("runtime-registered")
    assert devcontainer.cli_gpu_args(with_gpu, hook_only) == []
    assert devcontainer.cli_gpu_args(with_gpu, registered) == ["--gpus", "all"]
    assert devcontainer.cli_gpu_args(with_gpu, hook_only, "all") == ["--gpus", "all"]
    assert devcontainer.cli_gpu_args(with_gpu, registered, "none") == []
    assert devcontainer.cli_gpu_args({}, registered, "all") == []


def test_doctor_reports_needs_per_variant(monkeypatch):
    engine, _ = _scenario("remote-engine", monkeypatch)  # V100, driver 535
    checks = doctor_cmd.gpu_checks(engine, engine.info())
    text = "\n".join(f"{c.status} {c.what} {c.detail} {c.fix}" for c in checks)
    assert "pass GPU GPUs attach through `--gpus all`" in text
    assert "warn GPU needs pytorch:cuda: GPU 0 (Tesla V100-SXM2-32GB) has NVIDIA driver 535.230.02" in text
    assert "compute capability 7.0" in text
    assert "pass GPU needs pytorch:cuda-12: CUDA 12" in text
    assert "pass GPU needs tensorflow:cuda" in text


# --- the real engine (no GPU here): the probe's answer and the fallback, for real ---------------


@pytest.mark.engine
def test_probe_on_this_engine(docker_client, built):
    image = built("minimal:cpu").tag
    before = {c.id for c in docker_client.containers.list(all=True, filters={"label": probe.PROBE_LABEL})}
    result = probe.run(docker_client, image, [gpu.gpus_all()])
    after = {c.id for c in docker_client.containers.list(all=True, filters={"label": probe.PROBE_LABEL})}
    assert after <= before  # removed, pass or fail
    if result.ok:
        pytest.skip("this engine has a GPU: see scripts/gpu-check.sh")
    assert gpu.is_gpu_error(result.error)
    v = gpu.assess(docker_client, docker_client.info(), image=image, fresh=True)
    assert not v.usable
    assert v.fix
    assert json.loads((Path(os.environ["XDG_CACHE_HOME"]) / "dockyard" / "gpu-verdict.json").read_text())


@pytest.mark.engine
def test_optional_kernel_falls_back_on_the_real_engines_refusal(docker_client, built, tmp_path, monkeypatch):
    """A cached verdict says GPU, the real daemon refuses the request: the kernel still starts, without it."""
    from jupyter_client import KernelManager

    built("minimal:cuda")
    info = docker_client.info()
    if gpu.assess(docker_client, info, fresh=True).usable:
        pytest.skip("this engine has a GPU: see scripts/gpu-check.sh")
    verdict._memo.clear()
    verdict._store(verdict._key(info), verdict.Verdict(True, "--gpus", "stale", checked_at=time.time()))
    spec_dir = tmp_path / "jupyter" / "kernels" / "dy-gpu-fallback"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "fallback",
                "language": "python",
                "metadata": {
                    "kernel_provisioner": {
                        "provisioner_name": "dockyard-docker-provisioner",
                        "config": {"env": "minimal", "variant": "cuda"},
                    }
                },
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("DOCKYARD_GPU", raising=False)
    km = KernelManager(kernel_name="dy-gpu-fallback")
    try:
        km.start_kernel(cwd=str(tmp_path))
        attrs = docker_client.api.inspect_container(km.provisioner.container_id)
        assert not attrs["HostConfig"].get("DeviceRequests")
        env = attrs["Config"]["Env"]
        assert "NVIDIA_VISIBLE_DEVICES=void" in env
        assert any(e.startswith("DOCKYARD_GPU_NOTICE=") and "started without its GPU" in e for e in env)
        kc = km.client()
        kc.start_channels()
        try:
            reply = kc.execute_interactive("import os; print(os.environ['DOCKYARD_GPU_NOTICE'][:40])", timeout=60)
            assert reply["content"]["status"] == "ok"
            banner = kc.kernel_info(reply=True, timeout=30)["content"]["banner"]
            assert "dockyard: minimal:cuda started without its GPU" in banner  # what consoles show at connect
        finally:
            kc.stop_channels()
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_KERNEL_ID}"}):
            if c.name.startswith("dockyard-minimal-cuda-") and c.labels.get(LABEL_KERNEL_ID) == km.kernel_id:
                c.remove(force=True)
    assert verdict._key(info) not in verdict._memo  # forgotten: the next kernel probes again


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        (
            "hook-only-cdi-off",
            ["start WITHOUT the GPU that kernels get here", '"dev.containers.gpuAvailability": "all"'],
        ),
        ("docker-desktop-phantom", ["the container would not start", '"dev.containers.gpuAvailability": "none"']),
        ("cdi-discovered", ["cannot request", "nvidia-cdi-hook"]),
        ("runtime-registered", []),
        ("toolkit-no-driver", ["--gpu-availability none"]),
    ],
)
def test_devcontainer_open_says_when_the_gpu_will_be_missing(setup, said, monkeypatch, capsys):
    """What `dockyard build --devcontainer-gpu` (the CUDA configs' initializeCommand) adds to the VS Code log."""
    from dockyard.cli import build_cmd

    engine, _ = _scenario(setup, monkeypatch)
    build_cmd._devcontainer_gpu_advice(engine)
    out = " ".join(capsys.readouterr().out.split())
    assert bool(out) == bool(said), out
    for text in said:
        assert text in out, out
