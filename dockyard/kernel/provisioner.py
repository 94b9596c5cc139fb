"""DockerProvisioner: a jupyter_client kernel provisioner that runs the kernel in a dockyard image.

LocalProvisioner's pre_launch is reused as is (ports, connection file, CurveZMQ keys); only the
process handling is replaced by a container. The kernel talks to the host over loopback TCP, reads its
connection file from a read-only bind mount, works in the notebook's directory (same absolute path)
as the host UID:GID, and gets SIGINT through docker-init for interrupts (to its whole process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pwd
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
import zmq
import zmq.asyncio
from jupyter_client.connect import KernelConnectionInfo, LocalPortCache
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Float, TraitError, Unicode

from .. import engine, gpu
from ..config import GPU_MODES, NETWORK_MODES, load_settings
from ..engine import capabilities
from ..errors import DockyardError, EngineError
from ..labels import LABEL_KERNEL_ID
from .container import (
    CONNECTION_FILE,
    GROUP_SIGNAL_ARGV,
    PORT_NAMES,
    KernelContainer,
    check_loopback,
    container_argv,
    create_kwargs,
    kernel_banner_args,
    kernel_environment,
    workspace_mount,
)
from .pool import pooled as pool
from .pool.keeper import PoolKeeper
from .reaper import owner_id, reap, remove_run_dir
from .target import NotBuiltError, Request, Target, resolve

_LOG_TAIL = 25
T = TypeVar("T")
# metadata.kernel_provisioner.config keys: what resolving a target needs, plus the start-up wait.
_CONFIG_KEYS = (*(f.name for f in dataclasses.fields(Request)), "startup_timeout")
_CHOICES = {"gpu": GPU_MODES, "network": NETWORK_MODES}
# A kernel start whose port another process took meanwhile (see _new_ports) is tried this often in all.
_PORT_ATTEMPTS = 3
_PORT_IN_USE = "Address already in use"  # zmq.error.ZMQError in the kernel's log (host network)


class PortTakenError(DockyardError):
    """The kernel could not bind a port of its connection file: another process took it first."""


class DockerProvisioner(LocalProvisioner):
    """Runs a kernel in a container; selected by metadata.kernel_provisioner in kernel.json."""

    # The kernelspec's metadata.kernel_provisioner.config keys (the factory passes them as traits).
    env = Unicode(None, allow_none=True, help="dockyard environment name (envs/NAME.yaml)")
    variant = Unicode(None, allow_none=True, help="variant of the environment (cpu, cuda, ...)")
    image = Unicode(None, allow_none=True, help="explicit image tag; skips the spec's content tag")
    gpu = Unicode(None, allow_none=True, help="auto/off/required; default: the user's settings")
    network = Unicode(None, allow_none=True, help="host/bridge; default: the user's settings")
    workspace_root = Unicode(None, allow_none=True, help="mount this directory instead of the kernel's cwd")
    shm_size = Unicode(None, allow_none=True, help="size of /dev/shm, e.g. '2g'")
    memory = Unicode(None, allow_none=True, help="memory limit, e.g. '8g'")
    cpus = Float(None, allow_none=True, help="CPU limit, e.g. 2.5")
    startup_timeout = Float(60.0, help="seconds to wait for the kernel's heartbeat after the container starts")

    container_id: str | None = None
    container_name: str | None = None
    _target: Target | None = None
    _client: docker.DockerClient | None = None
    _private_file: Path | None = None
    _pool_dir: Path | None = None  # the run directory of a claimed pooled container
    _launched: bool = False  # restarts start cold: they keep the kernel's ports and key, as clients expect

    def __init__(self, **kwargs: Any) -> None:
        # A typo in kernel.json should fail loudly, not become a traitlets deprecation warning.
        unknown = sorted(set(kwargs) - {"kernel_id", "kernel_spec", "parent", "config", "log", *_CONFIG_KEYS})
        if unknown:
            raise DockyardError(
                f"Unknown key(s) {', '.join(unknown)} in the kernelspec's metadata.kernel_provisioner.config",
                fix=f"use only: {', '.join(_CONFIG_KEYS)}",
            )
        for key, allowed in _CHOICES.items():
            if kwargs.get(key) is not None and kwargs[key] not in allowed:
                raise DockyardError(
                    f"Kernel provisioner config {key}={kwargs[key]!r} is not valid",
                    fix=f"use one of: {', '.join(allowed)}",
                )
        try:
            super().__init__(**kwargs)
        except TraitError as exc:
            raise DockyardError(
                f"Invalid value in the kernelspec's metadata.kernel_provisioner.config: {exc}",
                fix="sizes are strings such as '8g', cpus and startup_timeout are numbers",
            ) from None

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    @property
    def docker_client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.client()
        return self._client

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
        previous = self._target
        try:
            target = await asyncio.to_thread(self._resolve)
        except NotBuiltError as exc:
            # Spec edited, not built yet. Failing here would leave a dead kernel that Jupyter Server reports
            # only as "Exception restarting kernel" (its restart handler drops our message), and a kernel that
            # died (the auto-restarter's case) would stay dead: keep the image the kernel had, and say so in
            # the server's log.
            if previous is None or not await asyncio.to_thread(self._image_exists, previous.image):
                raise
            self.log.warning(
                "dockyard: kernel %s restarts with its previous image %s, not the spec's current one: %s",
                self.kernel_id,
                previous.image,
                exc,
            )
            target = previous
        if previous is not None and previous.image != target.image:
            self.log.info(
                "dockyard: kernel %s restarts with image %s (was %s)", self.kernel_id, target.image, previous.image
            )
        self._target = target
        kwargs = await super().pre_launch(**kwargs)
        kwargs["cmd"] = container_argv(self.kernel_spec.argv, extra)
        return kwargs

    def _resolve(self) -> Target:
        settings = load_settings()
        client = self.docker_client
        try:
            removed = reap(client)
            if removed:
                self.log.info("dockyard: removed %d orphaned kernel container(s): %s", len(removed), ", ".join(removed))
        except Exception as exc:  # the reaper must never stop a kernel from starting
            self.log.warning("dockyard: could not check for orphaned kernel containers: %s", exc)
        req = Request(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Request)})
        return _engine_call(resolve, client, settings, req)

    def _image_exists(self, tag: str) -> bool:
        return _engine_call(engine.find_image, self.docker_client, tag) is not None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        assert self._target is not None
        assert self.parent is not None
        cwd = Path(os.path.realpath(kwargs.get("cwd") or os.getcwd()))
        env = kwargs.get("env") or {}
        first, self._launched = not self._launched, True
        if first and (info := await asyncio.to_thread(self._claim_pooled, cmd, cwd, env)) is not None:
            return info
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                container = self._kernel_container(cmd, cwd, env)
                self.container_name = container.name
                await asyncio.to_thread(_engine_call, self._start_with_gpu_fallback, container, cmd, cwd, env)
                await self._wait_until_ready()
                break
            except PortTakenError as exc:
                if attempt == _PORT_ATTEMPTS:
                    await self._abandon_start()
                    raise
                self.log.info("dockyard: kernel %s: %s; starting again on new ports", self.kernel_id, exc.problem)
                await self._remove_container()
                await self._new_ports()
            except BaseException:
                await self._abandon_start()
                raise
        self.cwd = str(cwd)
        self.log.info("dockyard: kernel %s runs in container %s (%s)", self.kernel_id, container.name, container.image)
        self._keep_pool(container)
        return self.connection_info

    # --- the warm pool (kernel/pool/pooled.py) ------------------------------------------------------

    def _claim_pooled(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> KernelConnectionInfo | None:
        """Take a ready pooled container for this kernel, if one fits exactly; None: start cold."""
        assert self.parent is not None
        if self.parent.curve_publickey is not None or load_settings().kernels.pool.size <= 0:
            return None  # CurveZMQ keys are the KernelManager's own: a pooled kernel cannot have them
        try:
            kc = self._kernel_container(cmd, cwd, env)
            claimed = pool.claim(self.docker_client, kc, new_name=kc.name)
        except Exception as exc:  # the pool must never stop a kernel from starting
            self.log.warning("dockyard: could not use the kernel pool: %s", exc)
            claimed = None
        self._drop_private_file()  # the cold start writes its own again
        if claimed is None:
            return None
        self.container_id, self.container_name, self._pool_dir = claimed.id, claimed.name, claimed.run_dir
        # The pool chose the ports and key: hand back those pre_launch reserved; the KernelManager takes the
        # pool's (jupyter_client reconciles its connection file with what launch_kernel returns).
        cache = LocalPortCache.instance()
        for name in PORT_NAMES:
            cache.return_port(int(self.connection_info[name]))  # type: ignore[literal-required]
        info = dict(claimed.connection_info)
        info["key"] = str(info["key"]).encode()
        self.connection_info = info  # type: ignore[assignment]
        self.cwd = str(cwd)
        self.log.info("dockyard: kernel %s runs in pooled container %s (%s)", self.kernel_id, kc.name, kc.image)
        self._keep_pool(kc)
        return self.connection_info

    def pool_request(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[KernelContainer, tuple[str, ...]]:
        """The cold container this provisioner would start after pre_launch, and the modules a pooled twin
        imports: what `dockyard kernels pool fill` fills for (kernel/pool/keeper.fill_for)."""
        kc = self._kernel_container(cmd, Path(os.path.realpath(cwd)), env)
        self._drop_private_file()
        return kc, self._pool_modules()

    def _drop_private_file(self) -> None:
        if self._private_file is not None:
            self._private_file.unlink(missing_ok=True)
            self._private_file = None

    def _pool_modules(self) -> tuple[str, ...]:
        framework = str((self.kernel_spec.metadata.get("dockyard") or {}).get("framework", ""))
        return pool.FRAMEWORK_MODULES.get(framework, ())

    def _keep_pool(self, kc: KernelContainer) -> None:
        """Refill the pool behind this kernel (in the background)."""
        try:
            PoolKeeper.instance().want(kc, self._pool_modules(), load_settings().kernels.pool)
        except Exception as exc:
            self.log.warning("dockyard: could not schedule the kernel pool: %s", exc)

    def _start_with_gpu_fallback(self, kc: KernelContainer, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        """Start; an optional GPU kernel whose start fails on the GPU request starts again without it.

        The verdict can be stale (driver unloaded, toolkit removed) or wrong in ways only a real start shows
        (Docker Desktop's 'nvidia' runtime on a machine without an NVIDIA GPU): a notebook should still open.
        """
        assert self._target is not None
        try:
            self._create_and_start(kc)
            return
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc)
            if not (kc.device_requests and self._target.gpu_fallback and gpu.is_gpu_error(reason)):
                raise
        if self.container_id is not None:  # created, then refused at start: remove before the retry
            self._remove(self.container_id)
            self.container_id = None
        notice = (
            f"{self._target.ref} started without its GPU: the engine refused the GPU request "
            f"({gpu.probe.first_line(reason)}); 'dockyard doctor' explains the GPU setup"
        )
        self.log.warning("dockyard: %s", notice)
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            gpu.forget(self.docker_client.info())  # the cached verdict was wrong: probe again next time
        self._target = dataclasses.replace(
            self._target, device_requests=[], gpu_fallback=False, notices=(*self._target.notices, notice)
        )
        self._create_and_start(self._kernel_container(cmd, cwd, env))

    async def _abandon_start(self) -> None:
        await self._remove_container()
        await super().cleanup(restart=False)  # hand back the ports; the next start allocates new ones
        self.ports_cached = False

    async def _new_ports(self) -> None:
        """Pick new ports and rewrite the connection file, as LocalProvisioner.pre_launch does.

        Ports are picked free in this process, but the kernel binds them only seconds later, in its container:
        another process (another Jupyter server, a helper) starting a kernel meanwhile can pick the same one.
        For a local kernel that window is milliseconds; for a container it is the container's start time.
        On a restart this changes the ports too, as restart_kernel(newports=True) would: clients connect anew.
        """
        km = self.parent
        assert km is not None
        session = json.loads(Path(km.connection_file).read_text()).get("jupyter_session", "")
        await super().cleanup(restart=False)  # hands the old ports back to LocalPortCache (when cached)
        km.cleanup_connection_file()
        cache = LocalPortCache.instance() if self.ports_cached else None
        for name in PORT_NAMES:
            setattr(km, name, cache.find_available_port(km.ip) if cache else 0)  # 0: the file writer picks
        km.write_connection_file(jupyter_session=session)
        self.connection_info = km.get_connection_info()

    def _kernel_container(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> KernelContainer:
        assert self._target is not None
        assert self.parent is not None
        target = self._target
        key = self.parent.session.key.decode("utf-8", "replace") if self.parent.session.key else ""
        user = _user_name()
        connection_file, writable = self._connection_file(target.network)
        return KernelContainer(
            image=target.image,
            env_name=target.env_name,
            variant=target.variant,
            kernel_id=self.kernel_id or "unknown",
            owner=owner_id(),
            argv=[*cmd, *kernel_banner_args(cmd, target.notices)],
            environment={
                **kernel_environment(
                    env, kernelspec_env=self.kernel_spec.env or {}, image_env=target.image_env, secret=key, user=user
                ),
                **({"DOCKYARD_GPU_NOTICE": " | ".join(target.notices)} if target.notices else {}),
            },
            workspace=workspace_mount(cwd, target.workspace_root),
            cwd=cwd,
            connection_file=connection_file,
            ports=tuple(int(self.connection_info[p]) for p in PORT_NAMES),  # type: ignore[literal-required]
            network=target.network,
            uid=os.getuid(),
            gid=os.getgid(),
            shm_size=target.shm_size,
            memory=target.memory,
            cpus=target.cpus,
            device_requests=target.device_requests,
            connection_file_writable=writable,
        )

    def _connection_file(self, network: str) -> tuple[Path, bool]:
        """The host file to mount at CONNECTION_FILE, and whether the kernel may write it.

        Normally the KernelManager's own file, read-only. A private copy (mode 600, next to it) when
        the kernel needs different content or write access: in bridge mode it must bind 0.0.0.0 *inside*
        its network namespace (the host side stays 127.0.0.1); with CurveZMQ keys ipykernel (7.4)
        rewrites its connection file at start (it compares str keys from the file with bytes), which
        fails on a read-only mount.
        """
        assert self.parent is not None
        original = Path(os.path.realpath(self.parent.connection_file))
        curve = self.parent.curve_publickey is not None
        if network != "bridge" and not curve:
            return original, False
        info = json.loads(original.read_text())
        if network == "bridge":
            info["ip"] = "0.0.0.0"
        path = original.with_name(f"{original.stem}-dockyard.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        self._private_file = path
        return path, curve

    def _create_and_start(self, kc: KernelContainer) -> None:
        caps = capabilities.detect(self.docker_client)
        if dropped := caps.unapplied_limits(kc.memory, kc.cpus):
            # The engine would accept and ignore them: say so rather than let the user believe they hold.
            self.log.warning(
                "dockyard: kernel %s runs without its %s: %s",
                self.kernel_id,
                " and ".join(dropped),
                caps.limits_reason(),
            )
        kwargs = create_kwargs(kc, caps)
        try:
            created = engine.create_container(self.docker_client, **kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # A container of the same name: a leftover of this very kernel (e.g. an interrupted restart).
            old = self.docker_client.containers.get(kc.name)
            if old.labels.get(LABEL_KERNEL_ID) != kc.kernel_id:
                raise
            old.remove(force=True)
            created = engine.create_container(self.docker_client, **kwargs)
        self.container_id = str(created.id)  # at once, so a failed start still removes it
        try:
            created.start()
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if _PORT_IN_USE.lower() in text.lower() or "port is already allocated" in text:  # bridge: publishing
                raise PortTakenError(
                    f"Another process took one of the kernel's ports before container {kc.name} could publish it",
                    fix=f"start the kernel again (the engine said: {text})",
                ) from None
            raise

    def _port_taken(self, log_tail: str) -> PortTakenError:
        return PortTakenError(
            f"Another process took one of the kernel's ports before the kernel in container {self.container_name} "
            "could bind it",
            fix=f"start the kernel again{log_tail}",
        )

    async def _wait_until_ready(self) -> None:
        """Wait for the kernel's heartbeat; if the container dies or hangs, fail with its log."""
        assert self.parent is not None
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        if self.parent.curve_publickey is not None:  # same keys the KernelManager's own sockets use
            sock.curve_secretkey = self.parent.curve_secretkey
            sock.curve_publickey = self.parent.curve_publickey
            sock.curve_serverkey = self.parent.curve_publickey
        sock.connect(f"tcp://{self.connection_info['ip']}:{self.connection_info['hb_port']}")
        deadline = time.monotonic() + float(self.startup_timeout)
        try:
            await sock.send(b"dockyard-ready?")
            while not await sock.poll(200):
                state, code = await asyncio.to_thread(self._state)
                if state != "running":
                    what = "was removed" if state == "missing" else f"exited with code {code}"
                    tail = self._log_tail()
                    if _PORT_IN_USE in tail:
                        raise self._port_taken(tail)
                    raise DockyardError(
                        f"The kernel container {self.container_name} ({self._describe()}) {what} before the kernel "
                        "was ready",
                        fix="fix the cause shown in the container's log below (e.g. a package that fails to import), "
                        f"rebuild with 'dockyard build', then start the kernel again{tail}",
                    )
                if time.monotonic() > deadline:
                    tail = self._log_tail()
                    if _PORT_IN_USE in tail:  # ipykernel can log the failed bind and hang instead of exiting
                        raise self._port_taken(tail)
                    raise DockyardError(
                        f"The kernel in container {self.container_name} ({self._describe()}) did not answer within "
                        f"{self.startup_timeout:.0f} s",
                        fix="check the container's log below; if the image is just slow to start, raise "
                        "'startup_timeout' "
                        f"in the kernelspec's provisioner config{tail}",
                    )
            await sock.recv()
        finally:
            sock.close()
            ctx.term()

    def _describe(self) -> str:
        t = self._target
        return f"{t.ref}, image {t.image}" if t else "dockyard kernel"

    def _log_tail(self) -> str:
        if self.container_id is None:
            return ""
        try:
            text = self.docker_client.api.logs(self.container_id, tail=_LOG_TAIL).decode("utf-8", "replace").rstrip()
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return ""
        return f"\n--- last lines of the container's log ---\n{text or '(empty)'}\n---"

    # --- lifecycle -------------------------------------------------------------------------

    def _state(self) -> tuple[str, int | None]:
        """('running'|'exited'|'missing'|'unknown', exit code)."""
        try:
            attrs = self.docker_client.api.inspect_container(self.container_id)
        except docker.errors.NotFound:
            return "missing", -1
        except (docker.errors.DockerException, requests.exceptions.RequestException, EngineError) as exc:
            self.log.warning("dockyard: cannot inspect kernel container %s: %s", self.container_name, exc)
            return "unknown", None
        st = attrs.get("State") or {}
        if st.get("Status") in ("created", "running", "paused", "restarting"):
            return "running", None
        return "exited", int(st.get("ExitCode", -1))

    async def poll(self) -> int | None:
        if self.container_id is None:
            return 0
        state, code = await asyncio.to_thread(self._state)
        if state in ("running", "unknown"):
            return None  # an engine hiccup is not a dead kernel: the restarter would start a storm
        return code

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
        await asyncio.to_thread(self._kill, int(signum))

    def _kill(self, signum: int) -> None:
        # docker kill → docker-init (PID 1) → the kernel's process group (TINI_KILL_PROCESS_GROUP, see
        # container.create_kwargs), so a cell's child processes get it too; SIGKILL ends the whole container.
        group_by_exec = signum == signal.SIGINT and not capabilities.detect(self.docker_client).init_signals_group
        if group_by_exec and self._signal_group(signum):
            return
        try:
            self.docker_client.api.kill(self.container_id, signal=signum)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if not capabilities.not_running(exc):  # Docker: 409, Podman: 500 "container state improper"
                raise

    def _signal_group(self, signum: int) -> bool:
        """Signal the kernel's process group from inside the container (Podman's catatonit forwards a signal to
        the kernel alone, so an os.system('sleep 20') cell would run on); False if that could not be done."""
        try:
            exec_id = self.docker_client.api.exec_create(self.container_id, [*GROUP_SIGNAL_ARGV, str(signum)])
            self.docker_client.api.exec_start(exec_id)
            return int(self.docker_client.api.exec_inspect(exec_id).get("ExitCode") or 0) == 0
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            self.log.warning("dockyard: kernel %s: signalling its process group failed (%s)", self.kernel_id, exc)
            return False

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        await self._remove_container()
        await super().cleanup(restart=restart)  # returns cached ports unless restarting

    async def _remove_container(self) -> None:
        cid, self.container_id = self.container_id, None
        self._drop_private_file()
        if cid is not None:
            await asyncio.to_thread(self._remove, cid)
        if self._pool_dir is not None:
            remove_run_dir(self._pool_dir)
            self._pool_dir = None

    def _remove(self, cid: str) -> None:
        try:
            self.docker_client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise

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


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or "dockyard-user"


def _engine_call(fn: Callable[..., T], *args: Any) -> T:
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


__all__ = ["CONNECTION_FILE", "DockerProvisioner"]
