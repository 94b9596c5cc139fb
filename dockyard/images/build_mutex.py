"""One build per image tag at a time on one Docker engine, for every user and every host that shares it.

The lock lives where the builds race, in the engine: a tiny container named after the tag's hash. The
engine gives a container name out once, atomically, to all its clients, so this serialises two users of
one daemon (the earlier file lock, in each user's cache dir, did not) and the machines that share a
remote engine (DOCKER_HOST=ssh://..., tcp://...), which have no directory in common to lock.

The holder keeps the container's stdin attached, and the container's only process waits for EOF. When
the holder ends in any way, SIGKILL and lost connections included, the engine closes that stdin, the
process exits and the engine removes the container (auto-remove): a dead holder never blocks later
builds, and no PID check is needed (one that could not see processes of other hosts anyway). A normal
release removes the container at once.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors

from ..engine.containers import remove_quietly
from ..labels import LABEL_BUILD_LOCK, LABEL_BUILD_LOCK_OWNER

LOCK_PREFIX = "dockyard-build-lock-"
_POLL = 0.5
# A lock container still "created" (never started) after this long lost its holder between create and
# start, the one moment the stdin link does not cover yet.
START_GRACE = 30.0
# Python is in every image dockyard builds from (the build checks its version), so it is the waiting
# process; it only reads stdin, without network, capabilities or a writable filesystem.
_WAIT_FOR_EOF = ["python3", "-c", "import sys; sys.stdin.buffer.read()"]


def lock_name(tag: str) -> str:
    return LOCK_PREFIX + hashlib.sha256(tag.encode()).hexdigest()[:20]


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


@contextlib.contextmanager
def tag_lock(client: docker.DockerClient, tag: str, image: str, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the engine-wide lock of tag while the block runs; image (present locally) runs the lock process.

    Waiting is reported once through say(), naming the holder.
    """
    name = lock_name(tag)
    waited = False
    created_since: dict[str, float] = {}  # lock containers seen in state "created", by id
    while (held := _try_acquire(client, name, tag, image)) is None:
        try:
            attrs = client.api.inspect_container(name)
        except docker.errors.NotFound:
            continue  # released meanwhile: try again at once
        status = (attrs.get("State") or {}).get("Status")
        first_seen = created_since.setdefault(attrs["Id"], time.monotonic()) if status == "created" else None
        if status in ("exited", "dead") or (first_seen is not None and time.monotonic() - first_seen > START_GRACE):
            remove_quietly(client, attrs["Id"])  # by id: never a lock that a new holder took meanwhile
            continue
        if not waited:
            holder = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_BUILD_LOCK_OWNER, "another process")
            say(f"waiting for another build of {tag} to finish ({holder}; engine lock {name}) ...")
            waited = True
        time.sleep(_POLL)
    cid, link = held
    try:
        yield
    finally:
        remove_quietly(client, cid)
        _close(link)


def _try_acquire(client: docker.DockerClient, name: str, tag: str, image: str) -> tuple[str, Any] | None:
    """(container id, attached stdin) if this call created the lock, None if someone else holds it."""
    host_config = client.api.create_host_config(
        auto_remove=True,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
    )
    try:
        created = client.api.create_container(
            image,
            entrypoint=_WAIT_FOR_EOF,
            name=name,
            user="65534:65534",
            stdin_open=True,  # docker-py sets StdinOnce with it: the first attach closing means EOF
            labels={LABEL_BUILD_LOCK: tag, LABEL_BUILD_LOCK_OWNER: _owner()},
            host_config=host_config,
        )
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # the name exists: the lock is held
            return None
        raise
    cid = str(created["Id"])
    try:
        link = client.api.attach_socket(cid, params={"stdin": 1, "stream": 1})
        client.api.start(cid)
    except BaseException:
        remove_quietly(client, cid)
        raise
    return cid, link


def _close(link: Any) -> None:
    # shutdown() sends EOF even while the HTTP response still holds a reference to the socket.
    raw = getattr(link, "_sock", link)
    with contextlib.suppress(Exception):
        raw.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        link.close()
