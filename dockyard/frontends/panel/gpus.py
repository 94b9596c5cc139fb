"""GET /dockyard/api/gpus: the devices the engine can give kernels, who holds each lease, and the GPU memory
this server's kernels use (from the resource collector). Every user of the engine is listed, as in `dockyard gpus`:
a lease says who holds a shared card, which is what a colleague waiting for one needs to know."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import docker
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ... import engine, gpu
from ...errors import DockyardError
from ...gpu import ledger
from ...gpu.listing import overview


def answer(client: docker.DockerClient, memory_used: dict[str, int | None]) -> dict[str, Any]:
    """The endpoint's JSON (in a worker thread: it asks the engine)."""
    verdict = gpu.assess(client, client.info())  # cached; a probe only when none is
    return {
        "usable": verdict.usable,
        "reason": verdict.reason,
        "devices": overview(verdict.devices, ledger.describe_all(client), memory_used),
        "queue": ledger.queue_length(client),
    }


class GpusHandler(APIHandler):
    auth_resource = "dockyard"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from .server import collector_of  # server.py imports this module for its routes

        collector = collector_of(self.settings)
        rows = await collector.latest() if collector is not None else []
        memory = {r.kernel_id: (r.figures.gpu.memory_used if r.figures.gpu else None) for r in rows}
        try:
            body = await asyncio.to_thread(answer, engine.client(), memory)
        except DockyardError as exc:
            body = {"usable": False, "reason": exc.text, "devices": [], "queue": 0}
        self.finish(json.dumps(body))
