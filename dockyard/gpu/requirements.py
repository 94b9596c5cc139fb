"""What a CUDA variant needs from the host (CUDA major → driver, compute capability), and the check.

Framework wheels bundle the CUDA user-space libraries, so the host only has to bring a driver that
is new enough for that CUDA major and a card the wheels have kernels for. Both are read from
`nvidia-smi` inside a container that got the GPU (see probe.py), never from the host directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The oldest Linux driver branch each CUDA major runs on (NVIDIA's CUDA compatibility table: minor-version
# compatibility for 12.x starts at 525.60.13, for 13.x at 580.65.06), and the oldest card the toolkit itself
# still targets (CUDA 13 dropped Maxwell/Pascal/Volta, i.e. everything below 7.5).
DRIVER_FOR_CUDA = {12: "525.60.13", 13: "580.65.06"}
COMPUTE_FOR_CUDA = {12: "5.0", 13: "7.5"}
# torch on PyPI (no +cuXYZ, no CUDA index) ships one CUDA major per release; extend as releases are added.
_TORCH_PYPI_CUDA = {"2.13": 13}
SMI_QUERY = ["nvidia-smi", "--query-gpu=driver_version,compute_cap,name", "--format=csv,noheader"]


@dataclass(frozen=True)
class CudaNeeds:
    """A variant's declared (or derived) needs; see the `cuda` block in env.schema.json."""

    major: int
    min_driver: str
    min_compute_capability: str

    def describe(self) -> str:
        return f"CUDA {self.major} (driver ≥ {self.min_driver}, compute capability ≥ {self.min_compute_capability})"


@dataclass(frozen=True)
class GpuInfo:
    driver: str
    compute_capability: str
    name: str = ""


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def parse_smi(output: str) -> list[GpuInfo]:
    """Rows of `nvidia-smi --query-gpu=driver_version,compute_cap,name --format=csv,noheader`.

    Old drivers (< 510) do not know `compute_cap` and print an error instead of rows: that yields
    no GPUs, which the caller reports as "could not read the GPUs" rather than guessing.
    """
    gpus: list[GpuInfo] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 2 or not re.fullmatch(r"\d+(\.\d+)+", cells[0]) or not re.fullmatch(r"\d+\.\d+", cells[1]):
            continue
        gpus.append(GpuInfo(driver=cells[0], compute_capability=cells[1], name=", ".join(cells[2:])))
    return gpus


def check(needs: CudaNeeds, gpus: Iterable[GpuInfo], ref: str, older: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(problem, fix) pairs; empty when every GPU can run the variant's CUDA code.

    older: refs of sibling variants on an older CUDA major, offered as the alternative to a new driver.
    """
    problems: list[tuple[str, str]] = []
    older = list(older)
    alt = f", or use {' or '.join(older)} (built for an older CUDA)" if older else ", or a variant on an older CUDA"
    for i, g in enumerate(gpus):
        label = f"GPU {i}" + (f" ({g.name})" if g.name else "")
        if version_tuple(g.driver) < version_tuple(needs.min_driver):
            problems.append(
                (
                    f"{label} has NVIDIA driver {g.driver}, but {ref} is built for CUDA {needs.major}, which needs "
                    f"driver ≥ {needs.min_driver}; the framework will not see the GPU",
                    f"install NVIDIA driver {needs.min_driver.split('.')[0]} or newer{alt}",
                )
            )
        if version_tuple(g.compute_capability) < version_tuple(needs.min_compute_capability):
            problems.append(
                (
                    f"{label} has compute capability {g.compute_capability}, but {ref}'s CUDA {needs.major} wheels "
                    f"have no kernels below {needs.min_compute_capability}; GPU code will not run on it",
                    "use a newer GPU, or a variant on an older CUDA whose wheels still support this card"
                    + (f" ({', '.join(older)})" if older else ""),
                )
            )
    return problems


def derive_major(packages: Iterable[str], index_urls: Iterable[str] = ()) -> int | None:
    """The CUDA major that a variant's pins pull in, where the wheels say so; None when they do not.

    jax[cuda12], nvidia-*-cu12 pins, torch==X+cu126 or a /whl/cu126 index name it outright;
    tensorflow[and-cuda] (2.x) pulls the cu12 NVIDIA wheels; torch from PyPI follows _TORCH_PYPI_CUDA.
    """
    found: set[int] = set()
    torch_version = None
    for text in packages:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        for extra in req.extras:
            if m := re.fullmatch(r"cuda(\d+)(_.*)?", extra):
                found.add(int(m.group(1)))
        if m := re.fullmatch(r"nvidia-.*-cu(\d+)", name):
            found.add(int(m.group(1)))
        if name == "tensorflow" and "and-cuda" in req.extras:
            found.add(12)
        if name == "torch":
            torch_version = next(iter(req.specifier)).version if req.specifier else None
    if torch_version is not None:
        local = re.search(r"\+cu(\d+?)(\d)$", torch_version)
        index = next((m for u in index_urls if (m := re.search(r"/whl/cu(\d+?)(\d)/?$", u))), None)
        if local:
            found.add(int(local.group(1)))
        elif index:
            found.add(int(index.group(1)))
        elif not any(re.search(r"/whl/(cpu|rocm)", u) for u in index_urls):
            release = ".".join(torch_version.split(".")[:2])
            if release in _TORCH_PYPI_CUDA:
                found.add(_TORCH_PYPI_CUDA[release])
    if len(found) == 1:
        return found.pop()
    return None  # nothing, or a mix the spec must settle by declaring cuda.major
