"""GPU leases: which kernel holds which device, one ledger per engine, for every user and server sharing it.

Like the build mutex (images/build_mutex.py), the ledger lives where the kernels race: in the engine. A lease
is a container that is created and never started, named after the device (`dockyard-gpu-lease-<uuid>`), so
the engine hands each name out once, atomically, to all its clients: two exclusive holders of one device are
impossible, across users, servers and machines sharing a remote engine, and a server restart keeps them.
A share (`shared`) is a container named after the device and the kernel; an exclusive lease and a share of
one device exclude each other by a check after creating (whoever sees the other backs off).

The labels say who holds it (kernel, notebook, user, environment, owning process "HOST:PID:START"). A lease
is stale, and anyone may remove it, when its owner is a process of this host that is gone (SIGKILL: the
reaper, kernel/reaper.py, frees it), or its kernel container has not existed for GRACE seconds (a holder on
another host that died, or a server that exited without shutting its kernels down).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from ..engine.containers import remove_quietly
from ..errors import DockyardError, shown
from ..labels import (
    LABEL_GPU_LEASE,
    LABEL_GPU_LEASE_CONTAINER,
    LABEL_GPU_LEASE_ENV,
    LABEL_GPU_LEASE_KERNEL,
    LABEL_GPU_LEASE_MODE,
    LABEL_GPU_LEASE_NOTEBOOK,
    LABEL_GPU_LEASE_SINCE,
    LABEL_GPU_LEASE_USER,
    LABEL_GPU_QUEUE,
    LABEL_OWNER,
)
from .choice import GpuChoice
from .devices import Device, find

LEASE_PREFIX = "dockyard-gpu-lease-"
QUEUE_PREFIX = "dockyard-gpu-queue-"
GRACE = 60.0  # s: a lease is taken just before its kernel container is created
_POLL = 0.5  # s between a waiter's tries
_RACES = 8  # tries when another process takes a device between our look and our create
# Never run: the lease container only holds a name and labels. No network, no privileges, nothing to start.
_NEVER_RUN = ["true"]


@dataclass(frozen=True)
class Holder:
    """Who a lease is for: the labels of its container."""

    kernel_id: str
    container: str  # the kernel container's name
    notebook: str
    user: str
    env: str
    owner: str  # "HOST:PID:START" (kernel/reaper.py)
    since: float = 0.0

    def labels(self) -> dict[str, str]:
        return {
            LABEL_GPU_LEASE_KERNEL: self.kernel_id,
            LABEL_GPU_LEASE_CONTAINER: self.container,
            LABEL_GPU_LEASE_NOTEBOOK: self.notebook,
            LABEL_GPU_LEASE_USER: self.user,
            LABEL_GPU_LEASE_ENV: self.env,
            LABEL_OWNER: self.owner,
            LABEL_GPU_LEASE_SINCE: f"{self.since or time.time():.0f}",
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Holder:
        try:
            since = float(labels.get(LABEL_GPU_LEASE_SINCE, "0"))
        except ValueError:
            since = 0.0
        return cls(
            kernel_id=labels.get(LABEL_GPU_LEASE_KERNEL, ""),
            container=labels.get(LABEL_GPU_LEASE_CONTAINER, ""),
            notebook=labels.get(LABEL_GPU_LEASE_NOTEBOOK, ""),
            user=labels.get(LABEL_GPU_LEASE_USER, ""),
            env=labels.get(LABEL_GPU_LEASE_ENV, ""),
            owner=labels.get(LABEL_OWNER, ""),
            since=since,
        )

    def describe(self) -> str:
        """E.g. "alice's notebook 'work/a.ipynb' (pytorch:cuda, kernel 1a2b3c4d)"; values quoted, as they are data."""
        who = f"{_plain(self.user)}'s " if self.user else ""
        what = f"notebook {shown(self.notebook, 80)}" if self.notebook else "kernel"
        return f"{who}{what} ({_plain(self.env)}, kernel {_plain(self.kernel_id[:8])})"


def _plain(value: str) -> str:
    """A name as is when it is a plain word (user names, env:variant, ids), else quoted and escaped."""
    return value if re.fullmatch(r"[\w.@:+-]{1,40}", value) else shown(value, 40)


@dataclass(frozen=True)
class Lease:
    device: str  # the device's UUID
    shared: bool
    container_id: str
    name: str
    holder: Holder


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def lease_name(device_uuid: str, shared_by: str | None = None) -> str:
    base = LEASE_PREFIX + _name_part(device_uuid.lower())
    return f"{base}-shared-{_name_part(shared_by[:12])}" if shared_by else base


def _name_part(text: str) -> str:
    """Text as a piece of a container name (the engine allows [a-zA-Z0-9_.-] after the first character)."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text) or "-"


def leases(client: docker.DockerClient) -> list[Lease]:
    """Every lease on the engine, stale ones included (see stale())."""
    out = []
    for c in client.api.containers(all=True, filters={"label": LABEL_GPU_LEASE}):
        labels = c.get("Labels") or {}
        name = (c.get("Names") or ["/"])[0].lstrip("/")
        out.append(
            Lease(
                device=labels.get(LABEL_GPU_LEASE, ""),
                shared=labels.get(LABEL_GPU_LEASE_MODE) == "shared",
                container_id=str(c["Id"]),
                name=name,
                holder=Holder.from_labels(labels),
            )
        )
    return out


def stale(client: docker.DockerClient, lease: Lease, now: float | None = None) -> bool:
    """Its owner is a dead process of this host, or its kernel container has been gone for GRACE seconds."""
    from ..kernel.reaper import owner_gone  # the reaper imports this module: import at call time

    if lease.holder.owner and owner_gone(lease.holder.owner):
        return True
    now = time.time() if now is None else now
    if now - lease.holder.since < GRACE or not lease.holder.container:
        return False
    try:
        client.api.inspect_container(lease.holder.container)
    except docker.errors.NotFound:
        return True
    return False


def reap(client: docker.DockerClient) -> list[str]:
    """Remove stale leases and the queue tickets of dead owners; returns the names removed."""
    from ..kernel.reaper import owner_gone

    removed = [
        lease.name for lease in leases(client) if stale(client, lease) and remove_quietly(client, lease.container_id)
    ]
    for ticket in client.api.containers(all=True, filters={"label": LABEL_GPU_QUEUE}):
        owner = (ticket.get("Labels") or {}).get(LABEL_OWNER, "")
        if owner and owner_gone(owner) and remove_quietly(client, str(ticket["Id"])):
            removed.append((ticket.get("Names") or ["/"])[0].lstrip("/"))
    return removed


def release(client: docker.DockerClient, held: Sequence[Lease]) -> None:
    for lease in held:
        remove_quietly(client, lease.container_id)


def release_kernel(client: docker.DockerClient, kernel_id: str) -> list[str]:
    """Release every lease of one kernel (whoever took it); returns their names."""
    mine = [lease for lease in leases(client) if lease.holder.kernel_id == kernel_id]
    release(client, mine)
    return [lease.name for lease in mine]


# --- taking ---------------------------------------------------------------------------------------------


def take(
    client: docker.DockerClient,
    image: str,
    inventory: Sequence[Device],
    choice: GpuChoice,
    holder: Holder,
    *,
    prefer: Sequence[str] = (),
    wait: float = 0.0,
    say: Callable[[str], None] | None = None,
) -> list[Lease]:
    """Take the leases the choice asks for, atomically per device; image (local) names the lease containers.

    Without wait, a choice that cannot be met now is refused at once (no sleep) with one paragraph naming the
    holders. With wait > 0 the caller joins a first-come queue and tries again until wait seconds have passed.
    prefer: device UUIDs to try first (the devices a restarting kernel had).
    """
    holder = Holder(**{**holder.__dict__, "since": holder.since or time.time()})
    ask = _Ask(image, tuple(inventory), _wanted(inventory, choice), choice, holder, tuple(prefer))
    got = _try(client, ask)
    if got is not None:
        return got
    if wait <= 0:
        raise refusal(client, inventory, choice, holder, waited=None)
    return _queue(client, ask, wait, say)


@dataclass(frozen=True)
class _Ask:
    """One start's request to the ledger."""

    image: str  # a local image to create the lease containers from
    inventory: tuple[Device, ...]
    wanted: list[Device] | None  # named devices, or None where the ledger picks
    choice: GpuChoice
    holder: Holder
    prefer: tuple[str, ...]


def _wanted(inventory: Sequence[Device], choice: GpuChoice) -> list[Device] | None:
    """The named devices (devices, shared:DEVICE), or None where the ledger picks."""
    if not inventory:
        raise DockyardError(
            f"The kernel asks for {choice.describe()}, but the engine's GPU probe listed no devices",
            fix="run 'dockyard doctor' (it probes again and lists the GPUs), or use gpus: all",
        )
    if not choice.devices:
        if choice.mode == "count" and choice.count > len(inventory):
            raise DockyardError(
                f"The kernel asks for {choice.count} GPUs, but the engine has {len(inventory)}",
                fix=f"ask for at most {len(inventory)} ('dockyard gpus' lists them)",
            )
        return None
    out = []
    for wanted in choice.devices:
        device = find(list(inventory), wanted)
        if device is None:
            listing = ", ".join(f"{d.index} ({d.uuid})" for d in inventory)
            raise DockyardError(
                f"The kernel asks for GPU {shown(wanted)}, which the engine does not have (it has {listing})",
                fix="name one of those by index or UUID ('dockyard gpus' lists them)",
            )
        out.append(device)
    return out


def _try(client: docker.DockerClient, ask: _Ask) -> list[Lease] | None:
    """One round: the leases, or None when the choice cannot be met now."""
    for _ in range(_RACES):
        held = _live(client)
        picks = _pick(ask.inventory, ask.wanted, ask.choice, held, ask.prefer)
        if picks is None:
            return None
        taken: list[Lease] = []
        for device in picks:
            lease = _create(client, ask.image, device, ask.choice.mode == "shared", ask.holder)
            if lease is None or _conflict(client, lease):
                if lease is not None:
                    remove_quietly(client, lease.container_id)
                release(client, taken)
                taken = []
                break
            taken.append(lease)
        if taken:
            return taken
    return None


def _live(client: docker.DockerClient) -> list[Lease]:
    """The leases that count: stale ones are removed on sight, so a dead holder never blocks a start."""
    out = []
    for lease in leases(client):
        if stale(client, lease):
            remove_quietly(client, lease.container_id)
        else:
            out.append(lease)
    return out


def _pick(
    inventory: Sequence[Device],
    wanted: list[Device] | None,
    choice: GpuChoice,
    held: list[Lease],
    prefer: Sequence[str],
) -> list[Device] | None:
    exclusive = {lease.device for lease in held if not lease.shared}
    shares: dict[str, int] = {}
    for lease in held:
        if lease.shared:
            shares[lease.device] = shares.get(lease.device, 0) + 1
    order = sorted(inventory, key=lambda d: (d.uuid not in prefer, shares.get(d.uuid, 0)))
    if choice.mode == "shared":
        candidates = wanted if wanted is not None else order
        open_ = [d for d in candidates if d.uuid not in exclusive]
        return open_[:1] or None
    if wanted is not None:
        busy = [d for d in wanted if d.uuid in exclusive or shares.get(d.uuid)]
        return None if busy else wanted
    free = [d for d in order if d.uuid not in exclusive and not shares.get(d.uuid)]
    return free[: choice.count] if len(free) >= choice.count else None


def _create(client: docker.DockerClient, image: str, device: Device, shared: bool, holder: Holder) -> Lease | None:
    """The lease container, or None when the name is taken (someone holds the device)."""
    name = lease_name(device.uuid, holder.kernel_id if shared else None)
    labels = {
        **holder.labels(),
        LABEL_GPU_LEASE: device.uuid,
        LABEL_GPU_LEASE_MODE: "shared" if shared else "exclusive",
    }
    try:
        created = client.api.create_container(
            image,
            command=_NEVER_RUN,
            entrypoint=[],
            name=name,
            labels=labels,
            network_disabled=True,
            host_config=client.api.create_host_config(network_mode="none", cap_drop=["ALL"]),
        )
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # the name exists: the device (or this kernel's share of it) is held
            return None
        raise
    return Lease(device.uuid, shared, str(created["Id"]), name, Holder.from_labels(labels))


def _conflict(client: docker.DockerClient, lease: Lease) -> bool:
    """A share next to an exclusive lease of the same device (created at the same moment): back off."""
    for other in client.api.containers(all=True, filters={"label": f"{LABEL_GPU_LEASE}={lease.device}"}):
        if str(other["Id"]) == lease.container_id:
            continue
        other_shared = (other.get("Labels") or {}).get(LABEL_GPU_LEASE_MODE) == "shared"
        if not (lease.shared and other_shared):
            return True
    return False


# --- the queue --------------------------------------------------------------------------------------------


def _queue(client: docker.DockerClient, ask: _Ask, wait: float, say: Callable[[str], None] | None) -> list[Lease]:
    """Wait first-come, first-served: a ticket container per waiter; only the oldest live ticket tries."""
    joined = time.time_ns()
    ticket = client.api.create_container(
        ask.image,
        command=_NEVER_RUN,
        entrypoint=[],
        name=f"{QUEUE_PREFIX}{joined}-{_name_part(ask.holder.kernel_id[:12])}",
        labels={
            LABEL_GPU_QUEUE: str(joined),
            LABEL_OWNER: ask.holder.owner,
            LABEL_GPU_LEASE_KERNEL: ask.holder.kernel_id,
        },
        network_disabled=True,
        host_config=client.api.create_host_config(network_mode="none", cap_drop=["ALL"]),
    )["Id"]
    deadline = time.monotonic() + wait
    if say is not None:
        say(f"waiting up to {wait:.0f} s for {ask.choice.describe()} (in the GPU queue)")
    try:
        while time.monotonic() < deadline:
            if _first_in_queue(client, str(ticket)):
                got = _try(client, ask)
                if got is not None:
                    return got
            time.sleep(_POLL)
        raise refusal(client, ask.inventory, ask.choice, ask.holder, waited=wait)
    finally:
        remove_quietly(client, str(ticket))


def _first_in_queue(client: docker.DockerClient, ticket: str) -> bool:
    from ..kernel.reaper import owner_gone

    tickets = []
    for t in client.api.containers(all=True, filters={"label": LABEL_GPU_QUEUE}):
        labels = t.get("Labels") or {}
        if str(t["Id"]) != ticket and labels.get(LABEL_OWNER) and owner_gone(labels[LABEL_OWNER]):
            remove_quietly(client, str(t["Id"]))  # a waiter that died keeps nobody waiting
            continue
        with contextlib.suppress(ValueError):
            tickets.append((int(labels.get(LABEL_GPU_QUEUE, "0")), str(t["Id"])))
    return bool(tickets) and min(tickets)[1] == ticket


def queue_length(client: docker.DockerClient) -> int:
    return len(client.api.containers(all=True, filters={"label": LABEL_GPU_QUEUE}))


# --- the refusal --------------------------------------------------------------------------------------------


def refusal(
    client: docker.DockerClient,
    inventory: Sequence[Device],
    choice: GpuChoice,
    holder: Holder,
    waited: float | None,
) -> DockyardError:
    """One paragraph: what was asked, who holds which GPU, and how to share or wait."""
    by_device: dict[str, list[Lease]] = {}
    for lease in _live(client):
        by_device.setdefault(lease.device, []).append(lease)
    parts = []
    for d in inventory:
        held = by_device.get(d.uuid, [])
        if not held:
            parts.append(f"GPU {d.index} is free")
        elif held[0].shared:
            parts.append(f"GPU {d.index} is shared by " + ", ".join(h.holder.describe() for h in held))
        else:
            parts.append(f"GPU {d.index} is held by {held[0].holder.describe()}")
    how = f"after waiting {waited:.0f} s" if waited else "now"
    return DockyardError(
        f"No GPU for {holder.env} {how}: the kernel asks for {choice.describe()}, and {'; '.join(parts)}",
        fix="shut down a kernel you no longer need (its notebook's Kernel menu, or 'dockyard gpus' shows them), "
        "share a card with gpus: shared (frameworks then allocate as they go), or wait for one with "
        "gpu_wait: SECONDS in the kernelspec (DOCKYARD_GPU_WAIT)",
    )


def describe_all(client: docker.DockerClient) -> list[dict[str, Any]]:
    """The live leases as plain data (CLI --json, the panel's REST API)."""
    return [
        {
            "device": lease.device,
            "mode": "shared" if lease.shared else "exclusive",
            "kernel_id": lease.holder.kernel_id,
            "notebook": lease.holder.notebook,
            "user": lease.holder.user,
            "env": lease.holder.env,
            "since": lease.holder.since,
        }
        for lease in _live(client)
    ]
