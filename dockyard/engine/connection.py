"""The Docker engine connection, with one clear error (its cause, its fix) when it is not there."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
from docker.models.containers import Container, _create_container_args
from docker.models.images import Image

from .capabilities import short_name
from .unreachable import diagnose


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


def client(timeout: int = 120) -> docker.DockerClient:
    """A connected client; raises EngineError naming the cause and its fix (not a traceback) when no engine
    answers."""
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except Exception as exc:  # DockerException, and requests/urllib3/paramiko errors when the socket is gone
        raise diagnose(exc) from None
    return c


def ensure_tag(image: Image, name: str) -> None:
    """Give the image this name unless it has it. Names are compared without Podman's registry prefix, and
    repository and tag are passed apart: Podman refuses 'repo:tag' as the repository."""
    if name in {short_name(t) for t in image.tags}:
        return
    repository, _, tag = name.rpartition(":")
    image.tag(repository, tag)
