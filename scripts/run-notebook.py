"""Run a notebook on a running Jupyter server over its REST API and kernel websocket, as JupyterLab does.

    python scripts/run-notebook.py URL TOKEN NOTEBOOK [--kernel NAME] [--timeout SECONDS]

NOTEBOOK is a path relative to the server's root directory; the kernel is the notebook's own (metadata.kernelspec)
unless --kernel names another. Every code cell runs in order; a cell that raises fails the run (and stops it), and a
cell whose stored stream output is not marked NBVAL_IGNORE_OUTPUT must print the same text again (as nbval compares).
The session is deleted at the end, so the server shuts the kernel (and its container) down.
Needs only the standard library and tornado (which every Jupyter server has). Exit status 0 when all cells pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
import uuid
from typing import Any

from tornado.websocket import websocket_connect


def api(url: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


async def run_cell(conn: Any, code: str, timeout: float) -> str:
    """Execute code on the kernel's shell channel; its stdout/stderr stream text, or an AssertionError on error."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "newcomer"}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
    message = {"channel": "shell", "header": {**header, "version": "5.3"}, "parent_header": {}, "metadata": {}}
    conn.write_message(json.dumps({**message, "content": content}))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(conn.read_message(), max(0.1, deadline - time.monotonic()))
        if raw is None:
            raise AssertionError("the kernel's websocket closed")
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":  # the traceback without its colour escapes
            raise AssertionError(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(msg["content"]["traceback"])))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


def stored_stream(cell: dict[str, Any]) -> str:
    return "".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


async def run(url: str, token: str, notebook: str, kernel: str | None, timeout: float) -> int:
    nb = api(url, token, "GET", f"/api/contents/{notebook}?content=1")["content"]
    kernel = kernel or nb["metadata"]["kernelspec"]["name"]
    started = time.monotonic()
    body = {"path": notebook, "name": notebook.rsplit("/", 1)[-1], "type": "notebook", "kernel": {"name": kernel}}
    session = api(url, token, "POST", "/api/sessions", body)
    kernel_id = session["kernel"]["id"]
    print(f"[run-notebook] {notebook} on kernel {kernel} ({kernel_id}), started in {time.monotonic() - started:.1f}s")
    failures = passed = 0
    try:
        ws = url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={token}"
        conn = await websocket_connect(ws)
        try:
            cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
            for number, cell in enumerate(cells, start=1):
                code = "".join(cell["source"])
                try:
                    got = await run_cell(conn, code, timeout)
                except (AssertionError, asyncio.TimeoutError) as exc:
                    print(f"[run-notebook] cell {number}/{len(cells)} failed: {exc or 'timed out'}", file=sys.stderr)
                    failures += 1
                    break  # as nbval and "Run All" do: the cells after it would run on a broken state
                expected = stored_stream(cell)
                if "NBVAL_IGNORE_OUTPUT" not in code and expected and got != expected:
                    where = f"cell {number}/{len(cells)}"
                    print(f"[run-notebook] {where} printed {got!r}, stored {expected!r}", file=sys.stderr)
                    failures += 1
                else:
                    passed += 1
                    print(f"[run-notebook] cell {number}/{len(cells)} ok: {got.strip().splitlines()[:1]}")
        finally:
            conn.close()
    finally:
        api(url, token, "DELETE", f"/api/sessions/{session['id']}")
    print(f"[run-notebook] {passed}/{len(cells)} cells passed in {time.monotonic() - started:.1f}s")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("notebook")
    parser.add_argument("--kernel")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    return asyncio.run(run(args.url.rstrip("/"), args.token, args.notebook, args.kernel, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
