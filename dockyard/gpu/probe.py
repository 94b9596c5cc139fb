"""Ask the engine for real: start a throwaway container with a device request and run nvidia-smi in it.

This is the only test that covers everything `docker info` cannot show: the NVIDIA hook on dockerd's
PATH, a loaded driver, real hardware behind Docker Desktop's always-listed 'nvidia' runtime. The same
run reads driver version and compute capability for the requirement check.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import docker
import docker.errors
import requests
from docker.types import DeviceRequest

from ..labels import LABEL_GPU_PROBE
from .devices import Device, parse_list
from .requirements import SMI_QUERY, GpuInfo, parse_smi

PROBE_LABEL = LABEL_GPU_PROBE
_TIMEOUT = 60
# Exit code of the probe's shell when nvidia-smi is not in the container: the GPU was attached (the
# start succeeded), the hook just did not inject the tool (e.g. a CDI spec without it).
_NO_SMI = 127
# Errors that come from the GPU request, not from the kernel: moby's device-driver selection, the NVIDIA
# hooks and CLI, CDI resolution. Only these make an optional GPU kernel retry without the GPU.
_GPU_ERROR = re.compile(
    r"could not select device driver|nvidia|cdi device|unresolvable CDI|CDI device injection|libnvidia|"
    r"error running (prestart |createRuntime )?hook|no adapters were found|driver (not loaded|version)",
    re.IGNORECASE,
)


def is_gpu_error(text: str) -> bool:
    return bool(_GPU_ERROR.search(text or ""))


# The informative part of a runc/hook error: everything before it is the same wrapper on every failure.
_ESSENCE = re.compile(r"(nvidia-container-cli: .*|could not select device driver.*|unresolvable CDI devices.*)")


def first_line(text: str) -> str:
    """The line that says what went wrong (the NVIDIA CLI's own message where there is one), at most 300 chars."""
    text = text or ""
    m = _ESSENCE.search(text)
    line = m.group(1).strip() if m else next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 300 else line[:297] + "..."


@dataclass(frozen=True)
class ProbeResult:
    ok: bool  # the container started with the device request
    error: str = ""  # the engine's refusal, or nvidia-smi's complaint
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    smi_output: str = ""
    devices: tuple[Device, ...] = field(default_factory=tuple)  # from `nvidia-smi -L`: what leases are taken of


def run(client: docker.DockerClient, image: str, requests_: list[DeviceRequest]) -> ProbeResult:
    """Create, start, wait, remove (always, pass or fail): one container, no network, no privileges."""
    # The query's status decides; `-L` (index, UUID, MIG devices: what GPU leases name) follows on success.
    script = f"command -v nvidia-smi >/dev/null 2>&1 || exit {_NO_SMI}; {' '.join(SMI_QUERY)} && nvidia-smi -L"
    container = None
    try:
        container = client.containers.create(
            image,
            ["sh", "-c", script],
            entrypoint=[],
            device_requests=requests_,
            labels={PROBE_LABEL: "1"},
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            detach=True,
        )
        try:
            container.start()
        except docker.errors.APIError as exc:
            return ProbeResult(ok=False, error=first_line(str(exc.explanation or exc)))
        code = int(container.wait(timeout=_TIMEOUT).get("StatusCode", -1))
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return ProbeResult(ok=False, error=f"the probe container failed: {first_line(str(exc))}")
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
    if code == _NO_SMI:
        return ProbeResult(ok=True, smi_output="")
    if code != 0 and "not a valid field" in output:
        # Drivers before 510 do not know compute_cap: the GPU works, but its driver is older than any CUDA 12 needs.
        return ProbeResult(ok=True, error=f"nvidia-smi is too old to report compute_cap: {first_line(output)}")
    if code != 0:
        # Typical: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver".
        error = f"nvidia-smi failed in the container: {first_line(output)}"
        return ProbeResult(ok=False, error=error, smi_output=output)
    return ProbeResult(ok=True, gpus=tuple(parse_smi(output)), smi_output=output, devices=tuple(parse_list(output)))
