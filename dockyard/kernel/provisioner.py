"""DockerProvisioner: a jupyter_client kernel provisioner that runs the kernel in a dockyard image.

LocalProvisioner's pre_launch is reused as is (ports, connection file, CurveZMQ keys); only the
process handling is replaced by a container. The kernel talks to the host over loopback TCP, reads its
connection file from a read-only bind mount, works in the notebook's directory (same absolute path)
as the host UID:GID, and gets SIGINT through docker-init for interrupts (to its whole process group).
The steps of a cold start live in kernel/cold_start.py, the connection file's in kernel/connection_file.py;
this class is the jupyter_client contract that puts them in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import docker
import docker.errors
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Enum, Float, TraitError, Unicode

from .. import engine
from ..config import Settings, load_settings
from ..engine.containers import remove_quietly
from ..errors import DockyardError
from ..options import GPU_MODES, NETWORK_MODES
from . import cold_start, connection_file, death, death_notice, exit_sweep, gpu_lease, signals
from .cold_start import Heartbeat, Launch, PortTakenError, engine_call
from .container import CONNECTION_FILE, PORT_NAMES, KernelContainer, check_loopback, container_argv
from .pool import pooled as pool
from .pool.keeper import PoolKeeper
from .reaper import reap, remove_run_dir
from .target import KernelTarget, Request, for_start

# metadata.kernel_provisioner.config keys: what resolving a target needs, plus the start-up wait.
_CONFIG_KEYS = (*(f.name for f in dataclasses.fields(Request)), "startup_timeout")
# A kernel start whose port another process took meanwhile (see _new_ports) is tried this often in all.
_PORT_ATTEMPTS = 3


class DockerProvisioner(LocalProvisioner):
    """Runs a kernel in a container; selected by metadata.kernel_provisioner in kernel.json."""

    # The kernelspec's metadata.kernel_provisioner.config keys (the factory passes them as traits).
    env = Unicode(None, allow_none=True, help="dockyard environment name (envs/NAME.yaml)").tag(config=True)
    variant = Unicode(None, allow_none=True, help="variant of the environment (cpu, cuda, ...)").tag(config=True)
    image = Unicode(None, allow_none=True, help="explicit image tag; skips the spec's content tag").tag(config=True)
    gpu = Enum(GPU_MODES, None, allow_none=True, help="default: the user's settings").tag(config=True)
    network = Enum(NETWORK_MODES, None, allow_none=True, help="default: the user's settings").tag(config=True)
    workspace_root = Unicode(None, allow_none=True, help="mount this directory instead of the kernel's cwd").tag(
        config=True
    )
    shm_size = Unicode(None, allow_none=True, help="size of /dev/shm, e.g. '2g'").tag(config=True)
    memory = Unicode(None, allow_none=True, help="memory limit, e.g. '8g'").tag(config=True)
    cpus = Float(None, allow_none=True, help="CPU limit, e.g. 2.5").tag(config=True)
    gpus = Unicode(None, allow_none=True, help="which GPUs: any-free, 2, device:0,2, shared, ... (docs/gpu.md)").tag(
        config=True
    )
    gpu_wait = Float(None, allow_none=True, help="seconds to wait in the GPU queue (0: refuse at once)").tag(
        config=True
    )
    startup_timeout = Float(60.0, help="seconds to wait for the kernel's heartbeat after the container starts").tag(
        config=True
    )

    poll_interval = Float(
        1.0,
        help="seconds between the restarter's checks that the kernel's container runs (jupyter_client's own "
        "KernelRestarter.time_to_dead is 3 s): how soon a notebook learns why its kernel died",
    ).tag(config=True)

    container_id: str | None = None
    container_name: str | None = None
    _target: KernelTarget | None = None
    _settings: Settings | None = None  # read once per start, in pre_launch
    _client: docker.DockerClient | None = None
    _private_file: Path | None = None
    _pool_dir: Path | None = None  # the run directory of a claimed pooled container
    _launched: bool = False  # restarts start cold: they keep the kernel's ports and key, as clients expect
    _cells: death_notice.CellWatch | None = None  # which cell runs, for the paragraph when the kernel dies
    _explained: str | None = None  # the container whose unexpected end was already told
    last_death: str | None = None  # kernel/death.py's paragraph for this kernel's last unexpected end

    def __init__(self, **kwargs: Any) -> None:
        # A typo in kernel.json should fail loudly, not become a traitlets deprecation warning.
        unknown = sorted(set(kwargs) - {"kernel_id", "kernel_spec", "parent", "config", "log", *_CONFIG_KEYS})
        if unknown:
            raise DockyardError(
                f"Unknown key(s) {', '.join(unknown)} in the kernelspec's metadata.kernel_provisioner.config",
                fix=f"use only: {', '.join(_CONFIG_KEYS)}",
            )
        self._gpus = gpu_lease.KernelGpus()  # this kernel's GPU leases (kernel/gpu_lease.py)
        try:
            super().__init__(**kwargs)
        except TraitError as exc:
            raise DockyardError(
                f"Invalid value in the kernelspec's metadata.kernel_provisioner.config: {exc}",
                fix=f"gpu is one of {', '.join(GPU_MODES)}, network one of {', '.join(NETWORK_MODES)}; sizes are "
                "strings such as '8g', cpus and startup_timeout are numbers",
            ) from None

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    @property
    def docker_client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.client()
        return self._client

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    # --- start -----------------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
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
        extra = list(kwargs.get("extra_arguments") or [])
        # jupyter_client calls pre_launch again on every restart (same provisioner). Resolve again each time,
        # so a restart runs what a fresh start would: the image of the spec's current content tag (a
        # `dockyard build` after editing the spec makes a new tag), under the current settings. Resolving
        # is cheap (tens of ms) when nothing needs building.
        self._settings = None
        self._target = await asyncio.to_thread(self._next_target)
        kwargs = await super().pre_launch(**kwargs)
        kwargs["cmd"] = container_argv(self.kernel_spec.argv, extra)
        return kwargs

    def _next_target(self) -> KernelTarget:
        client = self.docker_client
        try:
            removed = reap(client)
            if removed:
                self.log.info("dockyard: removed %d orphaned kernel container(s): %s", len(removed), ", ".join(removed))
        except Exception as exc:  # the reaper must never stop a kernel from starting
            self.log.warning("dockyard: could not check for orphaned kernel containers: %s", exc)
        req = Request(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Request)})
        return engine_call(for_start, client, self.settings, req, self._target, self.log, self.kernel_id or "?")

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        cwd = Path(os.path.realpath(kwargs.get("cwd") or os.getcwd()))
        env = kwargs.get("env") or {}
        first, self._launched = not self._launched, True
        exit_sweep.register()  # this process now owns a container: it goes when the process does
        await asyncio.to_thread(engine_call, self._take_gpus, env)
        kc = self._kernel_container(cmd, cwd, env)
        if first and await asyncio.to_thread(self._claim_pooled, kc):
            return self.connection_info
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self.container_name = kc.name
                await asyncio.to_thread(engine_call, self._start_with_gpu_fallback, kc, cmd, cwd, env)
                await self._wait_until_ready()
                break
            except PortTakenError as exc:
                if attempt == _PORT_ATTEMPTS:
                    await self._abandon_start()
                    raise
                self.log.info("dockyard: kernel %s: %s; starting again on new ports", self.kernel_id, exc.problem)
                await self._remove_container()
                await self._new_ports()
                kc = self._kernel_container(cmd, cwd, env)
            except BaseException:
                await self._abandon_start()
                raise
        self.cwd = str(cwd)
        self.log.info("dockyard: kernel %s runs in container %s (%s)", self.kernel_id, kc.name, kc.image)
        self._keep_pool(kc)
        self._watch_cells()
        return self.connection_info

    def _kernel_container(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> KernelContainer:
        """The container of one start attempt; writes the private connection file it needs, if any."""
        assert self._target is not None
        assert self.parent is not None
        km = self.parent
        self._drop_private_file()
        path, writable, private = connection_file.for_container(
            km.connection_file, self._target.network, km.curve_publickey is not None
        )
        self._private_file = path if private else None
        launch = Launch(
            kernel_id=self.kernel_id or "unknown",
            cmd=cmd,
            cwd=cwd,
            env=env,
            kernelspec_env=self.kernel_spec.env or {},
            key=km.session.key.decode("utf-8", "replace") if km.session.key else "",
            ports=tuple(int(self.connection_info[p]) for p in PORT_NAMES),  # type: ignore[literal-required]
        )
        return self._gpus.apply(cold_start.kernel_container(self._target, launch, path, writable))

    def _take_gpus(self, env: dict[str, str]) -> None:
        assert self._target is not None
        req = Request(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Request)})
        self._gpus.take(self.docker_client, self._target, req, self.settings, self.kernel_id or "?", env, self.log)

    def _start_with_gpu_fallback(self, kc: KernelContainer, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        """Start; an optional GPU kernel whose start fails on the GPU request starts again without it."""
        assert self._target is not None
        try:
            self._create_and_start(kc)
            return
        except docker.errors.APIError as exc:
            reason = cold_start.gpu_refusal(exc, kc, self._target)
            if reason is None:
                raise
        if self.container_id is not None:  # created, then refused at start: remove before the retry
            remove_quietly(self.docker_client, self.container_id)
            self.container_id = None
        self._target = cold_start.without_gpu(self.docker_client, self._target, reason, self.log)
        self._create_and_start(self._kernel_container(cmd, cwd, env))

    def _create_and_start(self, kc: KernelContainer) -> None:
        created = cold_start.create(self.docker_client, kc, self.log)
        self.container_id = str(created.id)  # at once, so a failed start still removes it
        cold_start.start(created, kc)

    async def _wait_until_ready(self) -> None:
        assert self.parent is not None
        assert self.container_id is not None
        km = self.parent
        hb = Heartbeat(
            url=f"tcp://{self.connection_info['ip']}:{self.connection_info['hb_port']}",
            curve=(km.curve_secretkey, km.curve_publickey) if km.curve_publickey is not None else None,
            timeout=float(self.startup_timeout),
        )
        t = self._target
        what = f"{t.ref}, image {t.image}" if t else "dockyard kernel"
        await cold_start.wait_until_ready(
            self.docker_client, self.container_id, str(self.container_name), what, hb, self.log
        )

    async def _abandon_start(self) -> None:
        await self._remove_container()
        await asyncio.to_thread(self._gpus.release, self.docker_client)
        await super().cleanup(restart=False)  # hand back the ports; the next start allocates new ones
        self.ports_cached = False

    async def _new_ports(self) -> None:
        """Pick new ports and rewrite the connection file, as LocalProvisioner.pre_launch does.

        Ports are picked free in this process, but the kernel binds them only seconds later, in its container:
        another process (another Jupyter server, a helper) starting a kernel meanwhile can pick the same one.
        For a local kernel that window is milliseconds; for a container it is the container's start time.
        On a restart this changes the ports too, as restart_kernel(newports=True) would: clients connect anew.
        """
        assert self.parent is not None
        session = connection_file.session_of(self.parent.connection_file)
        await super().cleanup(restart=False)  # hands the old ports back to LocalPortCache (when cached)
        self.connection_info = connection_file.rewrite_with_new_ports(self.parent, session, cached=self.ports_cached)

    # --- the warm pool (kernel/pool/) ---------------------------------------------------------

    def _claim_pooled(self, kc: KernelContainer) -> bool:
        """Take a ready pooled container for this kernel, if one fits exactly; False: start cold."""
        assert self.parent is not None
        if self.parent.curve_publickey is not None or self.settings.kernels.pool.size <= 0 or not self._gpus.pooled_ok:
            return False  # CurveZMQ keys are the KernelManager's own; a pooled container holds no GPU lease
        try:
            claimed = pool.claim(self.docker_client, kc, new_name=kc.name)
        except Exception as exc:  # the pool must never stop a kernel from starting
            self.log.warning("dockyard: could not use the kernel pool: %s", exc)
            claimed = None
        if claimed is None:
            return False
        self._drop_private_file()  # the pooled container has its own connection file
        self.container_id, self.container_name, self._pool_dir = claimed.id, claimed.name, claimed.run_dir
        # The pool chose the ports and key: hand back those pre_launch reserved; the KernelManager takes the
        # pool's (jupyter_client reconciles its connection file with what launch_kernel returns).
        connection_file.return_ports(self.connection_info)
        info = dict(claimed.connection_info)
        info["key"] = str(info["key"]).encode()
        self.connection_info = info  # type: ignore[assignment]
        self.cwd = str(kc.cwd)
        self.log.info("dockyard: kernel %s runs in pooled container %s (%s)", self.kernel_id, kc.name, kc.image)
        self._keep_pool(kc)
        self._watch_cells()
        return True

    def pool_request(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[KernelContainer, tuple[str, ...]]:
        """The cold container this provisioner would start after pre_launch, and the modules a pooled twin
        imports: what `dockyard kernels pool fill` fills for (kernel/pool/fill.py)."""
        kc = self._kernel_container(cmd, Path(os.path.realpath(cwd)), env)
        self._drop_private_file()
        return kc, self._pool_modules()

    def _pool_modules(self) -> tuple[str, ...]:
        framework = str((self.kernel_spec.metadata.get("dockyard") or {}).get("framework", ""))
        return pool.FRAMEWORK_MODULES.get(framework, ())

    def _keep_pool(self, kc: KernelContainer) -> None:
        """Refill the pool behind this kernel (in the background); not for leased GPUs (docs/gpu.md)."""
        if not self._gpus.pooled_ok:
            return
        try:
            PoolKeeper.instance().want(kc, self._pool_modules(), self.settings.kernels.pool)
        except Exception as exc:
            self.log.warning("dockyard: could not schedule the kernel pool: %s", exc)

    # --- lifecycle -------------------------------------------------------------------------

    async def poll(self) -> int | None:
        if self.container_id is None:
            return 0
        state, code = await asyncio.to_thread(cold_start.state, self.docker_client, self.container_id, self.log)
        if state in ("running", "unknown"):
            return None  # an engine hiccup is not a dead kernel: the restarter would start a storm
        if state == "exited" and self._explained != self.container_id:
            await self._explain_death(self.container_id)
        return code

    # --- why it died (kernel/death.py) ---------------------------------------------------------

    async def post_launch(self, **kwargs: Any) -> None:
        await super().post_launch(**kwargs)
        # jupyter_client started the restarter just before this hook, at its own pace: set ours.
        restarter = getattr(self.parent, "_restarter", None)
        if restarter is not None and restarter.time_to_dead > self.poll_interval > 0:
            restarter.stop()
            restarter.time_to_dead = self.poll_interval
            restarter.start()

    def _watch_cells(self) -> None:
        """Follow which cell runs (see kernel/death_notice.py); the ports may be new, so subscribe again."""
        self._stop_watching_cells()
        try:
            url = f"tcp://{self.connection_info['ip']}:{self.connection_info['iopub_port']}"
            self._cells = death_notice.CellWatch(self.parent, url, self.log)
        except Exception as exc:  # without it the paragraph still reaches the log, only not the cell
            self.log.warning("dockyard: cannot follow kernel %s's iopub: %s", self.kernel_id, exc)

    def _stop_watching_cells(self) -> None:
        if self._cells is not None:
            self._cells.close()
            self._cells = None

    async def _explain_death(self, cid: str) -> None:
        """An end nobody asked for (not a shutdown or restart): tell the server log and the notebook why."""
        self._explained = cid
        if self.parent is None or getattr(self.parent, "shutting_down", False):
            return
        ended = await asyncio.to_thread(death_notice.read, self.docker_client, cid, str(self.container_name))
        if ended is None:
            return
        self.last_death = death.paragraph(ended)
        self.log.error("dockyard: kernel %s: %s", self.kernel_id, self.last_death)
        header = self._cells.header if self._cells is not None else {}
        try:
            death_notice.tell_clients(self.parent, self.last_death, header)
        except Exception as exc:  # a closed websocket must not stop the restart that follows
            self.log.warning("dockyard: could not tell kernel %s's clients why it died: %s", self.kernel_id, exc)

    async def wait(self) -> int | None:
        if self.container_id is None:
            return 0
        while (ret := await self.poll()) is None:
            await asyncio.sleep(0.1)
        await self._remove_container()
        return ret

    async def send_signal(self, signum: int) -> None:
        if self.container_id is None:
            return
        await asyncio.to_thread(signals.deliver, self.docker_client, self.container_id, int(signum), self.log)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if not restart:
            self._stop_watching_cells()
        await self._remove_container()
        await asyncio.to_thread(self._gpus.release, self.docker_client)  # restarts take a lease again
        await super().cleanup(restart=restart)  # returns cached ports unless restarting

    async def _remove_container(self) -> None:
        cid, self.container_id = self.container_id, None
        self._drop_private_file()
        if cid is not None:
            await asyncio.to_thread(remove_quietly, self.docker_client, cid)
        if self._pool_dir is not None:
            remove_run_dir(self._pool_dir)
            self._pool_dir = None

    def _drop_private_file(self) -> None:
        if self._private_file is not None:
            self._private_file.unlink(missing_ok=True)
            self._private_file = None

    # --- persistence and timing ------------------------------------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update({"container_id": self.container_id, "container_name": self.container_name})
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_id = provisioner_info.get("container_id")
        self.container_name = provisioner_info.get("container_name")

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 6.0)  # container teardown adds up to a second to the kernel's own exit

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 20.0)  # container start + kernel start, slower with several at once


__all__ = ["CONNECTION_FILE", "DockerProvisioner"]
