"""Deliver kernel/death.py's paragraph where the user looks: the server log and the notebook's cell.

How it reaches JupyterLab: the provisioner's poll() is what jupyter_client's KernelRestarter asks
before it fires its "restart" callbacks; each open kernel websocket (jupyter_server's
ZMQChannelsWebsocketConnection) registered one of those callbacks, and that connection's write_stderr
sends an iopub stream message, the very path jupyter_server uses for its "IOPub data rate exceeded"
notice. Sent with the header of the cell that was running, before the "restarting" status clears
JupyterLab's pending requests, it shows as red stderr text under that cell.

Which cell: the kernel runs execute_requests in the order they reach it, and says "busy" then "idle" on
iopub for each. A kernel killed within milliseconds of a cell's start never says "busy" for it, so iopub
alone would blame the cell before. So the server's own sends are followed too: every shell stream a
websocket opens comes from the KernelManager's connect_shell, and follow_shell notes the header of each
execute_request sent through it (the msg_id the front end is waiting on). Cells keeps both in order;
CellWatch is the iopub subscription (one per kernel, on the server's event loop, no thread).
DeathNotice is what the provisioner holds: the watch of its current container, and the paragraph told
once per container that ended unasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
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


class Cells:
    """Which execute_request a kernel is running (or would run next), from what was sent and what it said."""

    _MAX_SENT = 256  # requests remembered while the kernel has not said "busy" for them

    def __init__(self) -> None:
        self.last: dict[str, Any] = {}  # the last request the kernel said "busy" for
        self._running: dict[str, Any] | None = None  # said "busy", not yet "idle"
        self._sent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # sent, in order, no word from the kernel yet

    def sent(self, header: dict[str, Any]) -> None:
        self._sent[str(header.get("msg_id"))] = dict(header)
        while len(self._sent) > self._MAX_SENT:
            self._sent.popitem(last=False)

    def status(self, state: str, parent: dict[str, Any]) -> None:
        """The kernel's busy/idle for an execute_request: it has taken that one, so every one sent before too."""
        msg_id = str(parent.get("msg_id"))
        if msg_id in self._sent:
            while self._sent and self._sent.popitem(last=False)[0] != msg_id:
                pass
        if state == "busy":
            self.last = self._running = dict(parent)
        elif state == "idle" and self._running is not None and self._running.get("msg_id") == msg_id:
            self._running = None

    def dying(self) -> dict[str, Any]:
        """The header of the cell to tell when the kernel dies now: the one it runs, else the first one it was
        sent and had not started, else the last one it ran ({}: none)."""
        if self._running is not None:
            return self._running
        return next(iter(self._sent.values()), self.last)


class CellWatch:
    """Cells fed from a kernel's iopub (busy/idle of execute_requests)."""

    def __init__(self, km: Any, url: str, log: logging.Logger | Any) -> None:
        self.cells = Cells()
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
            parent = msg.get("parent_header") or {}
            if msg["header"].get("msg_type") != "status" or parent.get("msg_type") != "execute_request":
                return
            state = str(self._session.unpack(msg["content"]).get("execution_state", ""))
        except Exception as exc:  # a message we cannot read must not break the server's loop
            self._log.debug("dockyard: unreadable iopub message: %s", exc)
            return
        self.cells.status(state, parent)

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._stream.close(linger=0)


_DELIM = b"<IDS|MSG>"


def execute_header(session: Any, frames: list[Any]) -> dict[str, Any] | None:
    """The header of the execute_request in a shell message's frames as Session.send writes them, else None."""
    raw = [bytes(f.bytes if hasattr(f, "bytes") else f) for f in frames]
    if _DELIM not in raw:
        return None
    at = raw.index(_DELIM) + 2  # after the delimiter and the signature
    if at >= len(raw) or b"execute_request" not in raw[at]:
        return None
    header = session.unpack(raw[at])
    return dict(header) if isinstance(header, dict) and header.get("msg_type") == "execute_request" else None


def follow_shell(km: Any, listener: Callable[[dict[str, Any]], None]) -> None:
    """Call listener with the header of each execute_request sent to km's kernel on a shell stream that km
    opens from now on (jupyter_server opens one per websocket). Once per KernelManager, any listeners."""
    listeners: list[Callable[[dict[str, Any]], None]] | None = getattr(km, "_dockyard_shell_listeners", None)
    if listeners is None:
        listeners = km._dockyard_shell_listeners = []
        connect_shell = km.connect_shell

        def connect_and_follow(*args: Any, **kwargs: Any) -> Any:
            stream = connect_shell(*args, **kwargs)
            send = getattr(stream, "send_multipart", None)
            if send is not None:

                def send_multipart(frames: list[Any], *a: Any, **kw: Any) -> Any:
                    with contextlib.suppress(Exception):  # reading must never stop the message
                        if (header := execute_header(km.session, frames)) is not None:
                            for heard in list(listeners):
                                heard(header)
                    return send(frames, *a, **kw)

                with contextlib.suppress(AttributeError, TypeError):  # a socket that takes no attributes: unfollowed
                    stream.send_multipart = send_multipart
            return stream

        km.connect_shell = connect_and_follow
    listeners.append(listener)


def tell_next_cell(km: Any, text: str) -> None:
    """Tell text under the next cell a client runs on km's kernel (a culled notebook's first cell, say)."""

    def once(header: dict[str, Any]) -> None:
        km._dockyard_shell_listeners.remove(once)
        tell_clients(km, text, header)

    follow_shell(km, once)


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
        self._following = False  # the KernelManager's shell sends (follow_shell)

    def watch(self, km: Any, connection_info: Any) -> None:
        """Follow which cell runs on a (re)started kernel; its ports may be new, so subscribe again."""
        self.stop()
        if not self._following:
            follow_shell(km, self._sent)
            self._following = True
        try:
            url = f"tcp://{connection_info['ip']}:{connection_info['iopub_port']}"
            self._cells = CellWatch(km, url, self.log)
        except Exception as exc:  # without it the paragraph still reaches the log, only not the cell
            self.log.warning("dockyard: cannot follow kernel %s's iopub: %s", self.kernel_id, exc)

    def _sent(self, header: dict[str, Any]) -> None:
        if self._cells is not None:
            self._cells.cells.sent(header)

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
        header = self._cells.cells.dying() if self._cells is not None else {}
        try:
            tell_clients(km, self.last, header)
        except Exception as exc:  # a closed websocket must not stop the restart that follows
            self.log.warning("dockyard: could not tell kernel %s's clients why it died: %s", self.kernel_id, exc)
