"""Container chores every part of dockyard repeats, written once."""

from __future__ import annotations

import docker
import docker.errors


def remove_quietly(client: docker.DockerClient, cid: str) -> bool:
    """Force-remove a container; one already gone (404) or being removed (409) is fine. False if it was gone."""
    try:
        client.api.remove_container(cid, force=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress (auto-remove, another clean-up)
            raise
    return True
