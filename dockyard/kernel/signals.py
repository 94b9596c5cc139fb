"""Signals for a kernel in its container: SIGINT reaches the cell's whole process group, SIGKILL ends it all."""

from __future__ import annotations

import logging
import signal
from typing import Any

import docker
import docker.errors
import requests

from ..engine import capabilities
from .container import GROUP_SIGNAL_ARGV


def deliver(client: docker.DockerClient, cid: str, signum: int, log: logging.Logger | Any) -> None:
    """docker kill → docker-init (PID 1) → the kernel's process group (TINI_KILL_PROCESS_GROUP, see
    container.create_kwargs), so a cell's child processes get it too; SIGKILL ends the whole container.
    A container already gone or stopped is fine."""
    group_by_exec = signum == signal.SIGINT and not capabilities.detect(client).init_signals_group
    if group_by_exec and _signal_group(client, cid, signum, log):
        return
    try:
        client.api.kill(cid, signal=signum)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if not capabilities.not_running(exc):  # Docker: 409, Podman: 500 "container state improper"
            raise


def _signal_group(client: docker.DockerClient, cid: str, signum: int, log: logging.Logger | Any) -> bool:
    """Signal the kernel's process group from inside the container (Podman's catatonit forwards a signal to the
    kernel alone, so an os.system('sleep 20') cell would run on); False if that could not be done."""
    try:
        exec_id = client.api.exec_create(cid, [*GROUP_SIGNAL_ARGV, str(signum)])
        client.api.exec_start(exec_id)
        return int(client.api.exec_inspect(exec_id).get("ExitCode") or 0) == 0
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("dockyard: kernel container %s: signalling its process group failed (%s)", cid[:12], exc)
        return False
