"""What the engine behind DOCKER_HOST is and can do: Docker or Podman, rootful or rootless.

Podman speaks the Docker API (dockyard's docker SDK talks to it unchanged), but a rootless Podman
differs where it matters: container root is the user and container UIDs >= 1 map into the subordinate
range (so files need the keep-id user namespace to come out owned by the user), tmpfs takes Podman's
`U` option instead of uid=/gid=, memory/CPU limits need cgroup controllers a rootless user on cgroup v1
does not have, GPU requests are dropped without an error, a kill of a stopped container answers 500
instead of 409, and images are named `localhost/...` or `docker.io/...`. The differences are read here once per client
and everything else asks this object, so the rest of dockyard stays engine-neutral.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests

_REGISTRY_PREFIXES = ("localhost/", "docker.io/")  # how Podman qualifies local short names
_LIBPOD_INFO = "/v4.0.0/libpod/info"  # Podman's own API (not the Docker-compatible one): rootless, cgroups, storage
# A known Podman limitation (its Docker API ignores DeviceRequests); a probe container would start and "pass".
PODMAN_NO_GPU = (
    "Podman's Docker API accepts GPU requests (--gpus and CDI) but drops them without an error, so no GPU reaches "
    "the container"
)


@dataclass(frozen=True)
class EngineCaps:
    """The engine's kind and the facts about it that change how dockyard calls it."""

    kind: str  # "docker" or "podman"
    version: str = ""
    rootless: bool = False
    cgroup_version: str = ""  # "v1", "v2" or "" (unknown)
    # cgroup controllers containers of this engine may be limited by; None: not reported (Docker: all of them)
    controllers: tuple[str, ...] | None = None
    storage_driver: str = ""

    @property
    def podman(self) -> bool:
        return self.kind == "podman"

    @property
    def describe(self) -> str:
        """E.g. 'Podman 4.3.1 (rootless, cgroup v1)' or 'Docker 27.5.1'."""
        name = "Podman" if self.podman else "Docker"
        mode = ["rootless"] if self.rootless else []
        if self.podman and self.cgroup_version:
            mode.append(f"cgroup {self.cgroup_version}")
        return f"{name} {self.version}" + (f" ({', '.join(mode)})" if mode else "")

    @property
    def keep_id(self) -> bool:
        """Run containers in Podman's keep-id user namespace: the host user is the same UID inside.

        Rootless, container UID 1234 would otherwise be host UID 100000+1233 (the subordinate range),
        which can neither read the 0600 connection file nor write the user's workspace.
        """
        return self.podman and self.rootless

    @property
    def init_signals_group(self) -> bool:
        """Whether the container's init passes a signal to the kernel's whole process group.

        Docker's docker-init (tini) does with TINI_KILL_PROCESS_GROUP; Podman's catatonit only to its child.
        """
        return not self.podman

    def tmpfs_options(self, uid: int, gid: int, base: str) -> str:
        """Options for a private tmpfs owned by uid:gid (Podman refuses uid=/gid=; its 'U' chowns to the user)."""
        if self.podman:
            return f"{base},U"
        return f"{base},uid={uid},gid={gid}"

    @property
    def memory_limits(self) -> bool:
        return self.controllers is None or "memory" in self.controllers

    @property
    def cpu_limits(self) -> bool:
        return self.controllers is None or "cpu" in self.controllers

    def unapplied_limits(self, memory: str | None, cpus: float | None) -> list[str]:
        """The requested limits this engine would drop without an error, each named with its value."""
        out = []
        if memory and not self.memory_limits:
            out.append(f"memory limit {memory}")
        if cpus and not self.cpu_limits:
            out.append(f"CPU limit {cpus:g}")
        return out

    def limits_reason(self) -> str:
        missing = "/".join(c for c in ("memory", "cpu") if c not in (self.controllers or ()))
        why = (
            "rootless containers on cgroup v1 cannot be limited"
            if self.cgroup_version == "v1"
            else "systemd delegates only some cgroup controllers to users"
        )
        return f"{self.describe} has no {missing} cgroup controller for this user ({why})"


DOCKER = EngineCaps("docker")  # what pure code assumes when no engine was asked (Docker's behaviour)
_cache: weakref.WeakKeyDictionary[docker.DockerClient, EngineCaps] = weakref.WeakKeyDictionary()


def from_answers(info: dict[str, Any], libpod: dict[str, Any] | None) -> EngineCaps:
    """The capabilities from the engine's answers to /info and (Podman only) /libpod/info. Pure."""
    if not podman_info(info):
        options = [str(s) for s in info.get("SecurityOptions") or []]
        return EngineCaps(
            "docker",
            version=str(info.get("ServerVersion", "")),
            rootless=any("name=rootless" in s for s in options),
            storage_driver=str(info.get("Driver", "")),
        )
    host = (libpod or {}).get("host") or {}
    security = host.get("security") or {}
    return EngineCaps(
        "podman",
        version=str(info.get("ServerVersion", "")),
        rootless=bool(security.get("rootless", info.get("Rootless"))),
        cgroup_version=str(host.get("cgroupVersion", "")),
        controllers=tuple(str(c) for c in host.get("cgroupControllers") or ()) if libpod else None,
        storage_driver=str(((libpod or {}).get("store") or {}).get("graphDriverName", info.get("Driver", ""))),
    )


def short_name(name: str) -> str:
    """An image name as dockyard writes it. Podman qualifies names with a registry ('localhost/' for loaded
    images, 'docker.io/' for built ones), where Docker drops 'docker.io/'; dockyard's names have neither."""
    for prefix in _REGISTRY_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def podman_info(info: dict[str, Any]) -> bool:
    """Whether a Docker-API /info answer comes from Podman: it adds BuildahVersion (and Rootless), which Docker
    never sends (its /version also lists a "Podman Engine" component)."""
    return "BuildahVersion" in info


def detect(client: docker.DockerClient) -> EngineCaps:
    """The engine's capabilities, asked once per client: /info, and Podman's /libpod/info on Podman."""
    if (cached := _cache.get(client)) is not None:
        return cached
    info = client.info()
    libpod: dict[str, Any] | None = None
    if podman_info(info):
        try:
            resp = client.api.get(f"{client.api.base_url}{_LIBPOD_INFO}", timeout=30)
            resp.raise_for_status()
            libpod = resp.json()
        except (requests.exceptions.RequestException, ValueError):
            libpod = None  # no libpod API (a Podman-compatible engine?): rootless from /info, limits unknown
    caps = from_answers(info, libpod)
    _cache[client] = caps
    return caps


def not_running(exc: docker.errors.APIError) -> bool:
    """The engine refused a kill/stop because the container is not running (any more).

    Docker answers 409; Podman answers 500 with "container state improper".
    """
    if exc.status_code == 409:
        return True
    text = str(exc.explanation or exc).lower()
    return exc.status_code == 500 and ("state improper" in text or "improper state" in text)
