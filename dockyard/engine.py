"""The Docker engine connection, with one clear error when it is not there."""

from __future__ import annotations

import os

import docker
import docker.errors
from docker.models.images import Image

from .errors import EngineError

_FIX = (
    "start the Docker daemon (e.g. 'sudo systemctl start docker', or 'sudo dockerd &'), make sure your user "
    "may use its socket (member of the 'docker' group), or point DOCKER_HOST at a running engine; "
    "'dockyard doctor' checks all of this"
)


def find_image(client: docker.DockerClient, ref: str) -> Image | None:
    """The local image named ref, or None (never pulls)."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def describe_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def client(timeout: int = 120) -> docker.DockerClient:
    """A connected client; raises EngineError (not a traceback) when no daemon answers."""
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        if "Permission denied" in str(exc):
            reason = "permission denied on the Docker socket"
        raise EngineError(f"Cannot reach the Docker engine at {describe_host()} ({reason})", fix=_FIX) from None
    except Exception as exc:  # requests/urllib3 errors surface here when the socket is gone
        raise EngineError(
            f"Cannot reach the Docker engine at {describe_host()} ({type(exc).__name__})", fix=_FIX
        ) from None
    return c
