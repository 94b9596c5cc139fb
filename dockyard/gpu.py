"""Whether the Docker engine can give a container GPUs, and what to ask it for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker.types import DeviceRequest

from .errors import DockyardError

_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


def gpu_support(info: dict[str, Any]) -> str | None:
    """How the daemon can pass NVIDIA GPUs through ('nvidia runtime' or 'CDI'), or None."""
    if "nvidia" in (info.get("Runtimes") or {}):
        return "nvidia runtime"
    for directory in info.get("CDISpecDirs") or _CDI_DIRS:
        d = Path(directory)
        if d.is_dir() and any("nvidia" in p.name for p in d.glob("*.*")):
            return "CDI"
    return None


def device_requests(env_gpu: str, user_mode: str, info: dict[str, Any], ref: str) -> list[DeviceRequest]:
    """GPU requests for a container of an environment whose spec says env_gpu (none/optional/required).

    user_mode (auto/off/required) is the user's setting: 'off' never asks, 'required' fails without GPUs.
    """
    if env_gpu == "none" or user_mode == "off":
        if user_mode == "required":
            raise DockyardError(
                f"GPU mode is 'required' but {ref} is a CPU environment",
                fix=f"use the cuda variant ({ref.split(':')[0]}:cuda) or set DOCKYARD_GPU=auto",
            )
        return []
    support = gpu_support(info)
    if support is None:
        if env_gpu == "required" or user_mode == "required":
            raise DockyardError(
                f"{ref} requires a GPU, but the Docker engine offers none (no 'nvidia' runtime, no NVIDIA CDI spec)",
                fix="install the NVIDIA driver and the NVIDIA Container Toolkit ('nvidia-ctk runtime configure "
                "--runtime=docker', "
                f"then restart dockerd), or use the CPU variant {ref.split(':')[0]}:cpu",
            )
        return []
    if support == "CDI":
        # What `docker run --device nvidia.com/gpu=all` sends (Docker 25+ with CDI enabled).
        return [DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])]
    # What `docker run --gpus all` sends; the NVIDIA Container Toolkit's hook attaches the devices.
    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
