"""Spec + Variant → a Jupyter kernelspec directory (kernel.json and logos) that runs the kernel in a container.

kernel.json names no image and no host path: `metadata.kernel_provisioner` hands the env and variant to
DockerProvisioner, which resolves the image with the user's own site settings at launch. So the files are
the same on every machine, are checked in under kernels/, and a test regenerates and diffs them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..spec import Spec, Variant
from . import logos

PROVISIONER_NAME = "dockyard-docker-provisioner"
PREFIX = "dockyard-"
KERNEL_JSON = "kernel.json"
DIRNAME = "kernels"
# The argv runs inside the container: `python` is the image's venv (first on its PATH), and the
# provisioner maps {connection_file} to the read-only mounted copy of the host's connection file.
ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def kernel_name(spec: Spec, variant: Variant) -> str:
    return f"{PREFIX}{spec.name}-{variant.name}"


def variant_label(variant: Variant) -> str:
    """'cpu' → 'CPU', 'cuda-12' → 'CUDA 12': how people write them."""
    head, _, rest = variant.name.partition("-")
    return " ".join(filter(None, [head.upper(), rest.replace("-", " ")]))


def display_name(spec: Spec, variant: Variant) -> str:
    """What the launcher shows: framework and version first (what people pick by), then variant and 'container'."""
    if spec.framework == "python":
        what = f"Python {spec.framework_version} {spec.name}"
    else:
        what = f"{spec.display_name} {spec.framework_version}"
    return f"{what} ({variant_label(variant)}, container)"


def kernel_json(spec: Spec, variant: Variant) -> dict[str, Any]:
    return {
        "argv": list(ARGV),
        "display_name": display_name(spec, variant),
        "language": spec.kernel["language"],
        "interrupt_mode": spec.kernel["interrupt_mode"],
        "env": dict(spec.kernel["env"]),
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": {"env": spec.name, "variant": variant.name},
            },
            "debugger": True,  # ipykernel ≥ 6 implements the debug protocol; JupyterLab's debugger needs this flag
            # For `dockyard kernels list`, the panel and people reading the file; the provisioner uses the config above.
            "dockyard": {
                "env": spec.name,
                "variant": variant.name,
                "framework": spec.framework,
                "framework_version": spec.framework_version,
                "python": spec.python,
                "gpu": variant.gpu,
                "image": f"dockyard/{spec.name}:{variant.name}",
            },
        },
    }


def files(spec: Spec, variant: Variant) -> dict[str, bytes]:
    """The kernelspec directory's files, byte for byte reproducible."""
    text = json.dumps(kernel_json(spec, variant), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    out = {KERNEL_JSON: text.encode()}
    for size in logos.SIZES:
        out[f"logo-{size}x{size}.png"] = logos.png(spec.framework, size)
    return out


def render_all(specs: list[Spec]) -> dict[str, bytes]:
    """{'<kernel name>/<file>': bytes} for every variant of every spec."""
    out: dict[str, bytes] = {}
    for spec in specs:
        for variant in spec.variants.values():
            name = kernel_name(spec, variant)
            out.update({f"{name}/{file}": data for file, data in files(spec, variant).items()})
    return dict(sorted(out.items()))


def is_dockyard(spec_dir: Path) -> bool:
    """A kernelspec dockyard generated (its kernel.json carries metadata.dockyard); others are never touched."""
    try:
        data = json.loads((spec_dir / KERNEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "dockyard" in data.get("metadata", {})


def _generated(out_dir: Path) -> set[str]:
    if not out_dir.is_dir():
        return set()
    return {p.name for p in out_dir.glob(f"{PREFIX}*") if p.is_dir() and is_dockyard(p)}


def differences(tree: dict[str, bytes], out_dir: Path, *, complete: bool) -> list[str]:
    """What `write` would change: missing, outdated, extra and (with the complete set) stale kernelspecs."""
    problems = []
    for rel, data in tree.items():
        path = out_dir / rel
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_bytes() != data:
            problems.append(f"outdated: {path}")
    wanted_dirs = {rel.split("/")[0] for rel in tree}
    for name in sorted(_generated(out_dir)):
        if name in wanted_dirs:
            extra = sorted(p for p in (out_dir / name).rglob("*") if p.is_file() and f"{name}/{p.relative_to(out_dir / name)}" not in tree)
            problems += [f"extra: {p}" for p in extra]
        elif complete:
            problems.append(f"stale: {out_dir / name}")
    return problems


def write(tree: dict[str, bytes], out_dir: Path, *, complete: bool) -> list[Path]:
    """Write the files that differ; with the complete set, remove generated kernelspecs of gone envs/variants."""
    changed = []
    for rel, data in tree.items():
        path = out_dir / rel
        if path.exists() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        changed.append(path)
    wanted_dirs = {rel.split("/")[0] for rel in tree}
    for name in sorted(_generated(out_dir)):
        if name in wanted_dirs:
            for p in sorted((out_dir / name).rglob("*")):
                if p.is_file() and f"{name}/{p.relative_to(out_dir / name)}" not in tree:
                    p.unlink()
                    changed.append(p)
        elif complete:
            shutil.rmtree(out_dir / name)
            changed.append(out_dir / name)
    return changed


def write_dir(spec: Spec, variant: Variant, dest: Path) -> Path:
    """One kernelspec in dest/<kernel name>/ (what install_kernel_spec copies from)."""
    target = dest / kernel_name(spec, variant)
    target.mkdir(parents=True, exist_ok=True)
    for file, data in files(spec, variant).items():
        (target / file).write_bytes(data)
    return target
