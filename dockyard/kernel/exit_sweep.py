"""When a process that started kernel containers exits, remove every one it still owns (kernels, pooled).

Jupyter's own shutdown (SIGTERM, Ctrl-C twice at a terminal) shuts kernels down and this finds nothing left.
It is the net for the exits that skip that shutdown and used to leave containers to `dockyard kernels gc`:
- SIGINT when stdin is no terminal (a server started in the background, under a supervisor, in a pipe):
  jupyter_server installs its Ctrl-C handler only for a terminal, so KeyboardInterrupt ends the event loop
  without shutting any kernel down;
- a second SIGINT (or a SIGTERM) arriving while the exit handlers run: it interrupted the pool's drain.
So the sweep runs with SIGINT and SIGTERM held off (noted and ignored until it is done, a few seconds), and
first stops the pool keeper so that nothing new is created behind it. SIGKILL stays the reaper's job.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import docker.errors
import requests

from .. import engine
from ..errors import DockyardError
from .reaper import owner_id, remove_owned

log = logging.getLogger(__name__)
_lock = threading.Lock()
_registered = False
_before: list[Callable[[], object]] = []  # run first: stop whatever would create containers (the pool keeper)
_HELD = (signal.SIGINT, signal.SIGTERM)


def register(before: Callable[[], object] | None = None) -> None:
    """Make sure this process sweeps at exit (idempotent); `before` runs first (e.g. stop filling the pool)."""
    global _registered
    with _lock:
        if before is not None:
            _before.append(before)
        if not _registered:
            atexit.register(sweep)
            _registered = True


def sweep() -> list[str]:
    """Stop the `before` callables, then remove this process's containers and wait until they are gone."""
    with _signals_held():
        for stop in reversed(_before):
            try:
                stop()
            except Exception as exc:  # an exit handler must not end the sweep
                log.warning("dockyard: at exit: %s", exc)
        _before.clear()
        with contextlib.suppress(DockyardError, docker.errors.DockerException, requests.exceptions.RequestException):
            removed = remove_owned(engine.client(timeout=10), owner_id())
            if removed:
                log.info("dockyard: removed %d container(s) of this process at exit: %s", len(removed), removed)
            return removed
    return []


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM are noted, not acted on, for the duration (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: FrameType | None) -> None:
        log.warning("dockyard: removing this process's containers first (signal %d ignored)", signum)

    saved = {s: signal.signal(s, note) for s in _HELD}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


__all__ = ["register", "sweep"]
