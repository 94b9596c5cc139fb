"""Container chores every part of dockyard repeats, written once: list the kernel containers dockyard
labelled, remove one whatever state the engine is in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from ..labels import LABEL_KERNEL_ID


@dataclass(frozen=True)
class Listed:
    """A container as the engine lists it: enough to choose and remove it without asking again."""

    id: str
    name: str
    labels: dict[str, str]
    state: str  # the engine's: running, exited, created, ...
    created: float  # seconds since the epoch


def owned(client: docker.DockerClient, *labels: str, running: bool = False) -> list[Listed]:
    """dockyard's kernel containers (pooled ones too) that carry every label given ('NAME' or 'NAME=VALUE');
    only the running ones when running. Engine errors are the caller's to handle."""
    filters: dict[str, Any] = {"label": [LABEL_KERNEL_ID, *labels]}
    if running:
        filters["status"] = "running"
    return [
        Listed(
            id=str(c["Id"]),
            name=(c.get("Names") or ["/?"])[0].lstrip("/"),
            labels=dict(c.get("Labels") or {}),
            state=str(c.get("State") or ""),
            created=float(c.get("Created") or 0),
        )
        for c in client.api.containers(all=not running, filters=filters)
    ]


def remove_quietly(client: docker.DockerClient, cid: str) -> bool:
    """Force-remove a container; one already gone (404) or being removed (409) is fine.
    True when this call removed it, False when it was gone or someone else's removal had begun."""
    try:
        client.api.remove_container(cid, force=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress (auto-remove, another clean-up)
            raise
        return False
    return True
