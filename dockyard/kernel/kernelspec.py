"""Spec + Variant → a Jupyter kernelspec directory (kernel.json and logos) that runs the kernel in a container.

kernel.json names no image and no host path: `metadata.kernel_provisioner` hands the env and variant to
DockerProvisioner, which resolves the image with the user's own site settings at launch. So the files are
the same on every machine, are checked in under kernels/, and a test regenerates and diffs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packaging.version import Version

from ..emit import jupyter
from ..generated import Tree
from ..images.naming import image_alias
from ..specs import Spec, Variant
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


def supports_curve(variant: Variant) -> bool:
    """ipykernel 7 reads CurveZMQ keys from its connection file; older ones would ignore them and hang."""
    pin = next((p for p in variant.python_packages if p.startswith("ipykernel==")), "")
    return bool(pin) and Version(pin.split("==")[1]) >= Version("7")


def kernel_json(spec: Spec, variant: Variant) -> dict[str, Any]:
    data = {
        "argv": list(ARGV),
        "display_name": display_name(spec, variant),
        "language": spec.kernel["language"],
        "interrupt_mode": spec.kernel["interrupt_mode"],
        "env": jupyter.env(spec.kernel["env"]),  # `$` escaped: jupyter_client expands ${VAR} in env values
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": {"env": spec.name, "variant": variant.name},
            },
            "debugger": True,  # ipykernel ≥ 6 implements the debug protocol; JupyterLab's debugger needs this flag
            # For `dockyard kernels list` and people reading the file; the provisioner uses the config above.
            "dockyard": {**spec.summary(variant), "image": image_alias(variant)},
        },
    }
    if supports_curve(variant):
        # jupyter_client then encrypts kernel traffic whenever its transport_encryption is on.
        data["metadata"]["supported_encryption"] = ["curve"]
    return data


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


def owned(folder: Path) -> list[Path]:
    """Every file of a kernelspec dockyard generated; [] for anyone else's."""
    if not folder.name.startswith(PREFIX) or not is_dockyard(folder):
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def tree(specs: list[Spec], out_dir: Path) -> Tree:
    return Tree(render_all(specs), out_dir, owned)


def write_dir(spec: Spec, variant: Variant, dest: Path) -> Path:
    """One kernelspec in dest/<kernel name>/ (what install_kernel_spec copies from)."""
    target = dest / kernel_name(spec, variant)
    target.mkdir(parents=True, exist_ok=True)
    for file, data in files(spec, variant).items():
        (target / file).write_bytes(data)
    return target
