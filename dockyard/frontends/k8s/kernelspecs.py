"""Spec + variant → a kernelspec for gateway_provisioners' KubernetesProvisioner (one pod per kernel).

The folder holds kernel.json, dockyard's pod template and dockyard's launcher wrapper. kernel.json names the launcher
by absolute path under K8sOptions.kernels_dir (default /usr/local/share/jupyter/kernels, where
`jupyter kernelspec install --prefix /usr/local k8s/kernels/NAME` puts it): gateway_provisioners fills in only its own
argv placeholders, so jupyter_client's `{resource_dir}` would reach the command line as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...kernel.kernelspec import kernel_name, variant_label
from ...specs import Spec, Variant
from .common import MARKER, K8sOptions, kernel_image, launch_timeout, launcher_path
from .podtemplate import TEMPLATE_FILE, pod_template

LAUNCHER_FILE = "launch_kubernetes.py"
LAUNCHER_SOURCE = Path(__file__).with_name(LAUNCHER_FILE)
PROVISIONER = "kubernetes-provisioner"  # gateway_provisioners' entry point


def k8s_kernel_name(spec: Spec, variant: Variant) -> str:
    return f"{kernel_name(spec, variant)}-k8s"


def display_name(spec: Spec, variant: Variant) -> str:
    what = f"Python {spec.framework_version} {spec.name}" if spec.framework == "python" else spec.display_name
    if spec.framework != "python":
        what += f" {spec.framework_version}"
    return f"{what} ({variant_label(variant)}, Kubernetes)"


def kernel_json(spec: Spec, variant: Variant, options: K8sOptions) -> dict[str, Any]:
    return {
        "argv": [
            "python",
            launcher_path(k8s_kernel_name(spec, variant), options),
            "--kernel-id",
            "{kernel_id}",
            "--port-range",
            "{port_range}",
            "--response-address",
            "{response_address}",
            "--public-key",
            "{public_key}",
            "--transport-encryption",
            "{transport_encryption}",
            "--kernel-class-name",
            "ipykernel.ipkernel.IPythonKernel",
        ],
        "display_name": display_name(spec, variant),
        "language": spec.kernel["language"],
        "interrupt_mode": "signal",
        "env": dict(sorted(spec.kernel["env"].items())),
        "metadata": {
            "generated_by": MARKER,
            "dockyard": {"env": spec.name, "variant": variant.name},
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER,
                "config": {
                    "image_name": kernel_image(variant, options),
                    "launch_timeout": launch_timeout(spec, variant),
                },
            },
        },
    }


def files(spec: Spec, variant: Variant, options: K8sOptions) -> dict[str, bytes]:
    """{'<kernel name>/kernel.json': ..., '.../scripts/kernel-pod.yaml.j2': ..., '.../scripts/launch_kubernetes.py'}."""
    folder = k8s_kernel_name(spec, variant)
    return {
        f"{folder}/kernel.json": (json.dumps(kernel_json(spec, variant, options), indent=2) + "\n").encode(),
        f"{folder}/scripts/{TEMPLATE_FILE}": pod_template(spec, variant, options).encode(),
        f"{folder}/scripts/{LAUNCHER_FILE}": LAUNCHER_SOURCE.read_bytes(),
    }
