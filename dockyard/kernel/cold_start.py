"""A cold kernel start as plain functions over (client, KernelContainer): create, start, GPU fallback,
a port another process took, the heartbeat wait, the log tail. kernel/provisioner.py puts them in order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pwd
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
import zmq
import zmq.asyncio
from docker.models.containers import Container

from .. import engine, gpu
from ..engine import capabilities
from ..errors import DockyardError, EngineError
from ..labels import LABEL_KERNEL_ID
from . import data_mounts, kernel_secrets
from .container import (
    PORT_NAMES,
    KernelContainer,
    check_loopback,
    create_kwargs,
    kernel_banner_args,
    kernel_environment,
    workspace_mount,
)
from .reaper import owner_id
from .target import KernelTarget

_LOG_TAIL = 25
T = TypeVar("T")
PORT_IN_USE = "Address already in use"  # zmq.error.ZMQError in the kernel's log (host network)


class PortTakenError(DockyardError):
    """The kernel could not bind a port of its connection file: another process took it first."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """What jupyter_client hands launch_kernel, and the KernelManager's facts a container needs."""

    kernel_id: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    kernelspec_env: dict[str, str]
    key: str  # the session's HMAC key, for the kernel's environment as ipykernel expects it
    ports: tuple[int, ...]


def check_manager(km: Any) -> None:
    """A KernelManager whose kernel can run in a container: tcp on loopback (the ports are published there)."""
    if km is None:
        raise DockyardError(
            "DockerProvisioner needs a KernelManager parent", fix="start the kernel through jupyter_client"
        )
    if km.transport != "tcp":
        raise DockyardError(
            f"Container kernels use the tcp transport, not {km.transport}",
            fix="remove the KernelManager.transport setting",
        )
    check_loopback(km.ip)


def launch_of(
    km: Any, info: Mapping[str, Any], kernelspec_env: dict[str, str], cmd: list[str], cwd: Path, env: dict[str, str]
) -> Launch:
    """What one start attempt of km's kernel hands the container, on the ports of connection info `info`."""
    return Launch(
        kernel_id=km.kernel_id or "unknown",
        cmd=cmd,
        cwd=cwd,
        env=env,
        kernelspec_env=kernelspec_env,
        key=km.session.key.decode("utf-8", "replace") if km.session.key else "",
        ports=tuple(int(info[p]) for p in PORT_NAMES),
    )


def kernel_container(target: KernelTarget, launch: Launch, connection_file: Path, writable: bool) -> KernelContainer:
    """The container of one start attempt (pure but for the host user's name)."""
    notices = target.notices
    environment = kernel_environment(
        launch.env, kernelspec_env=launch.kernelspec_env, image_env=target.image_env, secret=launch.key, user=_user()
    )
    environment = kernel_secrets.scrubbed(environment, {}, target.secret_variables)
    workspace = workspace_mount(launch.cwd, target.workspace_root)
    data_mounts.check_workspace(target.mounts, workspace)
    return KernelContainer(
        image=target.image,
        env_name=target.env_name,
        variant=target.variant,
        kernel_id=launch.kernel_id,
        owner=owner_id(),
        argv=[*launch.cmd, *kernel_banner_args(launch.cmd, notices)],
        environment={**environment, **({"DOCKYARD_GPU_NOTICE": " | ".join(notices)} if notices else {})},
        workspace=workspace,
        cwd=launch.cwd,
        connection_file=connection_file,
        ports=launch.ports,
        network=target.network,
        uid=os.getuid(),
        gid=os.getgid(),
        shm_size=target.shm_size,
        memory=target.memory,
        cpus=target.cpus,
        device_requests=target.device_requests,
        connection_file_writable=writable,
        data_mounts=target.mounts,
        secrets=tuple((s.name, s.env) for s in target.secrets),
    )


def with_secrets(kc: KernelContainer, target: KernelTarget) -> tuple[KernelContainer, dict[str, bytes]]:
    """(kc without any variable holding a secret's value, the values for deliver_secrets) for one start."""
    if not kc.secrets:
        return kc, {}
    values = kernel_secrets.read_values(target.secrets, os.environ)
    return dataclasses.replace(kc, environment=kernel_secrets.scrubbed(kc.environment, values, ())), values


def deliver_secrets(client: docker.DockerClient, cid: str, kc: KernelContainer, values: dict[str, bytes]) -> None:
    """Into the started container's tmpfs, as the kernel's user (kernel/kernel_secrets.py)."""
    if values:
        kernel_secrets.deliver(client, cid, kernel_secrets.python_of(kc.argv), f"{kc.uid}:{kc.gid}", values)


def create(client: docker.DockerClient, kc: KernelContainer, log: logging.Logger | Any) -> Container:
    """Create the container; a leftover of this very kernel (an interrupted restart) under its name goes first."""
    caps = capabilities.detect(client)
    if dropped := caps.unapplied_limits(kc.memory, kc.cpus):
        # The engine would accept and ignore them: say so rather than let the user believe they hold.
        log.warning(
            "dockyard: kernel %s runs without its %s: %s", kc.kernel_id, " and ".join(dropped), caps.limits_reason()
        )
    kwargs = create_kwargs(kc, caps)
    try:
        return engine.create_container(client, **kwargs)
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        old = client.containers.get(kc.name)
        if old.labels.get(LABEL_KERNEL_ID) != kc.kernel_id:
            raise
        old.remove(force=True)
        return engine.create_container(client, **kwargs)


def start(container: Container, kc: KernelContainer) -> None:
    """Start a created container; a port the engine cannot publish (bridge) is a PortTakenError."""
    try:
        container.start()
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        if PORT_IN_USE.lower() in text.lower() or "port is already allocated" in text:
            raise PortTakenError(
                f"Another process took one of the kernel's ports before container {kc.name} could publish it",
                fix=f"start the kernel again (the engine said: {text})",
            ) from None
        raise


def gpu_refusal(exc: docker.errors.APIError, kc: KernelContainer, target: KernelTarget) -> str | None:
    """The engine's reason when an optional GPU kernel's start failed on its GPU request; None otherwise."""
    reason = str(exc.explanation or exc)
    return reason if kc.device_requests and target.gpu_fallback and gpu.is_gpu_error(reason) else None


def without_gpu(
    client: docker.DockerClient, target: KernelTarget, reason: str, log: logging.Logger | Any
) -> KernelTarget:
    """The target started again on the CPU, with a notice for the log and the kernel's banner.

    The verdict can be stale (driver unloaded, toolkit removed) or wrong in ways only a real start shows
    (Docker Desktop's 'nvidia' runtime on a machine without an NVIDIA GPU): a notebook should still open.
    """
    notice = (
        f"{target.ref} started without its GPU: the engine refused the GPU request "
        f"({gpu.probe.first_line(reason)}); 'dockyard doctor' explains the GPU setup"
    )
    log.warning("dockyard: %s", notice)
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        gpu.forget(client.info())  # the cached verdict was wrong: probe again next time
    return dataclasses.replace(target, device_requests=[], gpu_fallback=False, notices=(*target.notices, notice))


def state(client: docker.DockerClient, cid: str, log: logging.Logger | Any) -> tuple[str, int | None]:
    """('running'|'exited'|'missing'|'unknown', exit code)."""
    try:
        attrs = client.api.inspect_container(cid)
    except docker.errors.NotFound:
        return "missing", -1
    except (docker.errors.DockerException, requests.exceptions.RequestException, EngineError) as exc:
        log.warning("dockyard: cannot inspect kernel container %s: %s", cid[:12], exc)
        return "unknown", None
    st = attrs.get("State") or {}
    if st.get("Status") in ("created", "running", "paused", "restarting"):
        return "running", None
    return "exited", int(st.get("ExitCode", -1))


def log_tail(client: docker.DockerClient, cid: str | None) -> str:
    """The container's last log lines, framed for an error's fix; '' when they cannot be read."""
    if cid is None:
        return ""
    try:
        text = client.api.logs(cid, tail=_LOG_TAIL).decode("utf-8", "replace").rstrip()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return ""
    return f"\n--- last lines of the container's log ---\n{text or '(empty)'}\n---"


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """Where the kernel answers once it is ready, and the CurveZMQ keys its sockets use (None: plain)."""

    url: str
    curve: tuple[bytes, bytes] | None  # (secret key, public key): the KernelManager's own
    timeout: float

    @classmethod
    def of(cls, km: Any, info: Mapping[str, Any], timeout: float) -> Heartbeat:
        """The heartbeat of the kernel whose connection info is info, started by KernelManager km."""
        curve = (km.curve_secretkey, km.curve_publickey) if km.curve_publickey is not None else None
        return cls(url=f"tcp://{info['ip']}:{info['hb_port']}", curve=curve, timeout=timeout)


async def wait_until_ready(
    client: docker.DockerClient, cid: str, name: str, what: str, hb: Heartbeat, log: logging.Logger | Any
) -> None:
    """Wait for the kernel's heartbeat; if the container dies or hangs, fail with its log."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    if hb.curve is not None:
        sock.curve_secretkey, sock.curve_publickey = hb.curve
        sock.curve_serverkey = hb.curve[1]
    sock.connect(hb.url)
    deadline = time.monotonic() + hb.timeout
    try:
        await sock.send(b"dockyard-ready?")
        while not await sock.poll(200):
            st, code = await asyncio.to_thread(state, client, cid, log)
            if st != "running":
                raise _died(client, cid, name, what, "was removed" if st == "missing" else f"exited with code {code}")
            if time.monotonic() > deadline:
                raise _hung(client, cid, name, what, hb.timeout)
        await sock.recv()
    finally:
        sock.close()
        ctx.term()


def _died(client: docker.DockerClient, cid: str, name: str, what: str, how: str) -> DockyardError:
    tail = log_tail(client, cid)
    if PORT_IN_USE in tail:
        return _port_taken(name, tail)
    return DockyardError(
        f"The kernel container {name} ({what}) {how} before the kernel was ready",
        fix="fix the cause shown in the container's log below (e.g. a package that fails to import), "
        f"rebuild with 'dockyard build', then start the kernel again{tail}",
    )


def _hung(client: docker.DockerClient, cid: str, name: str, what: str, timeout: float) -> DockyardError:
    tail = log_tail(client, cid)
    if PORT_IN_USE in tail:  # ipykernel can log the failed bind and hang instead of exiting
        return _port_taken(name, tail)
    return DockyardError(
        f"The kernel in container {name} ({what}) did not answer within {timeout:.0f} s",
        fix="check the container's log below; if the image is just slow to start, raise 'startup_timeout' "
        f"in the kernelspec's provisioner config{tail}",
    )


def _port_taken(name: str, tail: str) -> PortTakenError:
    return PortTakenError(
        f"Another process took one of the kernel's ports before the kernel in container {name} could bind it",
        fix=f"start the kernel again{tail}",
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or "dockyard-user"


def engine_call(fn: Callable[..., T], *args: Any) -> T:
    """Run fn; engine failures become one clear DockyardError for start_kernel to raise."""
    try:
        return fn(*args)
    except DockyardError:
        raise
    except docker.errors.APIError as exc:
        raise DockyardError(
            f"The Docker engine refused to start the kernel container: {exc.explanation or exc}",
            fix=(
                "check the message above (a bad mount, an unknown runtime, a resource limit); 'dockyard doctor' "
                "checks the engine"
            ),
        ) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError(
            f"Lost the connection to the Docker engine at {engine.describe_host()} while starting a kernel "
            f"({type(exc).__name__})",
            fix="check that dockerd is running ('dockyard doctor'), then start the kernel again",
        ) from None
