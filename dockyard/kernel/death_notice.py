"""Deliver kernel/death.py's paragraph where the user looks: the server log and the notebook's cell.

How it reaches JupyterLab: the provisioner's poll() is what jupyter_client's KernelRestarter asks
before it fires its "restart" callbacks; each open kernel websocket (jupyter_server's
ZMQChannelsWebsocketConnection) registered one of those callbacks, and that connection's write_stderr
sends an iopub stream message, the very path jupyter_server uses for its "IOPub data rate exceeded"
notice. Sent with the header of the cell that was running, before the "restarting" status clears
JupyterLab's pending requests, it shows as red stderr text under that cell. The running cell's header
comes from CellWatch: the requests the server sent on the kernel's shell channel, and the kernel's iopub status,
both read on the server's event loop (no thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
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


_DELIM = b"<IDS|MSG>"  # jupyter_client.session's delimiter between routing identities and the message
_PENDING_MAX = 64  # execute_requests remembered per kernel; more unfinished cells than that is a stuck kernel


class CellWatch:
    """Which cell a kernel is running, for the paragraph when it dies.

    First choice: the oldest execute_request the server sent on the kernel's shell channel that has not ended
    (iopub "idle"): the kernel runs them in order, so that one was running. It is known the moment the server
    forwards the request, which matters for a cell that kills its kernel within milliseconds, before its
    iopub "busy" ever leaves the container. The shell side is seen through the websocket connections'
    shell streams (jupyter_server's ZMQChannelsWebsocketConnection), each hooked as it registers its restart
    callback. Fallback (a client that is not a websocket, e.g. nbclient in-process): the request that iopub last
    said the kernel was busy with.
    """

    def __init__(self, km: Any, url: str, log: logging.Logger | Any) -> None:
        self._pending: list[dict[str, Any]] = []
        self._busy: dict[str, Any] = {}
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
        _current[km] = self  # the hooks below find the watch of the kernel's current container here
        _follow_shell(km)

    @property
    def header(self) -> dict[str, Any]:
        return dict(self._pending[0] if self._pending else self._busy)

    def sent(self, header: dict[str, Any]) -> None:
        if header.get("msg_type") == "execute_request":
            self._pending = [*self._pending[-(_PENDING_MAX - 1) :], header]

    def _on_iopub(self, msg_list: list[bytes]) -> None:
        try:
            _, parts = self._session.feed_identities(msg_list)
            msg = self._session.deserialize(parts, content=False)
            parent = msg.get("parent_header") or {}
            if msg["header"].get("msg_type") != "status" or parent.get("msg_type") != "execute_request":
                return
            state = self._session.unpack(msg["content"]).get("execution_state")  # status contents are tiny
        except Exception as exc:  # a message we cannot read must not break the server's loop
            self._log.debug("dockyard: unreadable iopub message: %s", exc)
            return
        ids = [h.get("msg_id") for h in self._pending]
        if state == "busy":
            self._busy = dict(parent)
            if parent.get("msg_id") in ids:  # the ones before it have ended, whether or not their idle was seen
                self._pending = self._pending[ids.index(parent.get("msg_id")) :]
        elif state == "idle":
            self._pending = [h for h in self._pending if h.get("msg_id") != parent.get("msg_id")]

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._stream.close(linger=0)


_current: weakref.WeakKeyDictionary[Any, CellWatch] = weakref.WeakKeyDictionary()


def _follow_shell(km: Any) -> None:
    """Hook the shell stream of every websocket connection on this kernel: those open now, and (by wrapping
    the KernelManager's add_restart_callback, which each connection calls once its streams exist) those to come."""
    restarter = getattr(km, "_restarter", None)
    for callback in list((getattr(restarter, "callbacks", None) or {}).get("restart", [])):
        _hook(km, getattr(callback, "__self__", None))
    if getattr(km, "_dockyard_follows_shell", False):
        return
    original = km.add_restart_callback

    def add_restart_callback(f: Any, event: str = "restart") -> None:
        original(f, event)
        _hook(km, getattr(f, "__self__", None))

    km.add_restart_callback = add_restart_callback
    km._dockyard_follows_shell = True


def _hook(km: Any, connection: Any) -> None:
    stream = (getattr(connection, "channels", None) or {}).get("shell")
    if stream is None or getattr(stream, "_send_callback", None) is not None:
        return  # not a websocket connection, or hooked already (by us, or by someone we must not displace)

    def on_send(msg_list: list[Any], status: object) -> None:
        watch = _current.get(km)
        header = _header(msg_list)
        if watch is not None and header is not None:
            watch.sent(header)

    with contextlib.suppress(Exception):  # a stream closed meanwhile: nothing to follow
        stream.on_send(on_send)


def _header(msg_list: list[Any]) -> dict[str, Any] | None:
    """The header of a message as sent (identities, delimiter, signature, header, ...); None if unreadable."""
    frames = iter(msg_list)
    try:
        while _raw(next(frames)) != _DELIM:  # routing identities come first
            pass
        next(frames)  # the signature
        header = json.loads(_raw(next(frames)))
    except (StopIteration, ValueError, TypeError):
        return None
    return header if isinstance(header, dict) else None


def _raw(frame: Any) -> bytes:
    return bytes(frame.bytes if isinstance(frame, zmq.Frame) else frame)


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
