"""What the kernel running the panel knows about itself: environment, Python, framework, devices.

Runs inside the kernel (usually in an environment's container), so standard library only; the
labextension evaluates FACTS_EXPRESSION in a freshly switched kernel to refresh the panel.
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ENVIRONMENT_JSON = Path("/opt/dockyard/kit/environment.json")  # written into every image (images/context.py)
# The Python distribution that carries each spec framework's version (spec framework.name → package).
_DISTRIBUTIONS = {"pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
# An expression (not a statement): user_expressions hand its rich repr (application/json) back.
FACTS_EXPRESSION = "__import__('dockyard.frontends.panel.facts', fromlist=['Facts']).Facts()"


def kernel_facts() -> dict[str, Any]:
    environment = _environment()
    framework = environment.get("framework") if environment else None
    return {
        "environment": environment,
        "kernel_name": f"dockyard-{environment['env']}-{environment['variant']}" if environment else None,
        "in_container": environment is not None,
        "python": platform.python_version(),
        "executable": sys.executable,
        "framework": _framework(framework) if framework else None,
        "devices": _devices(framework),
        "session": os.environ.get("JPY_SESSION_NAME"),  # the notebook's path: finds this kernel's figures
    }


class Facts:
    """kernel_facts() with a JSON repr, for FACTS_EXPRESSION."""

    def _repr_json_(self) -> dict[str, Any]:
        return kernel_facts()

    def __repr__(self) -> str:
        return json.dumps(kernel_facts())


def _environment() -> dict[str, Any] | None:
    try:
        data = json.loads(ENVIRONMENT_JSON.read_text())
    except (OSError, ValueError):
        return None  # a host kernel, or an image dockyard did not build
    return data if isinstance(data, dict) else None


def _framework(name: str) -> dict[str, Any]:
    dist = _DISTRIBUTIONS.get(name)
    if dist is None:  # e.g. 'python' (the minimal environment): the interpreter is the framework
        return {"name": name, "package": None, "installed": platform.python_version()}
    try:
        installed: str | None = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    return {"name": name, "package": dist, "installed": installed}


def _devices(framework: str | None) -> list[str]:
    """What this kernel can compute on: 'cpu' plus the GPUs it sees. Cheap on purpose (the panel asks right
    after a switch, before the user's first cell): the framework's own view only when it is already loaded
    (importing torch, jax or tensorflow takes seconds), else the driver's (nvidia-smi, /dev/nvidiaN)."""
    devices = ["cpu"]
    try:
        if framework == "pytorch" and "torch" in sys.modules:
            torch = sys.modules["torch"]
            return devices + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        if framework == "jax" and "jax" in sys.modules:
            return [str(d) for d in sys.modules["jax"].devices()]
    except Exception:  # a broken install must not break the panel; the driver's view below still works
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
            return devices + [line.split(" (")[0] for line in out.splitlines() if line.startswith("GPU ")]
        except (OSError, subprocess.SubprocessError):
            pass
    return devices + [os.path.basename(p) for p in sorted(glob.glob("/dev/nvidia[0-9]*"))]
