"""The Jupyter server extension: the panel's REST API under {base_url}/dockyard/api/.

Jupyter's own rules apply: every handler is an APIHandler behind @web.authenticated (token or login
cookie) and @authorized (the server's authorizer, e.g. JupyterHub's), and POSTs need the XSRF token
unless token-authenticated. Engine and spec work runs in worker threads, so the server stays responsive.

    GET  /dockyard/api/environments            every variant: spec summary, kernel, image, GPU, problems
    GET  /dockyard/api/environments/ENV:VAR    one of them (404 with the message for an unknown one)
    GET  /dockyard/api/builds                  builds of this server's lifetime
    POST /dockyard/api/builds  {"ref": "ENV:VAR", "rebuild": false, "pull": false}   → 202 (or 200: already running);
                                               "pull": pull from the registry instead of building (registry_pull.py)
                                   + "tag": "dockyard/ENV:VAR-HASH": only if that is what it builds (else 409)
    GET  /dockyard/api/builds/ID               one build's state and events
    GET  /dockyard/api/builds/ID/events?after=N   server-sent events, from event N on, until the build ends
    GET  /dockyard/api/registry/ENV:VAR        does the registry hold its content tag (registry_pull.py)
    GET  /dockyard/api/kernels                 this server's kernel containers: CPU, memory/limit, PIDs, GPU, notebook
    GET  /dockyard/api/gpus                    the engine's GPUs and their leases (gpus.py)
    GET  /dockyard/api/provenance?path=NB      a notebook's stamp against this machine (provenance_api.py)
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ... import engine
from ...config import CullOptions, load_settings
from ...errors import DockyardError
from ...kernel import culling, figures, shutdown_guard
from ...kernel.collector import Collector, Sampler
from ...kernel.reaper import owner_id
from ...provenance import save_hook
from . import environments, kernels, provenance_api
from .builds import BuildJob, Builds
from .gpus import GpusHandler
from .registry_pull import RegistryHandler

AUTH_RESOURCE = "dockyard"
KEEPALIVE_SECONDS = 15.0
_REF = r"[^/]+"


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def builds(self) -> Builds:
        builds: Builds = self.settings["dockyard_builds"]
        return builds

    def fail(self, status: int, message: str) -> web.HTTPError:
        """A 4xx answer people can act on: APIHandler.write_error sends {"message": one paragraph}."""
        return web.HTTPError(status, message.replace("%", "%%"))

    def installed_kernels(self) -> set[str] | None:
        try:
            return set(self.kernel_spec_manager.find_kernel_specs())
        except Exception:  # a broken kernelspec dir must not hide the environments
            return None


class EnvironmentsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, ref: str | None = None) -> None:
        kernels, running = self.installed_kernels(), self.builds.running()
        try:
            answer = await asyncio.to_thread(environments.snapshot, kernels, running, ref)
        except DockyardError as exc:  # only for one named ref: no such environment or variant
            raise self.fail(404, exc.text) from None
        if ref is not None:
            answer = {**answer, "environment": answer.pop("environments")[0]}
        self.finish(json.dumps(answer))


class BuildsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps({"builds": [job.summary() for job in self.builds.all()]}))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise self.fail(400, f'The request body is not JSON ({exc}). Fix: send {{"ref": "ENV:VARIANT"}}.') from None
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"].strip():
            raise self.fail(400, 'The request needs a JSON object with "ref", e.g. {"ref": "pytorch:cpu"}.')
        unknown = sorted(set(body) - {"ref", "rebuild", "pull", "tag"})
        if unknown:
            raise self.fail(
                400, f'Unknown field(s) {", ".join(unknown)}. Fix: send only "ref", "rebuild", "pull" and "tag".'
            )
        rebuild, pull = body.get("rebuild", False), body.get("pull", False)
        for name, value in (("rebuild", rebuild), ("pull", pull)):
            if not isinstance(value, bool):
                raise self.fail(400, f'"{name}" must be true or false, not {value!r}.')
        try:
            if isinstance(body.get("tag"), str):  # a stamp's exact tag (provenance): refuse to make another
                why_not = await asyncio.to_thread(provenance_api.check_exact, body["ref"].strip(), body["tag"])
                if why_not:
                    raise self.fail(409, why_not)
            job, created = self.builds.start(body["ref"].strip(), rebuild=rebuild, pull=pull)
        except DockyardError as exc:
            raise self.fail(404, exc.text) from None
        self.set_status(202 if created else 200)
        events = url_path_join(self.base_url, "dockyard/api/builds", job.id, "events")
        self.finish(json.dumps({**job.summary(), "events_url": events}))


class BuildHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        job = self._job(job_id)
        self.finish(json.dumps({**job.summary(), "log": job.events_after(0)}))

    def _job(self, job_id: str) -> BuildJob:
        job = self.builds.get(job_id)
        if job is None:
            raise self.fail(404, f"No build with id '{job_id}' on this server (builds are kept until it restarts).")
        return job


class BuildEventsHandler(BuildHandler):
    """Server-sent events: `id: SEQ`, `event: TYPE`, `data: JSON`; the stream ends after the last event."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        after = self.get_argument("after", None) or self.request.headers.get("Last-Event-ID")
        try:
            seq = int(after) + 1 if after is not None else 0
        except ValueError:
            raise self.fail(400, f"'after' must be an event number, not {after!r}.") from None
        job = self._job(job_id)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # no proxy buffering: progress must arrive live
        try:
            while True:
                changed = job.changed  # taken before reading, so no event can slip between read and wait
                events = job.events_after(seq)
                for event in events:
                    self.write(f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n")
                seq += len(events)
                await self.flush()
                if job.state != "running" and not job.events_after(seq):
                    break
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    self.write(": keepalive\n\n")
        except StreamClosedError:
            return  # the follower went away; the build goes on
        self.finish(set_content_type="text/event-stream")


class KernelsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        collector = self._collector()
        if collector is None:
            self.finish(json.dumps({"kernels": [], "error": self.settings["dockyard_engine_error"]}))
            return
        rows = await collector.latest()
        sessions = await self.session_manager.list_sessions()  # type: ignore[no-untyped-call]
        notebooks = {s["kernel"]["id"]: s.get("path") or s.get("name") or "" for s in sessions if s.get("kernel")}
        km = self.kernel_manager
        models: dict[str, dict[str, Any]] = {}
        for kid in km.list_kernel_ids():
            k = km.get_kernel(kid)
            models[kid] = {
                "execution_state": getattr(k, "execution_state", ""),
                "last_activity": getattr(k, "last_activity", None),
                "connections": km._kernel_connections.get(kid, 0),
            }
        cull: CullOptions | None = self.settings.get("dockyard_cull")
        if cull is not None:
            now = datetime.datetime.now(datetime.timezone.utc)
            for row in rows:
                m = models.get(row.kernel_id)
                if m is not None:
                    m["cull_in"] = culling.cull_in(
                        cull,
                        holds_gpu=figures.holds_gpu_memory(row.figures.gpu),
                        busy=m["execution_state"] == "busy",
                        connections=m["connections"],
                        last_activity=m["last_activity"],
                        now=now,
                    )
        answer = kernels.table(rows, notebooks, models, taken_at=collector.taken_at, interval=collector.interval)
        self.finish(json.dumps(answer))

    def _collector(self) -> Collector | None:
        return collector_of(self.settings)


def collector_of(settings: dict[str, Any]) -> Collector | None:
    """The server's one collector, made on first use (the engine may come up after the server)."""
    collector: Collector | None = settings.get("dockyard_collector")
    if collector is None:
        try:
            collector = Collector(Sampler(engine.client()), owner_id())
        except DockyardError as exc:
            settings["dockyard_engine_error"] = exc.text
            return None
        settings["dockyard_collector"] = collector
    return collector


def _start_culling(serverapp: ServerApp) -> None:
    """Jupyter's culler with dockyard's timeouts (kernel/culling.py); GPU holding is read by the collector."""
    try:
        cull = load_settings().kernels.cull
    except DockyardError as exc:  # a bad setting must not stop the server; it says which and how to fix it
        serverapp.log.error("dockyard: idle kernels are not culled: %s", exc.text)
        return
    settings = serverapp.web_app.settings

    async def holds_gpu(kernel_id: str) -> bool:
        collector = collector_of(settings)
        rows = await collector.latest() if collector is not None else []
        return any(r.kernel_id == kernel_id and figures.holds_gpu_memory(r.figures.gpu) for r in rows)

    settings["dockyard_cull"] = cull
    culling.install(serverapp.kernel_manager, cull, holds_gpu, serverapp.log)


class NotFoundHandler(_Base):
    @web.authenticated
    async def get(self, path: str) -> None:
        raise self.fail(
            404, f"dockyard's API has no '/dockyard/api/{path}'. It serves environments, builds, kernels and gpus."
        )

    post = get


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    web_app = serverapp.web_app
    web_app.settings["dockyard_builds"] = Builds()
    api = url_path_join(web_app.settings["base_url"], "dockyard", "api")
    handlers: list[tuple[str, type[APIHandler]]] = [
        (url_path_join(api, "environments"), EnvironmentsHandler),
        (url_path_join(api, "environments", f"({_REF})"), EnvironmentsHandler),
        (url_path_join(api, "builds"), BuildsHandler),
        (url_path_join(api, "builds", r"(\w+)"), BuildHandler),
        (url_path_join(api, "builds", r"(\w+)", "events"), BuildEventsHandler),
        (url_path_join(api, "kernels"), KernelsHandler),
        (url_path_join(api, "gpus"), GpusHandler),
        (url_path_join(api, "registry", f"({_REF})"), RegistryHandler),
        *provenance_api.handlers(api),
        (url_path_join(api, "(.*)"), NotFoundHandler),
    ]
    web_app.add_handlers(".*$", handlers)  # type: ignore[no-untyped-call]
    serverapp.log.info("dockyard panel API at %s", api)
    shutdown_guard.install(serverapp.kernel_manager, serverapp.log)
    _start_culling(serverapp)
    save_hook.install(serverapp)  # notebooks saved through this server get their environment's stamp
