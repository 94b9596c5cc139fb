"""What the Docker daemon itself says about GPUs (`docker info`), read without touching the local disk.

The local disk is the wrong witness: with DOCKER_HOST=ssh://... it belongs to another machine, and
even locally the daemon may have CDI switched off (`CDISpecDirs: []`) while spec files lie in /etc/cdi.
What decides whether `--gpus` works is the NVIDIA hook on *dockerd's* PATH (moby
daemon/devices_nvidia_linux.go), which `docker info` does not show: that part only a probe can answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import DeviceRequest

CDI_GPU_KIND = "nvidia.com/gpu"


def gpus_all() -> DeviceRequest:
    """What `docker run --gpus all` sends; dockerd serves it through the NVIDIA hook on its PATH."""
    return DeviceRequest(count=-1, capabilities=[["gpu"]])


def cdi_all() -> DeviceRequest:
    """What `docker run --device nvidia.com/gpu=all` sends (Docker 25+ with CDI enabled)."""
    return DeviceRequest(driver="cdi", device_ids=[f"{CDI_GPU_KIND}=all"])


@dataclass(frozen=True)
class EngineView:
    """The GPU-relevant part of one `docker info` answer."""

    runtime_path: str | None  # Runtimes.nvidia.path, if an 'nvidia' runtime is registered
    cdi: str  # "on" (spec dirs listed), "off" (CDISpecDirs: []), "unsupported" (engine predates CDI)
    cdi_gpus: tuple[str, ...]  # DiscoveredDevices of kind nvidia.com/gpu, e.g. "nvidia.com/gpu=all"
    default_runtime: str
    os_type: str
    operating_system: str

    @property
    def docker_desktop(self) -> bool:
        return "docker desktop" in self.operating_system.lower()

    def summary(self) -> str:
        """One line for doctor and logs: what the daemon reports, before any probe."""
        parts = [f"runtime 'nvidia' → {self.runtime_path}" if self.runtime_path else "no 'nvidia' runtime"]
        if self.cdi == "off":
            parts.append("CDI off (CDISpecDirs: [])")
        elif self.cdi == "unsupported":
            parts.append("CDI not supported by this engine")
        elif self.cdi_gpus:
            parts.append(f"CDI on, devices {', '.join(self.cdi_gpus)}")
        else:
            parts.append("CDI on, no NVIDIA devices listed")
        return "; ".join(parts)

    def candidates(self) -> list[tuple[str, list[DeviceRequest]]]:
        """Requests worth trying, best first, as (method, requests).

        `--gpus all` first: it is what the devcontainers CLI passes too, and dockerd serves it through
        either NVIDIA hook (nvidia-container-runtime-hook, or nvidia-cdi-hook mapping it onto CDI), with
        or without a registered runtime; so it is tried even when nothing in `info` hints at a GPU.
        The CDI request only when the daemon itself lists NVIDIA CDI devices.
        """
        out: list[tuple[str, list[DeviceRequest]]] = [("--gpus", [gpus_all()])]
        if self.cdi == "on" and self.cdi_gpus:
            out.append(("cdi", [cdi_all()]))
        return out


def read_info(info: dict[str, Any]) -> EngineView:
    runtimes = info.get("Runtimes") or {}
    nvidia = runtimes.get("nvidia")
    runtime_path = None
    if nvidia is not None:
        runtime_path = str((nvidia or {}).get("path") or (nvidia or {}).get("Path") or "nvidia")
    # API < 1.44 has no CDISpecDirs: that engine cannot inject CDI devices at all. Otherwise the API docs:
    # "an empty list means CDI device injection is disabled" (null reads the same way).
    cdi = "unsupported" if "CDISpecDirs" not in info else ("on" if info.get("CDISpecDirs") else "off")
    devices = info.get("DiscoveredDevices") or []
    cdi_gpus = tuple(
        sorted(
            str(d.get("ID"))
            for d in devices
            if str(d.get("Source", "")).lower() == "cdi" and str(d.get("ID", "")).startswith(f"{CDI_GPU_KIND}=")
        )
    )
    return EngineView(
        runtime_path=runtime_path,
        cdi=cdi,
        cdi_gpus=cdi_gpus,
        default_runtime=str(info.get("DefaultRuntime") or "runc"),
        os_type=str(info.get("OSType") or "linux"),
        operating_system=str(info.get("OperatingSystem") or ""),
    )
