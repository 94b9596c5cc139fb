"""Spec + variant → kernel-pod.yaml.j2, dockyard's pod template for gateway_provisioners' KubernetesProvisioner.

gateway_provisioners 0.5.0 fills its template with `"{{ value }}"`: a crafted KERNEL_* value closes the quotes and
adds keys (`privileged: true`, hostPath volumes), `KERNEL_UID=00` passes its UID-0 check (a string compare) and
renders as 0, and client-supplied volumes are pasted in verbatim (Enterprise Gateway 3.3.0 fixed the same template,
GHSA-cfw7-6c5v-2wjq). Here:

- every value a client can set passes through `tojson`: a JSON string is one YAML scalar, so no value can add a
  key, a list item or a document; numbers go through `int` with a fallback and are clamped;
- what decides privilege is fixed by the template, not by variables: non-root UID (a client UID below 1 falls back
  to the image's user), all capabilities dropped, no privilege escalation, read-only root, no service-account token,
  and no volumes but /tmp and a memory-backed /dev/shm (KERNEL_VOLUMES / KERNEL_VOLUME_MOUNTS are ignored);
- GPU variants get the GPU as both request and limit (the API server refuses a GPU request without an equal
  limit), tolerations and a runtime class from the options.

Generation-time values are written as JSON literals (json.dumps), so even odd option values stay data.
"""

from __future__ import annotations

import json

from ...specs import Spec, Variant
from .common import (
    GPU_RESOURCE,
    KERNEL_GID,
    KERNEL_UID,
    LABEL_ENV,
    LABEL_ROLE,
    LABEL_VARIANT,
    MANAGED_BY,
    MARKER,
    K8sOptions,
    gpu_scheduling,
    quantity,
    wants_gpu,
)

TEMPLATE_FILE = "kernel-pod.yaml.j2"
KERNEL_SERVICE_ACCOUNT = "dockyard-kernel"  # a service account with no role: kernels never talk to the API
HOME = "/tmp"  # writable for any UID (an emptyDir), the root file system is read-only


def _j(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _int_from_client(var: str, name: str, default: int, low: int, high: int | None) -> list[str]:
    """Jinja lines setting `name` from a KERNEL_* string: digits only, else default; then clamped to [low, high]."""
    lines = [
        f"{{% set {name} = {var} | string if {var} is defined else '' %}}",
        f"{{% set {name} = {name} | int if {name}.isdigit() and {name} | length < 10 else {default} %}}",
        f"{{% if {name} < {low} %}}{{% set {name} = {default} %}}{{% endif %}}",
    ]
    if high is not None:
        lines.append(f"{{% if {name} > {high} %}}{{% set {name} = {high} %}}{{% endif %}}")
    return lines


def pod_template(spec: Spec, variant: Variant, options: K8sOptions) -> str:
    gpu = wants_gpu(variant)
    lines = [
        f"{{# {MARKER} from envs/{spec.name}.yaml, variant {variant.name}. Edit the spec, then run",
        "   'dockyard k8s generate'. Every KERNEL_* value is a string here and goes through tojson or int. #}",
        *_int_from_client("kernel_uid", "uid", KERNEL_UID, 1, None),
        *_int_from_client("kernel_gid", "gid", KERNEL_GID, 1, None),
    ]
    if gpu:
        lines += _int_from_client("kernel_gpus", "gpus", 1, 1, options.max_gpus)
    lines += [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  name: {{ kernel_pod_name | string | tojson }}",
        "  namespace: {{ kernel_namespace | string | tojson }}",
        "  labels:",
        "    kernel_id: {{ kernel_id | string | tojson }}",
        "    app: gateway-provisioners",  # the provisioner finds its pod by kernel_id and component
        "    component: kernel",
        f"    {MANAGED_BY}: dockyard",
        f"    {LABEL_ROLE}: kernel",
        f"    {LABEL_ENV}: {_j(spec.name)}",
        f"    {LABEL_VARIANT}: {_j(variant.name)}",
        "  annotations:",
        '    cluster-autoscaler.kubernetes.io/safe-to-evict: "false"',
    ]
    if variant.cuda is not None:  # what the node's driver and card must bring (gpu/requirements.py), for people
        lines.append(f"    dockyard.io/cuda-needs: {_j(variant.cuda.describe())}")
    lines += [
        "spec:",
        "  restartPolicy: Never",
        f"  serviceAccountName: {_j(KERNEL_SERVICE_ACCOUNT)}",
        "  automountServiceAccountToken: false",
        "  enableServiceLinks: false",
        "  securityContext:",
        "    runAsNonRoot: true",
        "    runAsUser: {{ uid }}",
        "    runAsGroup: {{ gid }}",
        "    fsGroup: {{ gid }}",
        "    seccompProfile:",
        "      type: RuntimeDefault",
    ]
    for key, value in gpu_scheduling(variant, options).items():
        lines.append(f"  {key}: {_j(value)}")
    lines += [
        "  containers:",
        "  - name: kernel",
        "    image: {{ kernel_image | string | tojson }}",
        "    imagePullPolicy: IfNotPresent",
        f"    workingDir: {_j(HOME)}",
        "    env:",
        f"    - {{name: HOME, value: {_j(HOME)}}}",
        "    - {name: KERNEL_LANGUAGE, value: python}",
    ]
    # The spec's kernel variables belong to the pod itself: the launcher passes only KERNEL_* from the server's side.
    lines += [f"    - {{name: {_j(k)}, value: {_j(v)}}}" for k, v in sorted(spec.kernel["env"].items())]
    if gpu:
        lines += [
            "    resources:",
            "      requests:",
            f"        {GPU_RESOURCE}: {{{{ gpus }}}}",
            "      limits:",
            f"        {GPU_RESOURCE}: {{{{ gpus }}}}",
        ]
    lines += [
        "    securityContext:",
        "      runAsNonRoot: true",
        "      allowPrivilegeEscalation: false",
        "      privileged: false",
        "      readOnlyRootFilesystem: true",
        "      capabilities:",
        "        drop: [ALL]",
        "    volumeMounts:",
        f"    - {{name: tmp, mountPath: {_j(HOME)}}}",
        "    - {name: shm, mountPath: /dev/shm}",
        "  volumes:",
        "  - name: tmp",
        "    emptyDir: {}",
        "  - name: shm",
        "    emptyDir:",
        "      medium: Memory",
        f"      sizeLimit: {_j(quantity(spec.resources['shm_size']))}",
    ]
    return "\n".join(lines) + "\n"
