"""Credentials for a registry host from Docker's own config ($DOCKER_CONFIG/config.json, ~/.docker/config.json) and
the credential store or helpers it names: what `docker login` wrote. dockyard keeps no password file of its own."""

from __future__ import annotations

from dataclasses import dataclass

import docker.auth
import docker.errors

from ..errors import RegistryError, shown


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def login_for(host: str) -> Login | None:
    """The login Docker's config holds for host, or None (the engine then pulls anonymously)."""
    try:
        config = docker.auth.load_config()
        found = docker.auth.resolve_authconfig(config, registry=host)
    except docker.errors.DockerException as exc:  # a credential helper that fails or is missing
        raise RegistryError(
            f"Docker's credential store could not give the login for {shown(host)}: {shown(str(exc), 300)}",
            fix=f"check the credsStore/credHelpers entry in Docker's config.json, or run 'docker login {host}' again",
        ) from None
    username = (found or {}).get("Username") or (found or {}).get("username")
    if not found or not username:
        return None
    password = found.get("Password") or found.get("password") or ""
    return Login(username, password)
