"""The panel's provenance API: a notebook's stamp against this machine, and the check that a build from
the panel makes exactly the stamp's tag.

    GET /dockyard/api/provenance?path=NOTEBOOK    → provenance/drift.py's answer (matches, drifted, missing),
        or {"state": "unstamped"}; NOTEBOOK is the contents API path or the absolute path the kernel sees
        (JPY_SESSION_NAME)
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from ... import engine
from ...config import load_settings
from ...errors import DockyardError
from ...images.plan import make_plan
from ...provenance import drift
from ...provenance.stamp import Stamp, read


class ProvenanceHandler(APIHandler):
    auth_resource = "dockyard"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.api_path(self.get_argument("path", ""))
        try:
            model = await ensure_async(self.contents_manager.get(path, content=True, type="notebook"))  # type: ignore[no-untyped-call]
        except web.HTTPError as exc:
            raise web.HTTPError(404, f"No notebook at {path!r} ({exc.log_message})".replace("%", "%%")) from None
        try:
            stamp = read(model["content"])
        except ValueError as exc:
            self.finish(json.dumps({"path": path, "state": "invalid", "message": f"The stamp is malformed: {exc}"}))
            return
        if stamp is None:
            message = "No dockyard stamp yet: run the notebook in a dockyard kernel and save it."
            self.finish(json.dumps({"path": path, "state": "unstamped", "message": message}))
            return
        answer = await asyncio.to_thread(assess, stamp)
        self.finish(json.dumps({"path": path, **answer}))

    def api_path(self, raw: str) -> str:
        """The contents API path of raw, which may be the absolute path a kernel knows its notebook by."""
        if not raw:
            raise web.HTTPError(400, "Name the notebook: ?path=NOTEBOOK (its path under the server's root).")
        root = os.path.realpath(self.contents_manager.root_dir)
        if os.path.isabs(raw):
            real = os.path.realpath(raw)
            if os.path.commonpath([root, real]) != root:
                raise web.HTTPError(404, "That notebook is outside this server's root directory.")
            return os.path.relpath(real, root).replace(os.sep, "/")
        return raw.strip("/")


def assess(stamp: Stamp) -> dict[str, Any]:
    try:
        client = engine.client()
    except DockyardError:
        client = None  # without the engine "matches" cannot be told; missing/drifted still can
    return drift.assess(stamp, client, load_settings().build).to_json()


def check_exact(ref: str, tag: str) -> str | None:
    """None when building ref here gives tag; else why not (one paragraph for a 409)."""
    from ... import specs

    spec, variant = specs.resolve(ref)
    plan = make_plan(spec, variant, load_settings().build)
    if plan.tag == tag:
        return None
    return (
        f"Building {ref} here gives {plan.tag}, not {tag}: this checkout's spec, lock or site settings differ from "
        "the ones that made it. Fix: build it in a checkout at the commit that holds its lock (the panel names it)."
    )


def handlers(api: str) -> list[tuple[str, type[APIHandler]]]:
    from jupyter_server.utils import url_path_join

    return [(url_path_join(api, "provenance"), ProvenanceHandler)]
