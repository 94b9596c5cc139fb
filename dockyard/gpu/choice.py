"""Which GPUs one kernel asks for, and how that request is written for each engine. Pure: no I/O.

A choice is written the same way everywhere (kernelspec `gpus`, `kernels.gpus` / DOCKYARD_GPUS, the panel):

    all                    every GPU the engine gives (dockyard's behaviour before leases; no lease taken)
    any-free               one device nobody else holds (exclusive lease)
    N                      N such devices, e.g. 2 (a bare number is a count, never an index)
    device:0,2 | GPU-…     exactly these devices (exclusive): indices after "device:", GPU or MIG device UUIDs,
                           or a MIG device's "GPU:MIG" index ("device:0:1")
    shared[:DEVICE][@F]    share a device with other `shared` kernels (the least used one, or DEVICE); the
                           frameworks are told not to grab the whole card, and F (0 < F ≤ 1) caps the share
                           where the framework honours a cap (JAX, and PyTorch through DOCKYARD_GPU_MEM_FRACTION)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from docker.types import DeviceRequest

from ..engine.gpu_info import CDI_GPU_KIND
from ..errors import DockyardError, shown
from .devices import Device

EXAMPLES = "all, any-free, 2, device:0,2, GPU-<uuid>, MIG-<uuid>, shared, shared:1, shared@0.25"
_DEVICE_ID = re.compile(r"\d{1,3}(:\d{1,3})?|(GPU|MIG)-[0-9a-fA-F-]{8,64}")


@dataclass(frozen=True)
class GpuChoice:
    mode: str  # "all", "count", "devices" or "shared"
    count: int = 0  # for "count"
    devices: tuple[str, ...] = ()  # for "devices", and "shared" with a named device
    fraction: float | None = None  # for "shared": the cap on the device's memory

    @property
    def leases(self) -> bool:
        """Whether a kernel with this choice takes a lease (all does not: it is the pre-lease behaviour)."""
        return self.mode != "all"

    @property
    def exclusive(self) -> bool:
        return self.mode in ("count", "devices")

    def describe(self) -> str:
        if self.mode == "count":
            return "any free GPU" if self.count == 1 else f"{self.count} free GPUs"
        if self.mode == "devices":
            return "GPU " + ", ".join(self.devices)
        if self.mode == "shared":
            on = f"GPU {self.devices[0]}" if self.devices else "a GPU"
            return f"a share of {on}" + (f" (at most {self.fraction:g} of its memory)" if self.fraction else "")
        return "all GPUs"


def parse(text: str, origin: str) -> GpuChoice:
    """A choice from its written form; origin names where it was written (for the error)."""
    raw = text.strip()
    low = raw.lower()
    fix = f"write one of: {EXAMPLES} (docs/gpu.md, 'Choosing and sharing')"
    if low in ("", "all"):
        return GpuChoice("all")
    if low == "any-free":
        return GpuChoice("count", count=1)
    if re.fullmatch(r"[1-9]\d?", low):
        return GpuChoice("count", count=int(low))
    if low.startswith("shared"):
        m = re.fullmatch(r"shared(?::([^@]+))?(?:@([0-9.]+))?", raw, re.IGNORECASE)
        if not m:
            raise DockyardError(f"{origin}: GPU choice {shown(raw)} is not a shared choice", fix=fix)
        device = m.group(1)
        if device is not None and not _DEVICE_ID.fullmatch(device):
            raise DockyardError(f"{origin}: {shown(device)} in {shown(raw)} is not a GPU index or UUID", fix=fix)
        fraction = _fraction(m.group(2), raw, origin, fix)
        return GpuChoice("shared", devices=(device,) if device else (), fraction=fraction)
    listed = raw[len("device:") :] if low.startswith("device:") else raw
    ids = tuple(p.strip() for p in listed.split(","))
    if not low.startswith("device:") and any(p.isdigit() for p in ids):
        raise DockyardError(
            f"{origin}: GPU choice {shown(raw)} mixes a count with devices",
            fix=f"name devices by index as device:{listed} ({fix[0].lower()}{fix[1:]})",
        )
    bad = [p for p in ids if not _DEVICE_ID.fullmatch(p)]
    if bad or len(set(ids)) != len(ids):
        what = f"{shown(bad[0])} is not a GPU index or UUID" if bad else "names a device twice"
        raise DockyardError(f"{origin}: GPU choice {shown(raw)}: {what}", fix=fix)
    return GpuChoice("devices", devices=ids)


def _fraction(text: str | None, raw: str, origin: str, fix: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise DockyardError(f"{origin}: memory share {shown(text)} in {shown(raw)} is not a number in (0, 1]", fix=fix)
    return value


# --- how each engine is asked for exactly these devices ------------------------------------------------


def docker_request(devices: Sequence[Device]) -> DeviceRequest:
    """What `docker run --gpus '"device=GPU-…,MIG-…"'` sends: dockerd's NVIDIA hook gets exactly these UUIDs.

    UUIDs rather than indices: an index can name another card after a reboot or with CUDA_VISIBLE_DEVICES-style
    reordering, and a MIG device has no plain index the hook accepts everywhere.
    """
    return DeviceRequest(driver="nvidia", device_ids=[d.uuid for d in devices], capabilities=[["gpu"]])


def cdi_names(devices: Sequence[Device], discovered: Sequence[str] = ()) -> list[str]:
    """CDI names of the devices: by UUID where the engine lists that name, else by index ("0", "0:1").

    `nvidia-ctk cdi generate` names devices by index unless told `--device-name-strategy=uuid`; the engine's
    DiscoveredDevices (Docker 28+) says which names exist, so a UUID is used only where it is known to resolve.
    """
    known = set(discovered)
    out = []
    for d in devices:
        by_uuid = f"{CDI_GPU_KIND}={d.uuid}"
        out.append(by_uuid if by_uuid in known else f"{CDI_GPU_KIND}={d.index}")
    return out


def cdi_request(devices: Sequence[Device], discovered: Sequence[str] = ()) -> DeviceRequest:
    """What `docker run --device nvidia.com/gpu=…` sends (Docker 25+ with CDI on; Podman 5's Docker API too)."""
    return DeviceRequest(driver="cdi", device_ids=cdi_names(devices, discovered))


def requests_for(method: str | None, devices: Sequence[Device], discovered: Sequence[str] = ()) -> list[DeviceRequest]:
    """The device request for the verdict's method ("--gpus" or "cdi")."""
    if not devices:
        return []
    return [cdi_request(devices, discovered)] if method == "cdi" else [docker_request(devices)]


def podman_args(devices: Sequence[Device], discovered: Sequence[str] = ()) -> list[str]:
    """`podman run` arguments for the devices: Podman takes GPUs as CDI devices (`nvidia-ctk cdi generate`)."""
    return [arg for name in cdi_names(devices, discovered) for arg in ("--device", name)]


def compose_devices(devices: Sequence[Device]) -> list[dict[str, object]]:
    """Compose's `deploy.resources.reservations.devices` for exactly these devices (docker compose v2)."""
    return [{"driver": "nvidia", "device_ids": [d.uuid for d in devices], "capabilities": ["gpu"]}]


# --- sharing one card without one kernel grabbing it -----------------------------------------------------


def sharing_environment(fraction: float | None) -> dict[str, str]:
    """Variables that make the frameworks allocate GPU memory as they go instead of all of it at start.

    - TensorFlow maps nearly all memory of every visible GPU at first use unless memory growth is on.
    - JAX preallocates 75 % at first use; off, it allocates on demand; MEM_FRACTION caps it (honoured only
      with preallocation on, so a cap turns preallocation back on at exactly that share).
    - PyTorch's caching allocator does not preallocate, but fragments; expandable segments give freed memory
      back in larger pieces. It has no variable for a cap: DOCKYARD_GPU_MEM_FRACTION carries the share for
      `torch.cuda.set_per_process_memory_fraction` (docs/gpu.md shows the line).
    """
    env = {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    if fraction is not None:
        share = f"{fraction:g}"
        env.update(
            {
                "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
                "XLA_PYTHON_CLIENT_MEM_FRACTION": share,
                "DOCKYARD_GPU_MEM_FRACTION": share,
            }
        )
    return env
