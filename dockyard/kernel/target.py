"""Which image a kernel runs, with which resources and GPUs: resolved at every start, restarts included."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.models.images import Image
from docker.types import DeviceRequest

from .. import gpu, specs
from ..config import Settings
from ..engine import find_image
from ..errors import DockyardError
from ..images.build import build
from ..images.inventory import ImageState, image_state
from ..labels import LABEL_ENV, LABEL_GPU, LABEL_VARIANT

log = logging.getLogger(__name__)
_DEFAULT_SHM = "2g"  # PyTorch DataLoader workers need far more than Docker's 64 MB


class NotBuiltError(DockyardError):
    """The image of the spec's current content tag is not built, and auto_build is off."""


@dataclass(frozen=True)
class KernelTarget:
    image: str
    env_name: str
    variant: str
    image_env: tuple[str, ...]  # the image's own ENV entries (they win over the host's variables)
    network: str
    workspace_root: Path | None
    shm_size: str | None
    memory: str | None
    cpus: float | None
    device_requests: list[DeviceRequest] = field(default_factory=list)
    gpu_fallback: bool = False  # optional GPU: a start that fails on the GPU request is retried without it
    notices: tuple[str, ...] = ()  # GPU findings the user should see (logged, and in the kernel's banner)

    @property
    def ref(self) -> str:
        return f"{self.env_name}:{self.variant}"


@dataclass(frozen=True)
class Request:
    """The kernelspec's provisioner config (metadata.kernel_provisioner.config)."""

    env: str | None = None
    variant: str | None = None
    image: str | None = None
    gpu: str | None = None
    network: str | None = None
    workspace_root: str | None = None
    shm_size: str | None = None
    memory: str | None = None
    cpus: float | None = None
    gpus: str | None = None  # which GPUs (gpu/choice.py), read by kernel/gpu_lease.py, not here
    gpu_wait: float | None = None


def for_start(
    client: docker.DockerClient,
    settings: Settings,
    req: Request,
    previous: KernelTarget | None,
    log: logging.Logger | Any,
    kernel_id: str,
) -> KernelTarget:
    """The target of a start, or of a restart (previous: the target the kernel had).

    A restart runs what a fresh start would: the image of the spec's current content tag under the current
    settings. But a spec edited and not built yet keeps the kernel's previous image: failing would leave a
    dead kernel that Jupyter Server reports only as "Exception restarting kernel" (its restart handler drops
    our message), and a kernel that died (the auto-restarter's case) would stay dead; the log says so.
    """
    try:
        target = resolve_target(client, settings, req)
    except NotBuiltError as exc:
        if previous is None or find_image(client, previous.image) is None:
            raise
        log.warning(
            "dockyard: kernel %s restarts with its previous image %s, not the spec's current one: %s",
            kernel_id,
            previous.image,
            exc,
        )
        return previous
    if previous is not None and previous.image != target.image:
        log.info("dockyard: kernel %s restarts with image %s (was %s)", kernel_id, target.image, previous.image)
    return target


def resolve_target(client: docker.DockerClient, settings: Settings, req: Request) -> KernelTarget:
    """Find (or, with auto_build, build) the image and work out the container's resources."""
    s = specs.load(req.env) if req.env else None
    settings_gpu = req.gpu or settings.kernels.gpu
    if req.image:
        image = find_image(client, req.image)
        if image is None:
            raise DockyardError(
                f"The kernel's image {req.image} is not in the local Docker engine",
                fix=(
                    f"pull or build it ('docker pull {req.image}'), or remove 'image' from the kernelspec's "
                    "provisioner config"
                ),
            )
        labels = image.labels or {}
        env_name = req.env or labels.get(LABEL_ENV, "custom")
        variant_name = req.variant or labels.get(LABEL_VARIANT, "custom")
        env_gpu = s.variant(variant_name).gpu if s else labels.get(LABEL_GPU, "none")
        cuda = s.variant(variant_name).cuda if s and variant_name in s.variants else None
        gpu_use = _gpu(client, env_gpu, settings_gpu, f"{env_name}:{variant_name}", req.image, cuda, [])
        tag = req.image
    elif s is not None:
        variant = s.variant(req.variant)
        env_name, variant_name = s.name, variant.name
        state = image_state(client, s, variant, settings.build)
        tag = state.plan.tag
        older = [v.ref for v in s.variants.values() if v.cuda and variant.cuda and v.cuda.major < variant.cuda.major]
        # GPU first: "no GPU here" is the more useful message than "not built" for a cuda kernel.
        probe_with = tag if state.image is not None else None
        gpu_use = _gpu(client, variant.gpu, settings_gpu, variant.ref, probe_with, variant.cuda, older)
        image = state.image or _build_or_explain(client, settings, state)
    else:
        raise DockyardError(
            "The kernelspec's provisioner config names neither an environment ('env') nor an image ('image')",
            fix="regenerate the kernelspec with 'dockyard kernels install'",
        )
    network = req.network or settings.kernels.network
    if network == "host" and sys.platform != "linux":
        network = "bridge"  # Docker Desktop's host network is the VM's, not the Mac's/PC's loopback
    resources = s.resources if s else {}
    root = req.workspace_root or settings.kernels.workspace_root
    return KernelTarget(
        image=tag,
        env_name=env_name,
        variant=variant_name,
        image_env=tuple((image.attrs.get("Config") or {}).get("Env") or ()),
        network=network,
        workspace_root=Path(root).expanduser() if root else None,
        shm_size=req.shm_size or resources.get("shm_size") or _DEFAULT_SHM,
        memory=req.memory or resources.get("memory"),
        cpus=req.cpus or resources.get("cpus"),
        device_requests=gpu_use.requests,
        gpu_fallback=gpu_use.fallback,
        notices=gpu_use.notices,
    )


@dataclass(frozen=True)
class _GpuUse:
    requests: list[DeviceRequest]
    fallback: bool
    notices: tuple[str, ...]


def _gpu(
    client: docker.DockerClient,
    env_gpu: str,
    mode: str,
    ref: str,
    image: str | None,
    cuda: gpu.CudaNeeds | None,
    older: list[str],
) -> _GpuUse:
    """The device requests for this kernel, and what the user should hear about the GPU."""
    if not gpu.wants_gpu(env_gpu, mode):  # CPU kernels and gpu: off never ask the engine
        return _GpuUse(gpu.device_requests(env_gpu, mode, None, ref), False, ())
    verdict = gpu.assess(client, client.info(), image=image)
    requests = gpu.device_requests(env_gpu, mode, verdict, ref)
    required = env_gpu == "required" or mode == "required"
    notices: list[str] = []
    if not requests:
        notices.append(f"{ref} runs on the CPU: {verdict.reason}" + (f" (fix: {verdict.fix})" if verdict.fix else ""))
    elif cuda is not None:
        problems = gpu.check(cuda, verdict.gpus, ref, older)
        if problems and required:
            problem, fix = problems[0]
            raise DockyardError(f"{ref} requires a usable GPU, but {problem}", fix=fix)
        # Optional: the GPU is still attached (nvidia-smi and the driver work), the framework falls back to CPU.
        notices += [f"{problem} (fix: {fix})" for problem, fix in problems]
    for notice in notices:
        log.warning("dockyard: %s", notice)
    return _GpuUse(requests, bool(requests) and not required, tuple(notices))


def _build_or_explain(client: docker.DockerClient, settings: Settings, state: ImageState) -> Image:
    plan = state.plan
    ref = plan.variant.ref
    if not settings.kernels.auto_build:
        # The usual cause when the alias exists: the server sees other site settings than `dockyard build` did.
        older = (
            f" (an image from an older spec or other site settings exists: {plan.alias})"
            if state.older is not None
            else ""
        )
        raise NotBuiltError(
            f"The image for {ref} ({plan.tag}) is not built yet{older}",
            fix=f"run 'dockyard build {ref}' with the same site settings (config file, DOCKYARD_* variables) as this "
            "Jupyter server, or set DOCKYARD_AUTO_BUILD=1 (kernels.auto_build: true) to build it on first use",
        )
    log.warning("dockyard: building %s (%s) for a kernel; this can take minutes", ref, plan.tag)
    result = build(client, plan, settings.build)
    return client.images.get(result.tag)
