"""JupyterHub on Kubernetes (Zero to JupyterHub): a `singleuser` values snippet with one profile per variant, and
the single-user image that goes with it (an environment image plus jupyterhub-singleuser and JupyterLab).

/dev/shm is a memory-backed emptyDir in `singleuser.storage.extraVolumes`, sized for the largest environment: a
profile's `volumes` override would replace the whole list, dropping the user's home volume. The sizeLimit is a cap,
not a reservation (pages count against the pod's memory only when used).
"""

from __future__ import annotations

from typing import Any

from ...images.naming import image_alias
from ...kernel.kernelspec import variant_label
from ...specs import Spec, Variant
from ..compose import JUPYTERLAB, lab_display_name
from .manifest_parts import GPU_RESOURCE, KERNEL_GID, KERNEL_UID, MARKER, K8sOptions, quantity, wants_gpu

JUPYTERHUB = "jupyterhub==5.4.6"  # jupyterhub-singleuser; keep the major version of your hub
HUB_SUFFIX = "hub"


def hub_image(variant: Variant, options: K8sOptions) -> str:
    return options.image(f"{image_alias(variant)}-{HUB_SUFFIX}")


def dockerfile() -> str:
    return (
        f"# {MARKER}: an environment image (ENV_IMAGE) as a JupyterHub single-user server.\n"
        "ARG ENV_IMAGE\n"
        "FROM ${ENV_IMAGE}\n"
        "USER root\n"
        f"RUN pip install --no-cache-dir {JUPYTERLAB} {JUPYTERHUB} && pip check\n"
        "ENV HOME=/home/jovyan\n"
        f"RUN install -d -o {KERNEL_UID} -g {KERNEL_GID} /home/jovyan\n"
        f"USER {KERNEL_UID}:{KERNEL_GID}\n"
        "WORKDIR /home/jovyan\n"
        'CMD ["jupyterhub-singleuser"]\n'
    )


def _profile(spec: Spec, variant: Variant, options: K8sOptions) -> dict[str, Any]:
    override: dict[str, Any] = {"image": hub_image(variant, options)}
    if wants_gpu(variant):
        override["extra_resource_guarantees"] = {GPU_RESOURCE: "1"}
        override["extra_resource_limits"] = {GPU_RESOURCE: "1"}  # the API server wants limit = request for GPUs
        if options.tolerations:
            override["tolerations"] = options.toleration_objects()
        if options.runtime_class:
            override["extra_pod_config"] = {"runtimeClassName": options.runtime_class}
    return {
        "display_name": lab_display_name(spec, variant),
        "slug": f"{spec.name}-{variant.name}",
        "description": f"{spec.description} ({variant_label(variant)}"
        + (f"; needs {variant.cuda.describe()})" if variant.cuda else ")"),
        "kubespawner_override": override,
    }


def values(specs: list[Spec], options: K8sOptions) -> dict[str, Any]:
    shm = max((s for s in specs), key=lambda s: _bytes(s.resources["shm_size"])).resources["shm_size"]
    return {
        "singleuser": {
            "uid": KERNEL_UID,
            "fsGid": KERNEL_GID,
            "storage": {
                "extraVolumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(shm)}}],
                "extraVolumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            },
            "profileList": [_profile(s, v, options) for s in specs for v in s.variants.values()],
        }
    }


def _bytes(size: str) -> int:
    number, unit = size[:-1], size[-1].lower()
    if unit.isdigit():
        return int(size)
    return int(number) * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
