"""Spec + variant → a kernelspec for gateway_provisioners' KubernetesProvisioner (one pod per kernel).

The folder holds kernel.json only; the launcher wrapper and the pod template are one shared copy (k8s/launcher/,
installed beside the kernels folder, see common.launcher_dir). kernel.json names the launcher and its own folder by
absolute path under K8sOptions.kernels_dir (default /usr/local/share/jupyter/kernels, where
`jupyter kernelspec install --prefix /usr/local k8s/kernels/NAME` puts it): gateway_provisioners fills in only its own
argv placeholders, so jupyter_client's `{resource_dir}` would reach the command line as it is. The launcher reads
the kernel's values (metadata.dockyard.pod) from that kernel.json: data, never template text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...emit import jupyter
from ...kernel.kernelspec import kernel_name, variant_label
from ...specs import Spec, Variant
from .manifest_parts import MARKER, K8sOptions, kernel_image, kernelspec_path, launch_timeout, launcher_path
from .podtemplate import TEMPLATE_FILE, pod_template, pod_values

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
            launcher_path(options),
            "--kernelspec",
            kernelspec_path(k8s_kernel_name(spec, variant), options),
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
        "env": jupyter.env(spec.kernel["env"]),  # `$` escaped: jupyter_client expands ${VAR} in env values
        "metadata": {
            "generated_by": MARKER,
            "dockyard": {"env": spec.name, "variant": variant.name, "pod": pod_values(spec, variant, options)},
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
    """{'<kernel name>/kernel.json': ...}: the pod template and launcher are shared (launcher_files)."""
    return {
        f"{k8s_kernel_name(spec, variant)}/kernel.json": jupyter.dumps(kernel_json(spec, variant, options)).encode()
    }


def launcher_files() -> dict[str, bytes]:
    """The one launcher and pod template every kernelspec names (k8s/launcher/, installed at launcher_dir)."""
    return {TEMPLATE_FILE: pod_template().encode(), LAUNCHER_FILE: LAUNCHER_SOURCE.read_bytes()}
