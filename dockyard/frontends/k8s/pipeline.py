"""A stack (stacks/NAME/stack.yaml) → Kubernetes manifests: the same services compose/ runs, on a cluster.

A long-running service becomes a Deployment (one replica, Recreate: one database per volume) with its health check
as readiness probe, a Service for its ports and a PersistentVolumeClaim per volume; a `once` service becomes a Job
whose init container waits until the services it depends on accept connections (a Service routes only to ready
pods, so an open port means a ready store). Secrets come from one Secret, `<stack>-secrets`, that the user creates
(no value is ever written here); the folder a service mounts at /stack comes from a ConfigMap of its files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ... import hostfiles
from ...emit import kubernetes, shell
from ...errors import DockyardError, shown
from ...images.naming import image_alias
from ...images.render import REMOTE_USER
from ...specs import resolve
from ...specs.stacks import Stack, StackCheck, StackService
from ..compose import STACK_FILES, build_repository
from .manifest_parts import MARKER, K8sOptions, container_security, labels, quantity

# Kubernetes checks runAsNonRoot only against numeric IDs, and a volume is writable through fsGroup: the images'
# named users as numbers. postgres: Debian bookworm's postgresql-common in the store image (a test reads the built
# image's `id postgres`); dockyard: the user images/render.py creates first.
NUMERIC_USERS = {"postgres": (100, 102), REMOTE_USER: (1000, 1000)}
# A database refuses a data folder it does not own, and a volume's root belongs to root: point it one level down.
DATA_SUBDIR_VARIABLES = {"/var/lib/postgresql/data": "PGDATA"}
STORAGE = "1Gi"
JOB_DEADLINE_SECONDS = 1800


def secret_name(stack: Stack) -> str:
    return f"{stack.name}-secrets"


def _files_configmap(stack: Stack, service: StackService) -> str:
    return f"{stack.name}-{service.name}-files"


def _claim(stack: Stack, volume: str) -> str:
    return f"{stack.name}-{volume}"


def _ids(stack: Stack, service: StackService, user: str) -> tuple[int, int]:
    """(uid, gid) of a service's user: a name the images define, or numeric UID[:GID] (never 0: non-root)."""
    if user in NUMERIC_USERS:
        return NUMERIC_USERS[user]
    m = re.fullmatch(r"([0-9]{1,9})(?::([0-9]{1,9}))?", user)
    if m and int(m.group(1)) > 0 and int(m.group(2) or m.group(1)) > 0:
        return int(m.group(1)), int(m.group(2) or m.group(1))
    raise DockyardError(
        f"{stack.path}: services.{service.name}.user is {shown(user)}, which Kubernetes cannot run as non-root "
        f"(it checks numeric IDs only, and 0 is root)",
        fix="write the user as a numeric UID[:GID] above 0 (e.g. '999:999'), or use one of: "
        + ", ".join(NUMERIC_USERS),
    )


def _wait_for(stack: Stack, service: StackService) -> list[dict[str, Any]]:
    """Python (every environment image has it) polling each dependency's ports until one connects."""
    targets = [(d, p) for d in service.depends_on for p in stack.services[d].publish]
    if not targets:
        return []
    code = (
        "import socket, sys, time\n"
        f"targets = {targets!r}\n"
        "deadline = time.monotonic() + 600\n"
        "for host, port in targets:\n"
        "    while True:\n"
        "        try:\n"
        "            socket.create_connection((host, port), timeout=3).close()\n"
        "            break\n"
        "        except OSError as e:\n"
        "            if time.monotonic() > deadline:\n"
        "                sys.exit(f'{host}:{port} not reachable: {e}')\n"
        "            time.sleep(2)\n"
    )
    return [{"name": "wait-for-" + "-".join(service.depends_on), "command": ["python", "-c", code]}]


def _container(stack: Stack, service: StackService, options: K8sOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """(container, pod-spec extras) for one service."""
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    env: dict[str, Any] = dict(service.environment)
    if service.env:
        spec, variant = resolve(service.env)
        image = options.image(image_alias(variant))
        user = service.user or REMOTE_USER
        read_only = True  # an environment image writes only HOME (/tmp here) and /dev/shm
        shm = quantity(spec.resources["shm_size"])
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
        env["HOME"] = "/tmp"
    else:
        image = options.image(f"{build_repository(stack, service)}:latest")
        user = service.user or REMOTE_USER
        read_only = False  # a stack's own image may write anywhere it owns (PostgreSQL: its socket folder)
    uid, gid = _ids(stack, service, user)
    volumes.append({"name": "tmp", "emptyDir": {}})
    mounts.append({"name": "tmp", "mountPath": "/tmp"})
    for volume, path in service.volumes.items():
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": _claim(stack, volume)}})
        mounts.append({"name": volume, "mountPath": path})
        if path in DATA_SUBDIR_VARIABLES:
            env.setdefault(DATA_SUBDIR_VARIABLES[path], f"{path}/{volume}")
    if service.files:
        volumes.append({"name": "stack-files", "configMap": {"name": _files_configmap(stack, service)}})
        mounts.append({"name": "stack-files", "mountPath": STACK_FILES, "readOnly": True})
    env_list: list[dict[str, Any]] = [{"name": k, "value": kubernetes.literal(v)} for k, v in sorted(env.items())]
    env_list += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(stack), "key": s}}}
        for k, s in sorted(service.secrets.items())
    ]
    container: dict[str, Any] = {"name": service.name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if service.command:
        container["command"] = [kubernetes.literal(c) for c in service.command]
    if service.files:
        container["workingDir"] = STACK_FILES
    if env_list:
        container["env"] = env_list
    if service.publish:
        container["ports"] = [{"containerPort": p, "name": f"p{p}"} for p in service.publish]
    if service.healthcheck:
        container["readinessProbe"] = {
            "exec": {"command": list(service.healthcheck)},
            "periodSeconds": 3,
            "timeoutSeconds": 10,
            "failureThreshold": 3,
        }
    container["volumeMounts"] = mounts
    container["securityContext"] = container_security(uid, gid, read_only_root=read_only)
    pod_extra: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"fsGroup": gid, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": volumes,
    }
    waits = _wait_for(stack, service)
    if waits:
        pod_extra["initContainers"] = [
            {
                **w,
                "image": image,
                "securityContext": container_security(uid, gid, read_only_root=True),
                "resources": {"limits": {"memory": "128Mi"}},
            }
            for w in waits
        ]
    return container, pod_extra


def _meta(stack: Stack, name: str, role: str, options: K8sOptions) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": options.namespace,
        "labels": {**labels(role), "dockyard.io/stack": stack.name, "dockyard.io/service": name},
    }


def service_manifests(stack: Stack, service: StackService, options: K8sOptions) -> list[dict[str, Any]]:
    container, pod_extra = _container(stack, service, options)
    select = {"dockyard.io/stack": stack.name, "dockyard.io/service": service.name}
    role = "job" if service.once else "service"
    meta = _meta(stack, service.name, role, options)
    out: list[dict[str, Any]] = []
    for volume in service.volumes:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {**_meta(stack, _claim(stack, volume), "volume", options)},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": STORAGE}}},
            }
        )
    if service.files:
        assert service.files is not None
        data = _configmap_files(stack, service.files)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(stack, _files_configmap(stack, service), "files", options),
                "data": data,
            }
        )
    template = {"metadata": {"labels": {**meta["labels"]}}, "spec": {**pod_extra, "containers": [container]}}
    if service.once:
        template["spec"]["restartPolicy"] = "Never"
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": meta,
                "spec": {"backoffLimit": 0, "activeDeadlineSeconds": JOB_DEADLINE_SECONDS, "template": template},
            }
        )
        return out
    out.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": select},
                "template": template,
            },
        }
    )
    if service.publish:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "selector": select,
                    "ports": [{"name": f"p{p}", "port": p, "targetPort": p} for p in service.publish],
                },
            }
        )
    return out


def manifests(stack: Stack, options: K8sOptions) -> dict[str, list[dict[str, Any]]]:
    """{'<service>.yaml': [objects]}: apply the long-running services first, then the jobs."""
    return {f"{name}.yaml": service_manifests(stack, s, options) for name, s in stack.services.items()}


CONFIGMAP_MAX = 1024 * 1024  # the API server's limit for one ConfigMap


def _configmap_files(stack: Stack, folder: Path) -> dict[str, str]:
    """The stack's files folder as ConfigMap data: regular UTF-8 text files, 1 MiB in all (the API's limit)."""
    fix = "keep only text files (UTF-8, 1 MiB in all) in the stack's files folder"
    data: dict[str, str] = {}
    total = 0
    for path in sorted(p for p in folder.iterdir() if p.exists() and not p.is_dir()):
        raw = hostfiles.read_bounded(path, str(stack.path), "stack file", CONFIGMAP_MAX - total, fix)
        total += len(raw)
        try:
            data[path.name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DockyardError(f"{stack.path}: stack file {path} is not UTF-8 text", fix=fix) from None
    return data


def _condition(check: StackCheck) -> str:
    parts = ["v ~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/"]  # a number, not an error message
    if check.equals is not None:
        parts.append(f"v + 0 == {check.equals:g}")
    if check.min is not None:
        parts.append(f"v + 0 >= {check.min:g}")
    if check.max is not None:
        parts.append(f"v + 0 <= {check.max:g}")
    return " && ".join(parts)


def verify_script(stack: Stack, options: K8sOptions, source: str) -> str:
    """The stack's checks through `kubectl exec` in its verify service's pod; exit 1 when one fails."""
    service = stack.verify_service or ""
    lines = [
        "#!/bin/sh",
        f"# {MARKER} from {source}. Edit that, then run 'dockyard k8s generate'.",
        f"# The stack's checks, run in the {service} pod with kubectl (NAMESPACE overrides {options.namespace}).",
        "set -u",
        f'ns="${{NAMESPACE:-{options.namespace}}}"',
        "failed=0",
        "check() {  # check NAME CONDITION COMMAND...",
        "    name=$1 condition=$2",
        "    shift 2",
        f'    v=$(kubectl exec -n "$ns" deploy/{service} -- "$@" 2>&1 | tr -d "\\r" | tail -n 1)',
        '    if awk -v v="$v" "BEGIN { exit !($condition) }"; then echo "pass $name: $v"',
        '    else echo "FAIL $name: $v (wanted: $condition)"; failed=1; fi',
        "}",
    ]
    for check in stack.checks:
        lines.append(f"check {shell.words([check.name, _condition(check), *check.command])}")
    lines.append('exit "$failed"')
    return "\n".join(lines) + "\n"
