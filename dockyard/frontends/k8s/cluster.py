"""Objects both kernel paths share: the namespace, the service accounts and the namespace-scoped Role (instead of
the cluster-admin binding gateway_provisioners and Enterprise Gateway default to), and the image pre-pull
DaemonSets (a CUDA image is gigabytes: pulled once per node ahead of time, not inside a kernel's launch timeout).
"""

from __future__ import annotations

from typing import Any

from ...specs import Spec, Variant
from .manifest_parts import KERNEL_GID, KERNEL_UID, K8sOptions, container_security, gpu_scheduling, kernel_image, labels
from .podtemplate import KERNEL_SERVICE_ACCOUNT

GATEWAY_SERVICE_ACCOUNT = "dockyard-gateway"  # the Jupyter server / Enterprise Gateway that launches kernel pods
GATEWAY_ROLE = "dockyard-kernel-launcher"
PAUSE_COMMAND = ["sleep", "infinity"]  # coreutils: in every Debian-based image


def namespace(options: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": options.namespace,
            "labels": {
                **labels("namespace"),
                # Pod Security Admission: the kernels' pod spec meets "restricted"; anything else is refused.
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def rbac(options: K8sOptions) -> list[dict[str, Any]]:
    ns = options.namespace
    meta = {"namespace": ns, "labels": labels("rbac")}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": GATEWAY_SERVICE_ACCOUNT, **meta},
        },
        {
            # Kernels get no API access at all (the pod template also turns off the token mount).
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": KERNEL_SERVICE_ACCOUNT, **meta},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": GATEWAY_ROLE, **meta},
            "rules": [
                # Create, watch and delete kernel pods; read its own pod (the kernel pods' owner).
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
                # The launchers' status checks read services and claims; nothing is created there.
                {"apiGroups": [""], "resources": ["services", "persistentvolumeclaims"], "verbs": ["list"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": GATEWAY_ROLE, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": GATEWAY_SERVICE_ACCOUNT, "namespace": ns}],
        },
    ]


def _prepull(name: str, variants: list[tuple[Spec, Variant]], options: K8sOptions, gpu: bool) -> dict[str, Any]:
    """One DaemonSet whose init containers are the images: each node pulls them once, then the pod idles."""
    security = container_security(KERNEL_UID, KERNEL_GID, read_only_root=True)
    init = [
        {
            "name": f"pull-{spec.name}-{variant.name}",
            "image": kernel_image(variant, options),
            "imagePullPolicy": "IfNotPresent",
            "command": ["true"],
            "securityContext": security,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        }
        for spec, variant in variants
    ]
    first = variants[0][1]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": init,
        "containers": [
            {
                "name": "pause",
                "image": kernel_image(first, options),
                "command": PAUSE_COMMAND,
                "securityContext": security,
                "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
            }
        ],
    }
    if gpu:
        pod_spec |= {k: v for k, v in gpu_scheduling(first, options).items() if k == "tolerations"}
        # Only nodes with a GPU (NVIDIA's GPU feature discovery sets this label) pull the CUDA images.
        pod_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
                    ]
                }
            }
        }
    match = {**labels("prepull"), "dockyard.io/prepull": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": f"dockyard-prepull-{name}", "namespace": options.namespace, "labels": match},
        "spec": {
            "selector": {"matchLabels": {"dockyard.io/prepull": name}},
            "template": {"metadata": {"labels": match}, "spec": pod_spec},
        },
    }


def prepull(specs: list[Spec], options: K8sOptions) -> list[dict[str, Any]]:
    cpu = [(s, v) for s in specs for v in s.variants.values() if v.gpu == "none"]
    gpu = [(s, v) for s in specs for v in s.variants.values() if v.gpu != "none"]
    out = []
    if cpu:
        out.append(_prepull("cpu", cpu, options, gpu=False))
    if gpu:
        out.append(_prepull("gpu", gpu, options, gpu=True))
    return out
