"""Running the generated compose projects: which Compose, the variables a project gets, its state, its containers.

`dockyard compose up` fills the `${DOCKYARD_...}` variables of the generated files from the user's site
settings (content tags, base override) and from a small state file per project (generated passwords and the
lab's token, kept in the user's state directory with mode 0600, removed by `down -v`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from .. import hostfiles, paths, specs
from ..config import PROXY_VARIABLES, BuildOptions
from ..errors import ComposeError, shown
from ..specs import Spec, Variant
from ..specs.stacks import Stack, load_stack
from . import compose

PROJECT_LABEL = "com.docker.compose.project"  # written by Compose v1 and v2 alike
SERVICE_LABEL = "com.docker.compose.service"
_INSTALL_FIX = (
    "install Docker Compose: 'apt-get install docker-compose' (Debian/Ubuntu) or Docker's Compose plugin "
    "('docker compose'); or set DOCKYARD_COMPOSE to the command that runs it"
)


@dataclass(frozen=True)
class Target:
    """What `dockyard compose up NAME` runs: a lab (lab-<env>[-<variant>]) or a stack, by its folder name."""

    name: str
    spec: Spec | None = None
    variant: Variant | None = None
    stack: Stack | None = None

    @property
    def lab(self) -> tuple[Spec, Variant]:
        """The environment of a lab target."""
        if self.spec is None or self.variant is None:
            raise ComposeError(f"'{self.name}' is a stack, not a lab", fix="name a lab as lab-ENV[-VARIANT]")
        return self.spec, self.variant

    def files(self, out_dir: Path) -> dict[str, bytes]:
        if self.stack is not None:
            return compose.render_stack(self.stack, out_dir)
        return compose.render_lab(*self.lab)

    def compose_file(self, out_dir: Path) -> Path:
        return out_dir / self.name / compose.COMPOSE_FILE


def find_target(name: str) -> Target:
    if name.startswith(compose.LAB_PREFIX):
        labs = {compose.lab_folder(s, v): (s, v) for s in specs.load_all() for v in s.variants.values()}
        if name not in labs:
            raise ComposeError(
                f"No lab named '{name}' (labs: {', '.join(labs)})",
                fix="name one as lab-ENV for the default variant or lab-ENV-VARIANT, e.g. 'lab-pytorch'",
            )
        spec, variant = labs[name]
        return Target(name, spec=spec, variant=variant)
    return Target(name, stack=load_stack(name))


def compose_command() -> list[str]:
    """The Compose to run: $DOCKYARD_COMPOSE, else the `docker compose` plugin (v2), else `docker-compose`."""
    explicit = os.environ.get("DOCKYARD_COMPOSE")
    if explicit:
        cmd = shlex.split(explicit)
        if not cmd or shutil.which(cmd[0]) is None:
            raise ComposeError(f"DOCKYARD_COMPOSE is '{explicit}', which is not a command here", fix=_INSTALL_FIX)
        return cmd
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run([docker_cli, "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise ComposeError(
        "Docker Compose is not installed (neither 'docker compose' nor 'docker-compose')", fix=_INSTALL_FIX
    )


# ---------------------------------------------------------------------------------------------------- state


def _state_path(project: str) -> Path:
    return paths.state_dir() / "compose" / f"{project}.json"


def load_state(project: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_state_path(project).read_text())
        return data
    except (OSError, ValueError):
        return {}


def ensure_state(project: str, target: Target) -> dict[str, Any]:
    """The project's secrets (made once: a store's password must match its volume) and the lab token."""
    state = load_state(project)
    before = dict(state)
    wanted = target.stack.secrets if target.stack else ("lab_token",)
    state.setdefault("secrets", {})
    for name in wanted:
        state["secrets"].setdefault(name, secrets.token_urlsafe(24))
    if state != before:
        path = _state_path(project)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)
    return state


def forget_state(project: str) -> None:
    _state_path(project).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- variables


def variables(
    target: Target,
    options: BuildOptions,
    env_tags: dict[str, str],
    state: dict[str, Any],
    *,
    port: int = compose.LAB_PORT,
    workspace: Path | None = None,
) -> dict[str, str]:
    """The `${DOCKYARD_...}` values of one project (and the site's proxy for its builds). env_tags: service (or
    'lab') → the environment's content tag."""
    out: dict[str, str] = {}
    for key, names in PROXY_VARIABLES.items():
        if key in options.proxy:
            out |= dict.fromkeys(names, options.proxy[key])
    if target.stack is not None:
        for name, service in target.stack.services.items():
            if service.env:
                out[compose.variable("IMAGE", name)] = env_tags[name]
            else:
                out[compose.variable("IMAGE", name)] = compose.stack_build_tag(target.stack, service, options)
                if service.build_base:
                    out[compose.variable("BASE", name)] = options.base_for(service.build_base)
        for name, value in state.get("secrets", {}).items():
            if name in target.stack.secrets:
                out[compose.variable("SECRET", name)] = value
        return out
    out["DOCKYARD_ENV_IMAGE"] = env_tags["lab"]
    out["DOCKYARD_LAB_IMAGE"] = compose.lab_tag(env_tags["lab"], *target.lab)
    out["DOCKYARD_LAB_TOKEN"] = state["secrets"]["lab_token"]
    out["DOCKYARD_LAB_PORT"] = str(port)
    folder = hostfiles.mount_source((workspace or Path.cwd()).resolve(), "--workspace", "lab workspace")
    if re.search(r"[:\x00-\x1f\x7f]", str(folder)):  # Compose's volume syntax splits at ':'
        raise ComposeError(
            f"The lab workspace {shown(str(folder))} has ':' or a control character in its path, which a Compose "
            "volume cannot carry",
            fix="open a folder whose path has no ':' (or link to it from one)",
        )
    out["DOCKYARD_WORKSPACE"] = str(folder)
    # JupyterLab runs as the workspace's owner, so what it writes there belongs to that user (also when
    # root starts it for someone, e.g. from a service manager).
    owner = folder.stat()
    out["DOCKYARD_UID"] = str(owner.st_uid)
    out["DOCKYARD_GID"] = str(owner.st_gid)
    return out


# ---------------------------------------------------------------------------------------------------- containers


def project_containers(client: docker.DockerClient, project: str, service: str | None = None) -> list[Container]:
    labels = [f"{PROJECT_LABEL}={project}"] + ([f"{SERVICE_LABEL}={service}"] if service else [])
    found: list[Container] = client.containers.list(all=True, filters={"label": labels})
    return found


def running_container(client: docker.DockerClient, project: str, service: str, target: str) -> Container:
    for container in project_containers(client, project, service):
        if container.status == "running":
            return container
    raise ComposeError(
        f"Service '{service}' of compose project '{project}' is not running",
        fix=f"start it with 'dockyard compose up {target}' (and the same --project-name, if you gave one)",
    )


def client_environment(
    client: docker.DockerClient, target: Target, project: str, state: dict[str, Any]
) -> dict[str, str]:
    """The stack's client variables with the published ports and secrets of the running project filled in."""
    from ..specs.stacks import PLACEHOLDER

    stack = target.stack
    if stack is None or not stack.client:
        raise ComposeError(
            f"'{target.name}' declares no client variables", fix="add a client: section to its stack file"
        )

    def fill(m: re.Match[str]) -> str:
        service, port, secret = m.group(2), m.group(3), m.group(4)
        if secret is not None:
            return str(state.get("secrets", {}).get(secret, ""))
        container = running_container(client, project, service, target.name)
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
        host_ports = [b["HostPort"] for b in bindings if b.get("HostIp") in ("127.0.0.1", "")]
        if not host_ports:
            raise ComposeError(
                f"Port {port} of service '{service}' in project '{project}' is not published",
                fix=f"run 'dockyard compose up {target.name}' again (the generated file publishes it)",
            )
        return str(host_ports[0])

    return {var: PLACEHOLDER.sub(fill, value) for var, value in stack.client.items()}
