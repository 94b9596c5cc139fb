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

The template is fixed text, the same for every kernel: no spec or option value is ever written into it. The spec's
side arrives as data (`pod`, from kernel.json's metadata.dockyard.pod, see pod_values), the client's as KERNEL_*
strings, and the launcher renders it in a sandboxed Jinja environment (jinja2.sandbox).
"""

from __future__ import annotations

from typing import Any

from ...emit import kubernetes
from ...specs import Spec, Variant
from .manifest_parts import (
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


def pod_values(spec: Spec, variant: Variant, options: K8sOptions) -> dict[str, Any]:
    """What the template reads about this kernel (kernel.json's metadata.dockyard.pod): plain JSON data."""
    scheduling = gpu_scheduling(variant, options)
    return {
        "env": spec.name,
        "variant": variant.name,
        "cuda_needs": variant.cuda.describe() if variant.cuda is not None else "",
        "gpu": wants_gpu(variant),
        "max_gpus": options.max_gpus,
        "runtime_class": scheduling.get("runtimeClassName", ""),
        "tolerations": scheduling.get("tolerations", []),
        # The spec's kernel variables belong to the pod itself: the launcher passes only KERNEL_* from the server.
        # `$` doubled: the kubelet would expand $(NAME) in the value (kernel.json, where jupyter_client reads the
        # same variables, escapes `$` for its own rules).
        "kernel_env": [{"name": k, "value": kubernetes.literal(v)} for k, v in sorted(spec.kernel["env"].items())],
        "shm_size": quantity(spec.resources["shm_size"]),
        **data_values(spec),
    }


def data_values(spec: Spec) -> dict[str, Any]:
    """The spec's mounts and secrets as cluster objects the site provides, by name only (docs/data-and-secrets.md):
    a PersistentVolumeClaim per mount (`dockyard-ENV-CACHE` for a cache, `dockyard-ENV-data-N` for a host folder,
    whose path means nothing on a node) and one Secret `dockyard-ENV-secrets` whose keys are the secret names.
    No value and no host path is ever written into a generated file. Absent keys: the template adds nothing."""
    out: dict[str, Any] = {}
    if spec.mounts:
        out["data"] = [
            {
                "volume": f"data-{i}",
                "claim": f"dockyard-{spec.name}-{m.cache}" if m.cache else f"dockyard-{spec.name}-data-{i}",
                "path": m.target or "/data/" + str(i),
                "read_only": m.read_only,
            }
            for i, m in enumerate(spec.mounts)
        ]
    if spec.secrets:
        out["secrets"] = {
            "name": secret_name(spec),
            "required": any(s.required for s in spec.secrets),
            "files": [{"key": s.name, "path": s.name} for s in spec.secrets],
            "env": [{"name": s.env, "key": s.name} for s in spec.secrets if s.env],
        }
    return out


def secret_name(spec: Spec) -> str:
    return f"dockyard-{spec.name}-secrets"


def _int_from_client(var: str, name: str, default: int, low: int, high: str | None) -> list[str]:
    """Jinja lines setting `name` from a KERNEL_* string: digits only, else default; then clamped to [low, high]."""
    lines = [
        f"{{% set {name} = {var} | string if {var} is defined else '' %}}",
        f"{{% set {name} = {name} | int if {name}.isdigit() and {name} | length < 10 else {default} %}}",
        f"{{% if {name} < {low} %}}{{% set {name} = {default} %}}{{% endif %}}",
    ]
    if high is not None:
        lines.append(f"{{% if {name} > {high} %}}{{% set {name} = {high} %}}{{% endif %}}")
    return lines


def pod_template() -> str:
    """The one pod template (k8s/launcher/kernel-pod.yaml.j2): dockyard's constants only, values as data."""
    lines = [
        f"{{# {MARKER}: the pod template of every dockyard Kubernetes kernelspec; 'dockyard k8s generate' rewrites it.",
        "   Fixed text: the spec's values come as data (pod: kernel.json's metadata.dockyard.pod), the client's as",
        "   KERNEL_* strings, and every one goes through tojson or int. #}",
        *_int_from_client("kernel_uid", "uid", KERNEL_UID, 1, None),
        *_int_from_client("kernel_gid", "gid", KERNEL_GID, 1, None),
        "{% if pod.gpu %}",
        *_int_from_client("kernel_gpus", "gpus", 1, 1, "pod.max_gpus | int"),
        "{% endif %}",
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
        f"    {LABEL_ENV}: {{{{ pod.env | string | tojson }}}}",
        f"    {LABEL_VARIANT}: {{{{ pod.variant | string | tojson }}}}",
        "  annotations:",
        '    cluster-autoscaler.kubernetes.io/safe-to-evict: "false"',
        "{% if pod.cuda_needs %}",  # what the node's driver and card must bring (gpu/requirements.py), for people
        "    dockyard.io/cuda-needs: {{ pod.cuda_needs | string | tojson }}",
        "{% endif %}",
        "spec:",
        "  restartPolicy: Never",
        f'  serviceAccountName: "{KERNEL_SERVICE_ACCOUNT}"',
        "  automountServiceAccountToken: false",
        "  enableServiceLinks: false",
        "  securityContext:",
        "    runAsNonRoot: true",
        "    runAsUser: {{ uid }}",
        "    runAsGroup: {{ gid }}",
        "    fsGroup: {{ gid }}",
        "    seccompProfile:",
        "      type: RuntimeDefault",
        "{% if pod.gpu and pod.runtime_class %}",
        "  runtimeClassName: {{ pod.runtime_class | string | tojson }}",
        "{% endif %}",
        "{% if pod.gpu and pod.tolerations %}",
        "  tolerations: {{ pod.tolerations | list | tojson }}",
        "{% endif %}",
        "  containers:",
        "  - name: kernel",
        "    image: {{ kernel_image | string | tojson }}",
        "    imagePullPolicy: IfNotPresent",
        f'    workingDir: "{HOME}"',
        "    env:",
        f'    - {{name: HOME, value: "{HOME}"}}',
        "    - {name: KERNEL_LANGUAGE, value: python}",
        "{% for e in pod.kernel_env %}",
        "    - {name: {{ e.name | string | tojson }}, value: {{ e.value | string | tojson }}}",
        "{% endfor %}",
        "{% if pod.secrets is defined %}",  # by reference: the value stays in the cluster's Secret
        "{% for e in pod.secrets.env %}",
        "    - name: {{ e.name | string | tojson }}",
        "      valueFrom: {secretKeyRef: {name: {{ pod.secrets.name | string | tojson }}, "
        "key: {{ e.key | string | tojson }}, optional: true}}",
        "{% endfor %}",
        "{% endif %}",
        "{% if pod.gpu %}",
        "    resources:",
        "      requests:",
        f"        {GPU_RESOURCE}: {{{{ gpus }}}}",
        "      limits:",
        f"        {GPU_RESOURCE}: {{{{ gpus }}}}",
        "{% endif %}",
        "    securityContext:",
        "      runAsNonRoot: true",
        "      allowPrivilegeEscalation: false",
        "      privileged: false",
        "      readOnlyRootFilesystem: true",
        "      capabilities:",
        "        drop: [ALL]",
        "    volumeMounts:",
        f'    - {{name: tmp, mountPath: "{HOME}"}}',
        "    - {name: shm, mountPath: /dev/shm}",
        "{% for d in (pod.data if pod.data is defined else []) %}",
        "    - {name: {{ d.volume | string | tojson }}, mountPath: {{ d.path | string | tojson }}, "
        "readOnly: {{ 'true' if d.read_only else 'false' }}}",
        "{% endfor %}",
        "{% if pod.secrets is defined %}",
        "    - {name: secrets, mountPath: /run/secrets, readOnly: true}",
        "{% endif %}",
        "  volumes:",
        "  - name: tmp",
        "    emptyDir: {}",
        "  - name: shm",
        "    emptyDir:",
        "      medium: Memory",
        "      sizeLimit: {{ pod.shm_size | string | tojson }}",
        "{% for d in (pod.data if pod.data is defined else []) %}",
        "  - name: {{ d.volume | string | tojson }}",
        "    persistentVolumeClaim:",
        "      claimName: {{ d.claim | string | tojson }}",
        "      readOnly: {{ 'true' if d.read_only else 'false' }}",
        "{% endfor %}",
        "{% if pod.secrets is defined %}",
        "  - name: secrets",
        "    secret:",
        "      secretName: {{ pod.secrets.name | string | tojson }}",
        "      defaultMode: 288",  # 0440: the kernel's user reads them through fsGroup
        "      optional: {{ 'false' if pod.secrets.required else 'true' }}",
        "      items: {{ pod.secrets.files | list | tojson }}",
        "{% endif %}",
    ]
    return "\n".join(lines) + "\n"
