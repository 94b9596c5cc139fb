"""Runs INSIDE a pooled kernel container (the image's Python; standard library and ipykernel only).

usage: python /run/dockyard/pool_kernel.py MODULE... -- IPYKERNEL_ARGS...

Imports the environment's heavy modules, starts ipykernel on the pool's connection file, says 'ready',
then waits on the claim FIFO. A claim carries the notebook's working directory and the environment the
cold container would have had; they are applied before the claimer hands the connection to any client,
so the kernel then looks like one started cold in that directory (see docs/pool.md for what differs).
The pool module (kernel/pool/pooled.py) copies this file into the pooled container's run directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
from typing import Any

RUN_DIR = "/run/dockyard"


def _write(name: str, text: str) -> None:
    """Write RUN_DIR/name atomically: the host side polls for it."""
    tmp = f"{RUN_DIR}/.{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, f"{RUN_DIR}/{name}")


def _read_claim(fd: int) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:  # cannot happen while this process holds the FIFO open for writing too
            raise EOFError("the claim FIFO was closed")
        data += chunk
    claim: dict[str, Any] = json.loads(data)
    return claim


def _apply(claim: dict[str, Any], app: Any) -> None:
    """Become the claimer's kernel: its working directory and environment (the variables that differ from
    the pooled container's, so what ipykernel itself set at start-up stays, as in a cold kernel)."""
    cwd = claim["cwd"]
    os.chdir(cwd)
    for name in claim.get("unset", []):
        os.environ.pop(name, None)
    os.environ.update(claim.get("env", {}))
    shell = getattr(getattr(app, "kernel", None), "shell", None)
    if shell is not None:
        dh = shell.user_ns["_dh"]  # IPython's directory history starts at the kernel's start directory
        dh[:] = [type(dh[0])(cwd) if dh else cwd]  # (a pathlib.Path in IPython 9)


def _wait_for_claim(fd: int, app: Any) -> None:
    claim = _read_claim(fd)
    try:
        _apply(claim, app)
    except Exception as exc:  # the claimer sees the failure and removes this container
        _write("claimed", json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    _write("claimed", json.dumps({"pid": os.getpid()}))


def main() -> None:
    args = sys.argv[1:]
    sep = args.index("--")
    modules, kernel_args = args[:sep], args[sep + 1 :]
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken import fails again in the notebook, with the user's traceback
            print(f"dockyard pool: importing {module} failed: {exc}", file=sys.stderr)
    import runpy  # noqa: F401  (`python -m ipykernel_launcher` has it loaded: a cold kernel's sys.modules has it)

    from ipykernel.kernelapp import IPKernelApp

    # What `python -m ipykernel_launcher ARGS` would show the kernel: its argv and no script directory on sys.path.
    spec = importlib.util.find_spec("ipykernel_launcher")
    sys.argv = [spec.origin if spec and spec.origin else "ipykernel_launcher", *kernel_args]
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    # O_RDWR: the open never blocks and reads never see end-of-file while no claimer has the FIFO open.
    fd = os.open(f"{RUN_DIR}/claim", os.O_RDWR)
    app = IPKernelApp.instance()
    app.initialize(kernel_args)  # type: ignore[no-untyped-call]
    threading.Thread(target=_wait_for_claim, args=(fd, app), name="dockyard-pool-claim", daemon=True).start()
    _write("ready", str(os.getpid()))
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
