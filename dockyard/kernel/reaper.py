"""Remove kernel containers whose owning process is gone (a server that crashed or was SIGKILLed).

Every kernel container carries an owner label "HOST:PID:START" naming the process that started it.
The start time (clock ticks since boot, from /proc) makes the check survive PID reuse: a new process
with the same PID has a different start time. Containers owned by other hosts are left alone, since
this host cannot see their processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from jupyter_core.paths import jupyter_runtime_dir

from ..labels import LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_DIR

log = logging.getLogger(__name__)
_UNKNOWN = "?"


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot; None if no such process; '?' without /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        if not os.path.isdir("/proc/self"):
            return _UNKNOWN if _pid_exists(pid) else None
        return None
    except OSError:
        return _UNKNOWN
    # Field 2 (comm) may hold spaces and ')', so split after the last ')'; starttime is field 22.
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else _UNKNOWN


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_id(pid: int | None = None) -> str:
    """'HOST:PID:START' for pid (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or _UNKNOWN}"


def owner_gone(owner: str) -> bool:
    """True only when owner is a process of this host that no longer exists (or whose PID was reused)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # not a label we wrote: not ours to judge
    host, pid_text, start = parts
    if host != socket.gethostname():
        return False
    now = process_start_time(int(pid_text))
    if now is None:
        return True
    if _UNKNOWN in (start, now):
        return False  # the PID is taken and we cannot tell by whom: keep the container
    return start != now


def container_owner(labels: dict[str, str]) -> str | None:
    """The process a kernel container belongs to; None when this user cannot tell.

    A pooled container (kernel/pool/pooled.py) belongs to the process that filled it until a kernel claims it;
    the claim writes the claimer's owner id into the run directory's 'taken' file (the label cannot change).
    """
    run_dir = labels.get(LABEL_POOL_DIR)
    if run_dir is None:
        return labels.get(LABEL_OWNER, "")
    try:
        taken = (Path(run_dir) / "taken").read_text()
    except FileNotFoundError:
        return labels.get(LABEL_OWNER, "")
    except OSError:
        return None  # another user's run directory: not ours to judge
    return labels.get(LABEL_OWNER, "") if taken == "drain" else taken


def remove_run_dir(run_dir: Path) -> None:
    """Remove a pooled container's run directory on the host, never anything but one."""
    if run_dir.parent.name == "dockyard-pool" and run_dir.name.startswith("dockyard-pool-"):
        shutil.rmtree(run_dir, ignore_errors=True)


def reap(client: docker.DockerClient, timeout: float = 30.0) -> list[str]:
    """Remove labelled kernel containers (pooled ones too) of dead owners on this host; returns the removed names.

    Returns only when every container it set out to remove is gone, also one whose removal someone else had
    already begun (the engine answers 409 and finishes it later): a caller that counts afterwards sees the end.
    """
    listed = client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})
    doomed = [c for c in listed if (owner := container_owner(c.labels)) and owner_gone(owner)]
    for c in doomed:
        log.info("removing orphaned kernel container %s (owner %s is gone)", c.name, container_owner(c.labels))
    removed = remove_containers(client, doomed, timeout=timeout)
    kept = {Path(c.labels[LABEL_POOL_DIR]) for c in listed if LABEL_POOL_DIR in c.labels and c not in doomed}
    _sweep_run_dirs(kept)
    from ..gpu import ledger  # imports this module: at call time

    for name in ledger.reap(client):  # GPU leases of dead owners and vanished kernels (gpu/ledger.py)
        log.info("released the GPU lease %s (its holder is gone)", name)
    return removed


def remove_owned(client: docker.DockerClient, owner: str, timeout: float = 15.0) -> list[str]:
    """Remove every kernel container `owner` holds now: its kernels, the pooled containers it filled and no
    other process claimed, the pooled ones it claimed; returns their names once they are gone."""
    listed = client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})
    return remove_containers(client, [c for c in listed if container_owner(c.labels) == owner], timeout=timeout)


def remove_containers(client: docker.DockerClient, containers: list[Container], timeout: float) -> list[str]:
    """Force-remove containers (with a pooled one's run directory), in parallel, and wait until each is gone
    or timeout seconds have passed; returns the names of those this call removed."""
    if not containers:
        return []

    def remove(c: Container) -> bool:
        try:
            c.remove(force=True)
            ours = True
        except docker.errors.NotFound:
            ours = False  # removed meanwhile (its owner's clean-up, or another reaper)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress; wait for it below
                raise
            ours = False
        if LABEL_POOL_DIR in c.labels:
            remove_run_dir(Path(c.labels[LABEL_POOL_DIR]))
        return ours

    # Plain threads, one per container: concurrent.futures refuses work once the interpreter is exiting,
    # and the exit sweep (kernel/exit_sweep.py) runs then.
    done: dict[int, bool] = {}
    errors: list[BaseException] = []

    def work(i: int, c: Container) -> None:
        try:
            done[i] = remove(c)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, c), daemon=True) for i, c in enumerate(containers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if errors:
        raise errors[0]
    wait_gone(client, [str(c.id) for c in containers], timeout)
    return [c.name for i, c in enumerate(containers) if done.get(i)]


def wait_gone(client: docker.DockerClient, ids: list[str], timeout: float) -> list[str]:
    """Wait until the engine knows none of ids; returns those still there after timeout seconds."""
    deadline = time.monotonic() + timeout
    left = list(ids)
    while True:
        left = [cid for cid in left if _exists(client, cid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _exists(client: docker.DockerClient, cid: str) -> bool:
    try:
        client.containers.get(cid)
    except docker.errors.NotFound:
        return False
    return True


def _sweep_run_dirs(kept: set[Path], min_age: float = 60.0) -> None:
    """Remove this user's pooled-container run directories that no container has (a filler killed between
    making the directory and creating its container), once they are min_age seconds old."""
    root = Path(jupyter_runtime_dir()) / "dockyard-pool"
    try:
        entries = list(root.iterdir())
    except OSError:
        return  # no pool here, or not ours to read
    for d in entries:
        try:
            old = time.time() - d.stat().st_mtime > min_age
        except OSError:
            continue
        if old and d not in kept:
            log.info("removed the run directory %s of a pooled container that was never created", d)
            remove_run_dir(d)
