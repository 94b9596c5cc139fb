"""Keeps the warm pool topped up, in a background thread of the process that starts kernels (Jupyter server).

Policy (docs/pool.md): after a kernel starts, keep `kernels.pool.size` ready containers for kernels like
it (same environment, workspace mount, user, limits); within `max_containers` and `max_memory` for all of
this process's pooled containers, the environments used longest ago give way to the newest. Nothing here
ever runs on a kernel start's path: want() only records and wakes the thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import docker
import requests
from docker.utils import parse_bytes

from ... import engine
from ...config import PoolOptions
from .. import exit_sweep
from ..container import KernelContainer
from ..reaper import owner_id
from . import pooled as pool

log = logging.getLogger(__name__)
_SETTLE = 1.0  # seconds after a kernel start before filling: the new kernel gets the CPU first


@dataclass
class _Want:
    cold: KernelContainer
    modules: tuple[str, ...]
    options: PoolOptions


class PoolKeeper:
    """One per process (instance()); its pooled containers carry this process as owner."""

    _instance: PoolKeeper | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self.owner = owner_id()
        self._wanted: OrderedDict[str, _Want] = OrderedDict()  # pool key → what to fill, most recent last
        self._memory: dict[str, int] = {}  # pool key → idle bytes last measured
        self._lock = threading.Lock()
        self._fill_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: docker.DockerClient | None = None
        self._closed = False
        self.last_error: str | None = None

    @classmethod
    def instance(cls) -> PoolKeeper:
        with cls._instance_lock:
            if cls._instance is None:
                keeper = cls._instance = cls()
                exit_sweep.register(lambda: keeper.close(join_timeout=10.0))  # stop filling before the sweep
            return cls._instance

    def want(self, cold: KernelContainer, modules: tuple[str, ...], options: PoolOptions) -> None:
        """A kernel like `cold` just started: keep its pool filled (in the background)."""
        if self._closed or options.size <= 0 or options.max_containers <= 0 or pool.template(cold) is None:
            return
        key = pool.pool_key(cold)
        with self._lock:
            self._wanted[key] = _Want(cold, modules, options)
            self._wanted.move_to_end(key)
            while len(self._wanted) > max(options.max_containers, 1):  # "used recently": as many as may be warm
                self._wanted.popitem(last=False)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dockyard-pool-keeper", daemon=True)
                self._thread.start()
        self._wake.set()

    def status(self) -> dict[str, object]:
        """What the keeper wants, for the panel and the CLI."""
        with self._lock:
            wanted = [
                {"ref": f"{w.cold.env_name}:{w.cold.variant}", "workspace": w.cold.workspace.as_posix(), "key": k}
                for k, w in reversed(self._wanted.items())
            ]
        return {"owner": self.owner, "wanted": wanted, "last_error": self.last_error}

    @property
    def closed(self) -> bool:
        return self._closed  # a property: mypy would narrow a plain attribute across the thread's loop

    def _cancelled(self) -> bool:
        return self._closed  # a call: mypy narrows even properties within one loop

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.client()
        return self._client

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=60)  # also wakes now and then to replace containers that died
            self._wake.clear()
            time.sleep(_SETTLE)
            if self.closed:
                return
            try:
                self.top_up()
                self.last_error = None
            except Exception as exc:  # the pool is an optimisation: log, never break the server
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("dockyard: could not fill the kernel pool: %s", self.last_error)

    def mine(self) -> list[pool.Pooled]:
        return [p for p in pool.listing(self.client) if p.owner == self.owner and p.state in ("starting", "ready")]

    def top_up(self) -> list[pool.Pooled]:
        """Fill every wanted pool to its size within the caps (blocking; the thread calls it). Returns the new ones."""
        with self._fill_lock:  # one filler at a time: the thread, or fill_for
            return self._top_up()

    def _top_up(self) -> list[pool.Pooled]:
        made: list[pool.Pooled] = []
        with self._lock:
            wanted = list(reversed(self._wanted.items()))  # most recent first
        for key, want in wanted:
            if self.closed:
                break
            while sum(p.key == key for p in self.mine()) < want.options.size:
                if self._cancelled():  # closing: create nothing the exit sweep could miss
                    return made
                if not self._room_for(key, want.options):
                    return made
                pooled = pool.fill(self.client, want.cold, want.modules, self.owner)
                if not pool.wait_ready(self.client, pooled, cancelled=lambda: self.closed):
                    if not self.closed:
                        self.last_error = f"a pooled {pooled.ref} container did not get ready (see 'docker logs')"
                    break  # do not retry a broken environment in a loop; the next kernel start tries again
                made.append(pooled)
                if (used := pool.idle_memory(self.client, pooled.id)) is not None:
                    self._memory[key] = used
        return made

    def _room_for(self, key: str, options: PoolOptions) -> bool:
        """Whether one more container for key fits the caps, making room from the least recent pools."""
        limit = parse_bytes(options.max_memory)  # the config schema admits only what it reads
        while True:
            mine = self.mine()
            used = sum(self._memory.get(p.key, 0) for p in mine)
            if len(mine) < options.max_containers and used + self._memory.get(key, 0) <= limit:
                return True
            with self._lock:
                order = list(self._wanted)  # least recent first
            victims = [p for k in order if k != key for p in mine if p.key == k]
            if not victims or order.index(victims[0].key) > order.index(key):
                return False  # only more recent pools hold containers: this one waits
            if not pool.drain(self.client, _by_id(victims[0].id)):
                return False

    def close(self, join_timeout: float = 60.0) -> list[str]:
        """Stop filling (a container still starting is removed) and drain; the next instance() is a fresh keeper."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout)
        with PoolKeeper._instance_lock:
            if PoolKeeper._instance is self:
                PoolKeeper._instance = None
        return self.drain()

    def drain(self) -> list[str]:
        """Remove this process's unclaimed pooled containers (at exit, and `dockyard kernels pool drain`)."""
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            return pool.drain(self.client, lambda p: p.owner == self.owner)
        return []


def _by_id(cid: str) -> Callable[[pool.Pooled], bool]:
    return lambda p: p.id == cid


__all__ = ["PoolKeeper"]
