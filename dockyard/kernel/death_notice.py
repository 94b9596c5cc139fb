"""Deliver kernel/death.py's paragraph where the user looks: the server log and the notebook's cell.

How it reaches JupyterLab: the provisioner's poll() is what jupyter_client's KernelRestarter asks
before it fires its "restart" callbacks; each open kernel websocket (jupyter_server's
ZMQChannelsWebsocketConnection) registered one of those callbacks, and that connection's write_stderr
sends an iopub stream message, the very path jupyter_server uses for its "IOPub data rate exceeded"
notice. Sent with the header of the cell that was running, before the "restarting" status clears
JupyterLab's pending requests, it shows as red stderr text under that cell. The running cell's header
comes from CellWatch, one iopub subscription per kernel on the server's event loop (no thread).
DeathNotice is what the provisioner holds: the watch of its current container, and the paragraph told
once per container that ended unasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import docker
import docker.errors
import requests
import zmq
from zmq.eventloop.zmqstream import ZMQStream

from . import death

_LOG_LINES = 40  # read from the engine; death.paragraph keeps the last few and scans all for GPU errors


def read(client: docker.DockerClient, cid: str, name: str) -> death.Exit | None:
    """What the engine knows of an ended container; None when it is gone or cannot be asked."""
    try:
        attrs = client.api.inspect_container(cid)
        log = client.api.logs(cid, tail=_LOG_LINES).decode("utf-8", "replace")
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None
    return death.from_inspect(name, attrs, log)


class CellWatch:
    """The header of the execute_request a kernel is (or was last) busy with, read from its iopub."""

    def __init__(self, km: Any, url: str, log: logging.Logger | Any) -> None:
        self.header: dict[str, Any] = {}
        self._session = km.session
        self._log = log
        # A plain socket of our own: ZMQStream cannot take the asyncio sockets an async KernelManager makes.
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        if getattr(km, "curve_publickey", None) is not None:
            sock.curve_secretkey, sock.curve_publickey = km.curve_secretkey, km.curve_publickey
            sock.curve_serverkey = km.curve_publickey
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(url)  # the provisioner's: a pooled kernel's ports are not yet the KernelManager's
        self._stream = ZMQStream(sock)
        self._stream.on_recv(self._on_iopub)

    def _on_iopub(self, msg_list: list[bytes]) -> None:
        try:
            _, parts = self._session.feed_identities(msg_list)
            msg = self._session.deserialize(parts, content=False)
        except Exception as exc:  # a message we cannot read must not break the server's loop
            self._log.debug("dockyard: unreadable iopub message: %s", exc)
            return
        parent = msg.get("parent_header") or {}
        if msg["header"].get("msg_type") == "status" and parent.get("msg_type") == "execute_request":
            self.header = dict(parent)

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._stream.close(linger=0)


def pace_restarter(km: Any, interval: float) -> None:
    """Check the container every interval seconds: jupyter_client started its restarter at its own pace."""
    restarter = getattr(km, "_restarter", None)
    if restarter is not None and restarter.time_to_dead > interval > 0:
        restarter.stop()
        restarter.time_to_dead = interval
        restarter.start()


def tell_clients(km: Any, text: str, parent: dict[str, Any]) -> int:
    """Write text as stderr to every websocket open on this kernel; returns how many got it.

    The connections are found through the restart callbacks they registered (jupyter_server keeps no other
    list of them); outside jupyter_server (a plain KernelManager) there are none and nothing is sent.
    """
    restarter = getattr(km, "_restarter", None)
    callbacks = list((getattr(restarter, "callbacks", None) or {}).get("restart", []))
    told = 0
    for callback in callbacks:
        write = getattr(getattr(callback, "__self__", None), "write_stderr", None)
        if callable(write):
            write(text, parent)
            told += 1
    return told


class DeathNotice:
    """One kernel's notices: follows which cell runs, and tells why each container ended that nobody ended."""

    def __init__(self, kernel_id: str | None, log: logging.Logger | Any) -> None:
        self.kernel_id = kernel_id
        self.log = log
        self.last: str | None = None  # kernel/death.py's paragraph for this kernel's last unexpected end
        self._cells: CellWatch | None = None
        self._explained: str | None = None  # the container whose end was already told

    def watch(self, km: Any, connection_info: Any) -> None:
        """Follow which cell runs on a (re)started kernel; its ports may be new, so subscribe again."""
        self.stop()
        try:
            url = f"tcp://{connection_info['ip']}:{connection_info['iopub_port']}"
            self._cells = CellWatch(km, url, self.log)
        except Exception as exc:  # without it the paragraph still reaches the log, only not the cell
            self.log.warning("dockyard: cannot follow kernel %s's iopub: %s", self.kernel_id, exc)

    def stop(self) -> None:
        if self._cells is not None:
            self._cells.close()
            self._cells = None

    async def explain(self, km: Any, client: docker.DockerClient, cid: str, name: str) -> None:
        """An end nobody asked for (not a shutdown or restart): tell the server log and the notebook why, once."""
        if self._explained == cid:
            return
        self._explained = cid
        if km is None or getattr(km, "shutting_down", False):
            return
        ended = await asyncio.to_thread(read, client, cid, name)
        if ended is None:
            return
        self.last = death.paragraph(ended)
        self.log.error("dockyard: kernel %s: %s", self.kernel_id, self.last)
        header = self._cells.header if self._cells is not None else {}
        try:
            tell_clients(km, self.last, header)
        except Exception as exc:  # a closed websocket must not stop the restart that follows
            self.log.warning("dockyard: could not tell kernel %s's clients why it died: %s", self.kernel_id, exc)
