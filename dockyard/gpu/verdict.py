"""The engine's GPU verdict: which device request works here, why, and what GPUs it brings; cached.

Order of evidence: the daemon's own answers (registered runtimes, CDISpecDirs, DiscoveredDevices)
choose what to try, a throwaway container with the request decides. The verdict is cached per engine
(keyed by what `docker info` says, so a newly registered runtime or CDI change invalidates it) for
an hour, so kernels start without a probe; `dockyard doctor` always probes afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
import docker.errors
from docker.types import DeviceRequest

from .. import paths
from ..engine.capabilities import PODMAN_NO_GPU, podman_info
from ..engine.gpu_info import EngineView, cdi_all, gpus_all, read_info
from ..labels import LABEL_ENV
from . import probe
from .devices import Device
from .requirements import GpuInfo

CACHE_TTL = 3600.0
_CACHE_FILE = "gpu-verdict.json"
_memo: dict[str, Verdict] = {}


@dataclass(frozen=True)
class Verdict:
    usable: bool
    method: str | None  # "--gpus" or "cdi" when usable
    reason: str  # one sentence: what was seen and tried
    fix: str = ""
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    engine: str = ""  # EngineView.summary()
    checked_at: float = 0.0
    devices: tuple[Device, ...] = field(default_factory=tuple)  # one per leasable GPU or MIG device (gpu/devices.py)

    @property
    def device_requests(self) -> list[DeviceRequest]:
        if not self.usable:
            return []
        return [cdi_all()] if self.method == "cdi" else [gpus_all()]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = [asdict(g) for g in self.gpus]
        data["devices"] = [d.to_json() for d in self.devices]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        devices = tuple(Device.from_json(d) for d in data.get("devices", []))  # absent in caches of older versions
        return cls(**{**data, "gpus": tuple(GpuInfo(**g) for g in data.get("gpus", [])), "devices": devices})


def decide(view: EngineView, attempts: list[tuple[str, probe.ProbeResult]]) -> Verdict:
    """From the daemon's view and the probe results (in the order tried) to one verdict. Pure."""
    engine = view.summary()
    for method, result in attempts:
        if result.ok:
            how = "`--gpus all` (NVIDIA hook on dockerd's PATH)" if method == "--gpus" else "CDI (nvidia.com/gpu=all)"
            found = (
                ", ".join(f"{g.name or 'GPU'} driver {g.driver} sm {g.compute_capability}" for g in result.gpus)
                if result.gpus
                else (result.error or "nvidia-smi not available in the container: driver and card unknown")
            )
            return Verdict(
                True,
                method,
                f"GPUs attach through {how}: {found}",
                gpus=result.gpus,
                engine=engine,
                devices=result.devices,
            )
    errors = "; ".join(f"{m}: {r.error}" for m, r in attempts) or "no probe ran"
    if view.runtime_path and view.docker_desktop:
        reason = f"Docker Desktop lists an 'nvidia' runtime, but a GPU container does not start ({errors})"
        fix = (
            "on Windows install the NVIDIA driver for WSL on a machine with an NVIDIA GPU; elsewhere CUDA variants "
            "run on the CPU"
        )
    elif any("could not select device driver" in r.error for _, r in attempts):
        reason = f"dockerd serves no GPU requests ({errors})"
        fix = (
            "install the NVIDIA Container Toolkit so its hook is on dockerd's PATH, then restart dockerd "
            "(a 'runtimes.nvidia' entry is not needed); or enable CDI ('nvidia-ctk cdi generate', Docker 25+)"
        )
    else:
        reason = f"the GPU request was accepted but the container could not use it ({errors})"
        fix = (
            "check the NVIDIA driver on the engine's host ('nvidia-smi' must work there; reboot after a driver update)"
        )
    return Verdict(False, None, reason, fix=fix, engine=engine)


def probe_image(client: docker.DockerClient, preferred: str | None) -> str | None:
    """A local image to run the probe in (it needs only `sh`; the hook brings nvidia-smi). Never pulls.

    dockyard's own images first (they all have `sh`; a custom kernel image might not, and a missing shell
    must not read as a GPU failure), the kernel's image (preferred) among them when it is one.
    """
    candidates: list[str] = []
    with contextlib.suppress(docker.errors.DockerException):
        candidates += [t for img in client.images.list(filters={"label": LABEL_ENV}) for t in img.tags]
    if preferred:
        candidates.sort(key=lambda t: t != preferred)
        candidates.append(preferred)
    for ref in candidates:
        try:
            client.images.get(ref)
            return ref
        except docker.errors.DockerException:
            continue
    return None


def _key(info: dict[str, Any]) -> str:
    parts = [
        os.environ.get("DOCKER_HOST", ""),
        info.get("ID"),
        info.get("ServerVersion"),
        info.get("Runtimes"),
        info.get("CDISpecDirs"),
        info.get("DiscoveredDevices"),
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_cached(key: str) -> Verdict | None:
    if key in _memo:
        return _memo[key]
    try:
        data = json.loads((paths.cache_dir() / _CACHE_FILE).read_text()).get(key)
        verdict = Verdict.from_json(data) if data else None
    except (OSError, ValueError, TypeError):
        return None
    if verdict is None or time.time() - verdict.checked_at > CACHE_TTL:
        return None
    _memo[key] = verdict
    return verdict


def _store(key: str, verdict: Verdict) -> None:
    _memo[key] = verdict
    path = paths.cache_dir() / _CACHE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[key] = verdict.to_json()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs a probe per kernel start


def forget(info: dict[str, Any]) -> None:
    """Drop the cached verdict (a GPU request just failed in earnest: the host changed)."""
    key = _key(info)
    _memo.pop(key, None)
    path = paths.cache_dir() / _CACHE_FILE
    try:
        data = json.loads(path.read_text())
        if data.pop(key, None) is not None:
            path.write_text(json.dumps(data, indent=1))
    except (OSError, ValueError):
        pass


def assess(
    client: docker.DockerClient, info: dict[str, Any], *, image: str | None = None, fresh: bool = False
) -> Verdict:
    """The verdict for this engine: cached unless fresh, else probed with a local image."""
    view = read_info(info)
    if podman_info(info):  # a probe would "succeed": Podman starts the container and drops the GPU request
        return Verdict(
            False,
            None,
            PODMAN_NO_GPU,
            fix="run GPU kernels on a Docker engine with the NVIDIA Container Toolkit (see docs/podman.md)",
            engine=f"Podman {info.get('ServerVersion', '')}; {view.summary()}",
        )
    key = _key(info)
    if not fresh and (cached := _load_cached(key)) is not None:
        return cached
    ref = probe_image(client, image)
    if ref is None:
        return Verdict(
            False,
            None,
            "cannot test the GPU request: no dockyard image is built yet to probe with",
            fix="build one (e.g. 'dockyard build minimal'), then run 'dockyard doctor' again",
            engine=view.summary(),
        )  # not cached: the next call with an image decides
    attempts: list[tuple[str, probe.ProbeResult]] = []
    for method, reqs in view.candidates():
        result = probe.run(client, ref, reqs)
        attempts.append((method, result))
        if result.ok:
            break
    verdict = decide(view, attempts)
    verdict = dataclasses.replace(verdict, checked_at=time.time())
    _store(key, verdict)
    return verdict
