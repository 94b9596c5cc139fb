"""The panel's "pull instead of build": does the configured registry hold an environment's content tag, and a build
job that pulls it (labels checked, registry/transfer.py) instead of building, or before building when
registry.pull_first is set.

    GET /dockyard/api/registry/ENV:VAR   {"registry": HOST | null, "remote": NAME | null, "has_tag": true|false|null}
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import docker
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ... import engine, specs
from ...config import RegistryOptions, load_settings
from ...errors import DockyardError
from ...images.plan import BuildPlan, make_plan
from ...registry import transfer
from ...registry.naming import remote_names


class Job(Protocol):
    def output(self, line: str) -> None: ...


def pull_instead(
    job: Job, client: docker.DockerClient, plan: BuildPlan, registry: RegistryOptions, *, asked: bool
) -> bool:
    """asked (the Pull button): pull or raise (no build behind the user's back). Else with registry.pull_first: True
    when the registry gave the image; False, with the reason in the job's output, when the job must build."""
    if asked:
        done = transfer.pull(client, plan, registry, job.output)
        job.output(
            f"pulled {plan.tag} from {done.names.tag} (labels checked), no build" if done.moved else "up to date"
        )
        return True
    return registry.pull_first and transfer.pull_first(client, plan, registry, job.output)


def registry_state(ref: str) -> dict[str, Any]:
    spec, variant = specs.resolve(ref)  # an unknown environment is a 404 with or without a registry
    settings = load_settings()
    registry = settings.registry
    if not registry.host:
        return {"registry": None, "remote": None, "has_tag": None}
    plan = make_plan(spec, variant, settings.build)
    return {
        "registry": registry.host,
        "remote": remote_names(registry, plan).tag,
        "has_tag": transfer.has_tag(engine.client(timeout=30), plan, registry),
    }


class RegistryHandler(APIHandler):
    auth_resource = "dockyard"

    @web.authenticated
    @authorized
    async def get(self, ref: str) -> None:
        try:
            answer = await asyncio.to_thread(registry_state, ref)
        except DockyardError as exc:
            raise web.HTTPError(404, exc.text.replace("%", "%%")) from None
        self.finish(json.dumps(answer))
