"""kernel/shutdown_guard.py: a kernel's shutdown waits for its restart in flight (no engine, no server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dockyard.kernel import shutdown_guard


class _Kernel:
    def __init__(self, ready: asyncio.Future | None) -> None:
        self._ready = ready


class _MKM:
    def __init__(self, kernels: dict) -> None:
        self._kernels = kernels
        self.calls: list[tuple[str, float, bool]] = []

    async def _async_shutdown_kernel(self, kernel_id: str, now: bool = False, restart: bool = False) -> None:
        ready = self._kernels[kernel_id]._ready
        # jupyter_client's own check: raises InvalidStateError on an unfinished future
        self.calls.append((kernel_id, asyncio.get_running_loop().time(), bool(ready and ready.exception())))


def test_shutdown_waits_for_the_restart_then_runs_the_original():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        restarting = loop.create_future()
        mkm = _MKM({"k": _Kernel(restarting), "done": _Kernel(None)})
        shutdown_guard.install(mkm, logging.getLogger("t"))
        loop.call_later(0.3, restarting.set_result, None)
        start = loop.time()
        await mkm.shutdown_kernel("done")  # nothing in flight: at once
        await asyncio.gather(mkm._async_shutdown_kernel("k"))  # what shutdown_all calls
        [(_, t_done, _), (_, t_k, failed)] = mkm.calls
        assert t_done - start < 0.1
        assert t_k - start >= 0.29
        assert not failed

    asyncio.run(scenario())


def test_a_restart_that_never_ends_or_fails_delays_the_shutdown_only_by_the_wait():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stuck, failed = loop.create_future(), loop.create_future()
        mkm = _MKM({"stuck": _Kernel(stuck), "failed": _Kernel(failed)})
        shutdown_guard.install(mkm, logging.getLogger("t"), wait=0.2)
        loop.call_later(0.05, failed.set_exception, RuntimeError("the container did not start"))
        start = loop.time()
        await mkm.shutdown_kernel("failed")
        assert mkm.calls[-1][2] is True  # the original saw the failure and handles it
        t0 = loop.time()
        with contextlib.suppress(asyncio.InvalidStateError):  # jupyter_client's own error, now only after the wait
            await mkm.shutdown_kernel("stuck")
        assert loop.time() - t0 >= 0.19
        assert loop.time() - start < 2

    asyncio.run(scenario())
