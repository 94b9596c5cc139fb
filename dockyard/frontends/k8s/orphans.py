"""Which kernel pods `dockyard k8s gc` removes, decided from `kubectl get pods -o json` output (no I/O here).

A kernel pod is dockyard's (labels managed-by=dockyard, role=kernel) and names the Jupyter server pod that started
it (dockyard.io/server, set by the launcher). It is an orphan when that server pod no longer exists, or when the
kernel itself has ended (phase Succeeded or Failed). A running kernel of a server outside the cluster (label
dockyard.io/server-host) is never removed: nothing here can tell whether that server still lives. Pods with a live
owner reference are Kubernetes' own garbage collector's business anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manifest_parts import LABEL_ROLE, LABEL_SERVER, MANAGED_BY

SELECTOR = f"{MANAGED_BY}=dockyard,{LABEL_ROLE}=kernel"
ENDED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Orphan:
    name: str
    namespace: str
    reason: str


def orphans(kernel_pods: list[dict[str, Any]], live_pod_names: set[str]) -> list[Orphan]:
    """kernel_pods: items matching SELECTOR; live_pod_names: every pod name in those namespaces."""
    out = []
    for pod in kernel_pods:
        meta = pod.get("metadata", {})
        labels = meta.get("labels", {})
        if labels.get(MANAGED_BY) != "dockyard" or labels.get(LABEL_ROLE) != "kernel":
            continue  # a selector typo must never widen what is deleted
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        phase = pod.get("status", {}).get("phase", "")
        server = labels.get(LABEL_SERVER)
        if phase in ENDED:
            out.append(Orphan(name, namespace, f"kernel ended ({phase})"))
        elif server is not None and server not in live_pod_names:
            out.append(Orphan(name, namespace, f"its server pod {server} is gone"))
    return out
