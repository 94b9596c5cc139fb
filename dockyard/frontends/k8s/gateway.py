"""Enterprise Gateway on Kubernetes: Helm values for its chart, its kernelspecs, and the gateway image they need.

Enterprise Gateway 3.x launches kernels through process proxies (`metadata.process_proxy`), with the same
kernel-image contract and launcher protocol as gateway_provisioners (which was split out of it). Its kernelspecs
here use dockyard's launcher wrapper and pod template; the wrapper reuses gateway_provisioners' launcher code, so the
gateway image is Enterprise Gateway's plus gateway_provisioners' files and these kernelspecs (Dockerfile below).
The chart's own RBAC (a ClusterRole bound per kernel namespace) is turned off: cluster/rbac.yaml's namespace-scoped
Role is bound to the gateway's service account, and kernels run in the gateway's namespace.
"""

from __future__ import annotations

from typing import Any

from ...emit import jupyter
from ...specs import Spec, Variant
from .cluster import GATEWAY_SERVICE_ACCOUNT
from .kernelspecs import display_name, k8s_kernel_name
from .manifest_parts import (
    MARKER,
    K8sOptions,
    kernel_image,
    kernelspec_path,
    launch_timeout,
    launcher_dir,
    launcher_path,
)
from .podtemplate import pod_values

# 3.3.0 or later: before it, the gateway itself rendered KERNEL_POD_NAME as a Jinja template (GHSA-f49j-v924-fx9w,
# code execution in the gateway) and compared UIDs as strings (GHSA-chq7-94j8-cj28); no kernelspec can fix those.
EG_VERSION = "3.3.0"
EG_IMAGE = f"elyra/enterprise-gateway:{EG_VERSION}"
PROCESS_PROXY = "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy"
CULL_IDLE_SECONDS = 3600


def kernel_json(spec: Spec, variant: Variant, options: K8sOptions) -> dict[str, Any]:
    return {
        "argv": [
            "python",
            launcher_path(options),
            "--kernelspec",
            kernelspec_path(k8s_kernel_name(spec, variant), options),
            "--RemoteProcessProxy.kernel-id",
            "{kernel_id}",
            "--RemoteProcessProxy.port-range",
            "{port_range}",
            "--RemoteProcessProxy.response-address",
            "{response_address}",
            "--RemoteProcessProxy.public-key",
            "{public_key}",
            "--RemoteProcessProxy.kernel-class-name",
            "ipykernel.ipkernel.IPythonKernel",
        ],
        "display_name": display_name(spec, variant),
        "language": spec.kernel["language"],
        "interrupt_mode": "signal",
        "env": jupyter.env(spec.kernel["env"]),  # `$` escaped: jupyter_client expands ${VAR} in env values
        "metadata": {
            "generated_by": MARKER,
            "dockyard": {"env": spec.name, "variant": variant.name, "pod": pod_values(spec, variant, options)},
            "process_proxy": {
                "class_name": PROCESS_PROXY,
                "config": {"image_name": kernel_image(variant, options)},
            },
        },
    }


def gateway_image(options: K8sOptions) -> str:
    return options.image(f"dockyard/enterprise-gateway:{EG_VERSION}")


def dockerfile(options: K8sOptions) -> str:
    return (
        f"# {MARKER}: Enterprise Gateway with dockyard's kernelspecs and the launcher code they reuse.\n"
        f"# Build from k8s/: docker build -f enterprise-gateway/Dockerfile -t {gateway_image(options)} .\n"
        f"FROM {EG_IMAGE}\n"
        "USER root\n"
        "# Files only: the launcher needs gateway_provisioners' launch_kubernetes.py, kubernetes and jinja2 (the\n"
        "# image has both); its dependencies would replace the jupyter_client that Enterprise Gateway pins.\n"
        "RUN pip install --no-cache-dir --no-deps gateway_provisioners==0.5.0\n"
        f"COPY enterprise-gateway/kernels/ {options.kernels_dir}/\n"
        "# The one launcher and pod template every kernelspec names.\n"
        f"COPY launcher/ {launcher_dir(options)}/\n"
        "USER jovyan\n"
    )


def values(specs: list[Spec], options: K8sOptions) -> dict[str, Any]:
    variants = [(s, v) for s in specs for v in s.variants.values()]
    names = [k8s_kernel_name(s, v) for s, v in variants]
    default = next((k8s_kernel_name(s, v) for s, v in variants if s.name == "minimal" and v.name == "cpu"), names[0])
    return {
        "global": {"rbac": False},  # cluster/rbac.yaml: a Role in this namespace, not cluster-admin
        "image": gateway_image(options),
        "deployment": {"serviceAccountName": GATEWAY_SERVICE_ACCOUNT},
        "logLevel": "INFO",
        "kernel": {
            "shareGatewayNamespace": True,  # kernels in the gateway's namespace, where the Role applies
            # The slowest image's first start (pull included); each kernelspec's own timeout is in its kernel.json.
            "launchTimeout": max(launch_timeout(s, v) for s, v in variants),
            "cullIdleTimeout": CULL_IDLE_SECONDS,
            "allowedKernels": names,
            "defaultKernelName": default,
        },
        # The Kernel Image Puller mounts the node's container runtime socket; cluster/prepull.yaml pulls the same
        # images with unprivileged DaemonSets instead.
        "kip": {"enabled": False},
    }
