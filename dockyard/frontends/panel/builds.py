"""Image builds started from the panel: each in its own thread (a pytorch build takes minutes and must
not block Jupyter's event loop), its progress kept as an ordered list of events that any number of
followers read from any position (a page reload resumes where it was)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from typing import Any

from ... import engine, specs
from ...config import load_settings
from ...errors import BuildError, DockyardError
from ...images.build import build
from ...images.plan import make_plan
from .registry_pull import pull_instead

log = logging.getLogger(__name__)

# A pip-heavy build prints thousands of lines; followers need the steps and the recent output, not all of it
# (the full log stays in the build's log file).
MAX_OUTPUT_EVENTS = 2000


class BuildJob:
    """One build: state, events, and a wake-up for followers waiting on the server's event loop."""

    def __init__(self, ref: str, loop: asyncio.AbstractEventLoop, rebuild: bool, pull: bool = False) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.ref = ref
        self.rebuild = rebuild
        self.pull = pull  # "pull instead of build" (registry_pull.py)
        self.state = "running"  # running → succeeded | failed
        self.started = time.time()
        self.events: list[dict[str, Any]] = []
        self._outputs = 0
        self._loop = loop
        self._lock = threading.Lock()
        self.changed = asyncio.Event()  # replaced after every wake-up; only touched on the loop's thread

    # --- the Reporter protocol (images/build.py), called from the build thread
    def step(self, number: int, total: int, text: str) -> None:
        self._add({"type": "step", "number": number, "total": total, "text": text})

    def output(self, line: str) -> None:
        self._outputs += 1
        if self._outputs <= MAX_OUTPUT_EVENTS:
            self._add({"type": "output", "line": line})

    # ---
    def run(self) -> None:
        try:
            spec, variant = specs.resolve(self.ref)
            settings = load_settings()
            client = engine.client(timeout=600)
            plan = make_plan(spec, variant, settings.build)
            self._add({"type": "start", "tag": plan.tag})
            if not self.rebuild and pull_instead(self, client, plan, settings.registry, asked=self.pull):
                self._offer_kernel(spec, variant)
                self._finish("succeeded", {"type": "succeeded", "tag": plan.tag, "built": False, "pulled": True})
                return
            result = build(client, plan, settings.build, self, rebuild=self.rebuild)
            self._offer_kernel(spec, variant)
        except DockyardError as exc:
            step = self._last_step()
            self._finish(
                "failed",
                {"type": "failed", "message": exc.text, "step": step, "build_error": isinstance(exc, BuildError)},
            )
        except Exception as exc:  # a bug, not a user problem: still end the build visibly
            log.exception("dockyard panel: build of %s crashed", self.ref)
            self._finish(
                "failed", {"type": "failed", "message": f"Unexpected error: {exc!r}", "step": self._last_step()}
            )
        else:
            done = {"type": "succeeded", "tag": result.tag, "built": result.built, "seconds": round(result.seconds, 2)}
            self._finish("succeeded", done)

    def _offer_kernel(self, spec: specs.Spec, variant: specs.Variant) -> None:
        """As `dockyard build` does: the built variant's kernelspec joins the kernel dirs that hold dockyard
        kernels (this server's own settings name the image, so it is the one just built)."""
        from ...kernel.install import add_built  # jupyter_client's KernelSpecManager, as the CLI uses it

        try:
            added = add_built([(spec, variant)])
        except DockyardError as exc:  # the image is built all the same; say why Switch may not offer it
            self.output(f"kernelspec not installed: {exc.text}")
            return
        for a in added or []:
            self.output(f"kernel {a.name}: {a.outcome} in {a.path.parent}")

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id,
                "ref": self.ref,
                "state": self.state,
                "started": self.started,
                "events": len(self.events),
            }

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.events[seq:]

    def _last_step(self) -> str | None:
        with self._lock:
            steps = [e["text"] for e in self.events if e["type"] == "step"]
        return steps[-1] if steps else None

    def _finish(self, state: str, event: dict[str, Any]) -> None:
        with self._lock:
            self.state = state  # set before the last event, so a follower that reads it can stop
        self._add(event)

    def _add(self, event: dict[str, Any]) -> None:
        with self._lock:
            event["seq"] = len(self.events)
            self.events.append(event)
        with contextlib.suppress(RuntimeError):  # the server stopped (its loop is closed): nobody to wake
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()


class Builds:
    """The server's builds: at most one running per environment variant."""

    def __init__(self) -> None:
        self._jobs: dict[str, BuildJob] = {}

    def start(self, ref: str, *, rebuild: bool = False, pull: bool = False) -> tuple[BuildJob, bool]:
        """A running build of ref if there is one (False), else a new one (True). Call on the event loop."""
        _, variant = specs.resolve(ref)  # a SpecError here is the caller's 4xx
        ref = variant.ref
        for job in self._jobs.values():
            if job.ref == ref and job.state == "running":
                return job, False
        job = BuildJob(ref, asyncio.get_running_loop(), rebuild, pull)
        self._jobs[job.id] = job
        threading.Thread(target=job.run, name=f"dockyard-build-{ref}", daemon=True).start()
        return job, True

    def get(self, job_id: str) -> BuildJob | None:
        return self._jobs.get(job_id)

    def all(self) -> list[BuildJob]:
        return list(self._jobs.values())

    def running(self) -> dict[str, str]:
        return {job.ref: job.id for job in self._jobs.values() if job.state == "running"}
