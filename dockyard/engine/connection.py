"""The Docker engine connection, with one clear error when it is not there."""

from __future__ import annotations

import os
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container, _create_container_args
from docker.models.images import Image

from ..errors import EngineError
from .capabilities import short_name

_FIX = (
    "start the Docker daemon (e.g. 'sudo systemctl start docker', or 'sudo dockerd &'), make sure your user "
    "may use its socket (member of the 'docker' group), or point DOCKER_HOST at a running engine (rootless "
    "Podman: 'systemctl --user start podman.socket' or 'podman system service --time=0 &', see docs/podman.md); "
    "'dockyard doctor' checks all of this"
)


def find_image(client: docker.DockerClient, ref: str) -> Image | None:
    """The local image named ref, or None (never pulls)."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def create_container(client: docker.DockerClient, **kwargs: Any) -> Container:
    """client.containers.create(**kwargs), also with a userns_mode the SDK refuses (Podman's 'keep-id').

    The SDK accepts only 'host' there (Docker's one mode); Podman's Docker API reads the same field.
    """
    userns = kwargs.pop("userns_mode", None)
    if userns in (None, "host"):
        return client.containers.create(**({"userns_mode": userns} if userns else {}), **kwargs)
    args = _create_container_args({**kwargs, "version": client.api._version})
    args["host_config"]["UsernsMode"] = userns
    return client.containers.get(client.api.create_container(**args)["Id"])


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


def ensure_tag(image: Image, name: str) -> None:
    """Give the image this name unless it has it. Names are compared without Podman's registry prefix, and
    repository and tag are passed apart: Podman refuses 'repo:tag' as the repository."""
    if name in {short_name(t) for t in image.tags}:
        return
    repository, _, tag = name.rpartition(":")
    image.tag(repository, tag)
