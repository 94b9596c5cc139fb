"""The warm kernel pool: pre-started kernel containers with the framework imported, claimed by new kernels.

A pooled container is the container a cold start would create (kernel/container.py: same image, user,
workspace mount, hardening, limits, GPU request) with three differences fixed at creation:
- its working directory is the workspace mount; the claim moves the kernel to the notebook's directory;
- it mounts a private run directory at RUN_DIR instead of the connection file alone: the pool's own
  connection file (ports and key chosen here, mode 600 in a 700 directory), the claim FIFO and markers;
- it runs pool_kernel.py, which imports the framework, starts ipykernel and waits for a claim.

Claiming is atomic across threads and processes: O_CREAT|O_EXCL of the run directory's 'taken' file (a
local file system operation no two processes can both win), which also records the claimer as the owner
the reaper checks. A claimed container is renamed like a cold kernel's and never offered again.
Bind mounts are fixed at creation, so a pooled container serves only kernels with the same workspace
mount: the workspace root when one is configured, else the notebook's own directory (docs/pool.md).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from jupyter_core.paths import jupyter_runtime_dir

from ... import engine
from ...engine import capabilities
from ...engine.containers import owned, remove_quietly
from ...labels import LABEL_ENV, LABEL_OWNER, LABEL_POOL_DIR, LABEL_POOL_KEY, LABEL_VARIANT
from ..container import PORT_NAMES, RUN_DIR, KernelContainer, create_kwargs
from ..reaper import remove_run_dir

log = logging.getLogger(__name__)

UNCLAIMED_PREFIX = "dockyard-pool-"
_SCRIPT = Path(__file__).with_name("pool_kernel.py")
# What a pooled container imports before it waits, by the spec's framework (kernelspec metadata).
FRAMEWORK_MODULES = {"pytorch": ("torch",), "tensorflow": ("tensorflow",), "jax": ("jax",)}
# Set per kernel by the Jupyter server (the notebook's path): not part of the pooled container's environment.
PER_KERNEL_VARIABLES = frozenset({"JPY_SESSION_NAME"})
# Variables read when the interpreter or a framework starts up: a claim cannot change them after the fact, so
# they are part of the pool key (a kernel whose values differ starts cold). Others are applied at the claim.
_STARTUP_PREFIXES = (
    "PYTHON",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "NUMEXPR_",
    "TORCH",
    "TF_",
    "XLA_",
    "JAX_",
    "CUDA_",
    "NVIDIA_",
    "MALLOC_",
    "TINI_",
    "LANG",
)
_READY_TIMEOUT = 180.0  # seconds a filling container may take to import its framework (tensorflow on 2 cores)
_CLAIM_TIMEOUT = 10.0  # seconds the claimed kernel may take to apply the claim


@dataclass(frozen=True)
class Pooled:
    """One pooled container as the engine and its run directory describe it."""

    id: str
    name: str
    env_name: str
    variant: str
    key: str
    run_dir: Path
    owner: str  # the filling process
    state: str  # starting | ready | claimed | exited
    created: float

    @property
    def ref(self) -> str:
        return f"{self.env_name}:{self.variant}"


@dataclass(frozen=True)
class Claimed:
    """A claimed pooled container: now the kernel's, with the pool's connection info for the KernelManager."""

    id: str
    name: str
    run_dir: Path
    connection_info: dict[str, Any]


def pool_root() -> Path:
    """Run directories of pooled containers: next to Jupyter's connection files, private to the user."""
    root = Path(jupyter_runtime_dir()) / "dockyard-pool"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def kernel_args(argv: list[str]) -> list[str] | None:
    """ipykernel's arguments in a kernel argv `python -m ipykernel_launcher ARGS`; None for any other argv."""
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"] or not argv[0].startswith("python"):
        return None
    return argv[3:]


def template(kc: KernelContainer) -> KernelContainer | None:
    """The pooled twin of a cold kernel's container, before its own ports and run directory; None if it
    cannot be pooled exactly (an argv other than ipykernel's, a private or writable connection file, secrets).
    Data mounts are the cold container's own (create_kwargs) and part of the pool key."""
    if kernel_args(kc.argv) is None or kc.connection_file_writable or kc.secrets:
        return None  # secrets: read at each start, never held by an idle container (kernel/kernel_secrets.py)
    env = {k: v for k, v in kc.environment.items() if k not in PER_KERNEL_VARIABLES}
    return dataclasses.replace(kc, kernel_id="pool", environment=env, cwd=kc.workspace)


def pool_key(kc: KernelContainer) -> str:
    """A hash of everything fixed when a container is created: only a kernel with the same key may claim it."""
    startup_env = {k: v for k, v in sorted(kc.environment.items()) if k.startswith(_STARTUP_PREFIXES)}
    fields = {
        "image": kc.image,
        "env": kc.env_name,
        "variant": kc.variant,
        "argv": kc.argv,
        "workspace": kc.workspace.as_posix(),
        "network": kc.network,
        "user": [kc.uid, kc.gid],
        "limits": [kc.shm_size, kc.memory, kc.cpus],
        "gpu": [dict(r) for r in kc.device_requests],
        "startup_env": startup_env,
        "mounts": [[m.source.as_posix(), m.target, m.read_only] for m in kc.data_mounts],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (as jupyter_client picks them: bind port 0, read, close)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


def fill(client: docker.DockerClient, cold: KernelContainer, modules: tuple[str, ...], owner: str) -> Pooled:
    """Create and start one pooled container for kernels like `cold`; returns at once (state 'starting')."""
    base = template(cold)
    if base is None:
        raise ValueError(f"a kernel with argv {cold.argv} cannot be pooled")
    key = pool_key(cold)
    token = secrets.token_hex(4)
    name = f"{UNCLAIMED_PREFIX}{cold.env_name}-{cold.variant}-{token}"
    run_dir = pool_root() / name
    run_dir.mkdir(mode=0o700)
    try:
        ports = _free_ports(len(PORT_NAMES))
        info: dict[str, Any] = {
            **dict(zip(PORT_NAMES, ports, strict=True)),
            "ip": "127.0.0.1",
            "key": uuid.uuid4().hex,  # what jupyter_client's Session uses for a new key
            "transport": "tcp",
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }
        _write_private(run_dir / "host.json", info)  # what the claimer's KernelManager gets
        # In bridge mode the kernel binds all interfaces of its own network namespace (published on loopback only).
        _write_private(run_dir / "kernel.json", {**info, "ip": "0.0.0.0" if cold.network == "bridge" else info["ip"]})
        shutil.copyfile(_SCRIPT, run_dir / "pool_kernel.py")
        os.mkfifo(run_dir / "claim", 0o600)
        argv = [cold.argv[0], f"{RUN_DIR}/pool_kernel.py", *modules, "--", *(kernel_args(cold.argv) or [])]
        kc = dataclasses.replace(
            base,
            kernel_id=f"pool-{token}",
            owner=owner,
            argv=argv,
            connection_file=run_dir / "kernel.json",
            ports=tuple(ports),
            pool_key=key,
            run_dir=run_dir,
            pool_name=name,
        )
        kwargs = create_kwargs(kc, capabilities.detect(client))  # as a cold start's: keep-id on rootless Podman
        _write_private(run_dir / "pool.json", {"env": kwargs["environment"]})  # the claim sends what differs
        container = engine.create_container(client, **kwargs)
        try:
            container.start()
        except BaseException:
            _remove(client, str(container.id), run_dir)
            raise
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Pooled(str(container.id), name, cold.env_name, cold.variant, key, run_dir, owner, "starting", time.time())


def wait_ready(
    client: docker.DockerClient,
    pooled: Pooled,
    timeout: float = _READY_TIMEOUT,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """Wait until the pooled kernel is ready for a claim; False (container removed) if it died, hung or the
    wait was cancelled (the owning process is exiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cancelled():
        if (pooled.run_dir / "ready").exists():
            return True
        if _status(client, pooled.id) not in ("created", "running"):
            break
        time.sleep(0.1)
    log.info("dockyard: pooled container %s did not get ready; removing it", pooled.name)
    _remove(client, pooled.id, pooled.run_dir)
    return False


def _status(client: docker.DockerClient, cid: str) -> str:
    try:
        return str((client.api.inspect_container(cid).get("State") or {}).get("Status", "unknown"))
    except docker.errors.NotFound:
        return "missing"


def listing(client: docker.DockerClient) -> list[Pooled]:
    """Every pooled container on the engine (any owner), claimed ones included, oldest first."""
    out = []
    for c in owned(client, LABEL_POOL_KEY):
        run_dir = Path(c.labels.get(LABEL_POOL_DIR, "/nonexistent"))
        if c.state != "running":
            state = "exited"
        elif _exists(run_dir / "taken") or not c.name.startswith(UNCLAIMED_PREFIX):
            state = "claimed"
        elif _exists(run_dir / "ready"):
            state = "ready"
        else:
            state = "starting"
        out.append(
            Pooled(
                id=c.id,
                name=c.name,
                env_name=c.labels.get(LABEL_ENV, "?"),
                variant=c.labels.get(LABEL_VARIANT, "?"),
                key=c.labels.get(LABEL_POOL_KEY, ""),
                run_dir=run_dir,
                owner=c.labels.get(LABEL_OWNER, ""),
                state=state,
                created=c.created,
            )
        )
    return sorted(out, key=lambda p: p.created)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # another user's run directory: not ours to read
        return False


def is_mine(p: Pooled) -> bool:
    """Whether this user made the pooled container (its run directory is ours): only then could we claim it."""
    try:
        return p.run_dir.stat().st_uid == os.getuid()
    except OSError:
        return False


def _take(run_dir: Path, owner: str) -> bool:
    """The atomic claim: create run_dir/taken exclusively, holding the new owner. Only one caller ever wins."""
    try:
        st = run_dir.stat()
    except OSError:
        return False
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        return False  # not a run directory this user made: its key is not ours to use
    try:
        fd = os.open(run_dir / "taken", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOENT):
            return False
        raise
    with os.fdopen(fd, "w") as f:
        f.write(owner)
    return True


def claim(client: docker.DockerClient, cold: KernelContainer, *, new_name: str) -> Claimed | None:
    """Claim a ready pooled container for the kernel `cold` describes and hand it its directory and
    environment; None when none fits or the handover fails (the caller then starts cold)."""
    key = pool_key(cold)
    try:
        found = owned(client, f"{LABEL_POOL_KEY}={key}", running=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None
    for c in sorted(found, key=lambda c: c.created):
        name, run_dir = c.name, Path(c.labels.get(LABEL_POOL_DIR, "/nonexistent"))
        if not name.startswith(UNCLAIMED_PREFIX) or not _exists(run_dir / "ready"):
            continue
        if not _take(run_dir, cold.owner):
            continue
        cid = c.id
        try:
            info = json.loads((run_dir / "host.json").read_text())
            pooled_env = json.loads((run_dir / "pool.json").read_text())["env"]
            _hand_over(client, cid, run_dir, cold, create_kwargs(cold)["environment"], pooled_env)
            client.api.rename(cid, new_name)
        except Exception as exc:  # any failure: this container is spoilt, the kernel starts cold
            log.warning("dockyard: could not hand pooled container %s to a kernel (%s); starting cold", name, exc)
            _remove(client, cid, run_dir)
            return None
        return Claimed(cid, new_name, run_dir, info)
    return None


def _hand_over(
    client: docker.DockerClient,
    cid: str,
    run_dir: Path,
    cold: KernelContainer,
    env: dict[str, str],
    pooled_env: dict[str, str],
) -> None:
    """Send the claim (only what differs from the pooled container) through the FIFO, wait for the kernel's ack."""
    message = {
        "cwd": cold.cwd.as_posix(),
        "env": {k: v for k, v in env.items() if pooled_env.get(k) != v},
        "unset": sorted(set(pooled_env) - set(env)),
    }
    data = (json.dumps(message) + "\n").encode()
    try:
        fd = os.open(run_dir / "claim", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no reader: the pooled kernel is gone
            raise RuntimeError("the pooled kernel is not running") from None
        raise
    try:
        view = memoryview(data)
        deadline = time.monotonic() + _CLAIM_TIMEOUT
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the pooled kernel does not read its claim") from None
                time.sleep(0.002)
    finally:
        os.close(fd)
    ack = run_dir / "claimed"
    deadline = time.monotonic() + _CLAIM_TIMEOUT
    checked = time.monotonic()
    while not ack.exists():
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError("the pooled kernel did not acknowledge its claim")
        if now - checked > 0.25:
            checked = now
            if _status(client, cid) != "running":
                raise RuntimeError("the pooled kernel exited during its claim")
        time.sleep(0.001)
    answer = json.loads(ack.read_text())
    if "error" in answer:
        raise RuntimeError(f"the pooled kernel could not apply its claim: {answer['error']}")


def _remove(client: docker.DockerClient, cid: str, run_dir: Path) -> None:
    remove_quietly(client, cid)
    remove_run_dir(run_dir)


def drain(client: docker.DockerClient, owned_by: Callable[[Pooled], bool] = lambda p: True) -> list[str]:
    """Remove unclaimed pooled containers (those owned_by selects); claimed ones are kernels and stay."""
    removed = []
    for p in listing(client):
        if p.state == "claimed" or not owned_by(p):
            continue
        # Take it first, as a claimer would, so a kernel never gets a container that is being removed
        # (and only this user's: _take refuses another user's run directory).
        if not _take(p.run_dir, "drain"):
            continue
        _remove(client, p.id, p.run_dir)
        removed.append(p.name)
    return removed


def idle_memory(client: docker.DockerClient, cid: str) -> int | None:
    """Bytes the container holds now (the engine's one-shot stats), None if the engine does not say."""
    try:
        stats = client.api.stats(cid, stream=False, one_shot=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    cache = (mem.get("stats") or {}).get("inactive_file", 0)  # page cache the kernel can drop, as `docker stats`
    return int(usage) - int(cache)


__all__ = ["Claimed", "Pooled", "claim", "drain", "fill", "listing", "pool_key", "template"]
