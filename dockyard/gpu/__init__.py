"""GPUs for containers: what the engine can give (verdict), what a variant needs (requirements), policy.

- engine/gpu_info.py: the daemon's own answers (`docker info`), no local-disk guesses
- probe.py: a throwaway container with the device request running nvidia-smi
- verdict.py: evidence → one cached verdict with its reason
- requirements.py: CUDA major → driver / compute capability, nvidia-smi parsing, the check
- this module: the kernel's policy (spec gpu × user mode × verdict → device requests or an error)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import DockyardError
from .requirements import CudaNeeds, GpuInfo, check, derive_major, parse_smi

if TYPE_CHECKING:
    from docker.types import DeviceRequest

    from ..engine.gpu_info import EngineView, cdi_all, gpus_all, read_info
    from .probe import is_gpu_error
    from .verdict import Verdict, assess, decide, forget

# The parts that talk to the engine import the docker SDK (about 0.1 s): loaded on first use, so reading specs
# (which needs requirements.py only) stays free of it.
_LAZY = {
    "EngineView": "..engine.gpu_info",
    "cdi_all": "..engine.gpu_info",
    "gpus_all": "..engine.gpu_info",
    "read_info": "..engine.gpu_info",
    "is_gpu_error": ".probe",
    "Verdict": ".verdict",
    "assess": ".verdict",
    "decide": ".verdict",
    "forget": ".verdict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in ("probe", "verdict"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wants_gpu(env_gpu: str, user_mode: str) -> bool:
    """Whether the verdict matters at all (CPU kernels and gpu: off never ask the engine)."""
    return env_gpu != "none" and user_mode != "off"


def device_requests(env_gpu: str, user_mode: str, verdict: Verdict | None, ref: str) -> list[DeviceRequest]:
    """GPU requests for a container of an environment whose spec says env_gpu (none/optional/required).

    user_mode (auto/off/required) is the user's setting: 'off' never asks, 'required' fails without GPUs.
    """
    if not wants_gpu(env_gpu, user_mode):
        if user_mode == "required":
            raise DockyardError(
                f"GPU mode is 'required' but {ref} is a CPU environment",
                fix=f"use the cuda variant ({ref.split(':')[0]}:cuda) or set DOCKYARD_GPU=auto",
            )
        return []
    if verdict is None or not verdict.usable:
        if env_gpu == "required" or user_mode == "required":
            why = verdict.reason if verdict else "no GPU verdict"
            raise DockyardError(
                f"{ref} requires a GPU, but the Docker engine gives none: {why}",
                fix=(verdict.fix if verdict and verdict.fix else "run 'dockyard doctor'")
                + f"; or use the CPU variant {ref.split(':')[0]}:cpu",
            )
        return []
    return verdict.device_requests


__all__ = [
    "CudaNeeds",
    "EngineView",
    "GpuInfo",
    "Verdict",
    "assess",
    "cdi_all",
    "check",
    "decide",
    "derive_major",
    "device_requests",
    "forget",
    "gpus_all",
    "is_gpu_error",
    "parse_smi",
    "read_info",
    "wants_gpu",
]
