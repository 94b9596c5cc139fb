"""kernel/death.py: an ended container's state words itself into one paragraph with its fix (no engine)."""

from __future__ import annotations

import asyncio
import json

from jupyter_client.session import Session

from dockyard.kernel import death, death_notice


def _inspect(code: int, oom: bool = False, memory: int = 0, error: str = "") -> dict:
    return {"State": {"ExitCode": code, "OOMKilled": oom, "Error": error}, "HostConfig": {"Memory": memory}}


def test_oom_kill_names_the_limit_and_the_fix():
    ended = death.from_inspect("dockyard-k-1", _inspect(137, oom=True, memory=256 << 20), "loading\nallocating\n")
    text = death.paragraph(ended)
    assert "out of memory at 256 MiB" in text
    assert "exit code 137" in text
    assert "resources.memory" in text
    assert "smaller batch" in text
    assert "allocating" in text  # the log's last lines
    assert "\n" not in text  # one paragraph


def test_oom_without_a_limit_says_the_host_ran_out():
    text = death.paragraph(death.from_inspect("c", _inspect(137, oom=True), ""))
    assert "out of memory" in text
    assert "MiB" not in text
    assert "give the kernel a limit" in text


def test_sigkill_without_oom_is_not_blamed_on_memory():
    text = death.paragraph(death.from_inspect("c", _inspect(137, memory=1 << 30), "x"))
    assert "SIGKILL" in text
    assert "not by its memory limit" in text
    assert "out of memory" not in text


def test_gpu_errors_from_the_log_are_quoted_with_their_fix():
    log = "step 1\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\nother\n"
    text = death.paragraph(death.from_inspect("c", _inspect(1), log))
    assert "after GPU errors: RuntimeError: CUDA out of memory" in text
    assert "smaller batch" in text
    xid = death.paragraph(death.from_inspect("c", _inspect(134), "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off"))
    assert "Xid" in xid
    assert "dmesg" in xid


def test_crash_and_plain_exit():
    segv = death.paragraph(death.from_inspect("c", _inspect(139), "Fatal Python error: Segmentation fault"))
    assert "SIGSEGV" in segv
    assert "exit code 139" in segv
    assert "Segmentation fault" in segv
    plain = death.paragraph(death.from_inspect("c", _inspect(3), ""))
    assert "exit code 3" in plain
    assert "exit()" in plain
    assert "Its log is empty." in plain


def test_gpu_errors_lists_each_line_once():
    log = "CUDA error: an illegal memory access\nok\nCUDA error: an illegal memory access\n"
    assert death.gpu_errors(log) == ["CUDA error: an illegal memory access"]
    assert death.gpu_errors("all fine\nloss 0.3") == []


def test_size_reads_like_a_limit():
    assert death.size(256 << 20) == "256 MiB"
    assert death.size(3 << 29) == "1.5 GiB"
    assert death.size(512) == "512 B"


class _Conn:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def write_stderr(self, text: str, parent: dict) -> None:
        self.sent.append((text, parent))

    def on_kernel_restarted(self) -> None:
        pass


class _Restarter:
    def __init__(self, *callbacks) -> None:
        self.callbacks = {"restart": list(callbacks), "dead": []}


class _KM:
    def __init__(self, restarter) -> None:
        self._restarter = restarter


def test_tell_clients_writes_to_each_websocket_connection_through_its_restart_callback():
    a, b = _Conn(), _Conn()
    km = _KM(_Restarter(a.on_kernel_restarted, lambda: None, b.on_kernel_restarted))
    assert death_notice.tell_clients(km, "why", {"msg_id": "m1"}) == 2
    assert a.sent == b.sent == [("why", {"msg_id": "m1"})]
    assert death_notice.tell_clients(_KM(None), "why", {}) == 0


# --- which cell: the shell requests the server sent, then iopub (CellWatch) ---------------------------------


class _Stream:
    """The part of a ZMQStream the hook uses: one send callback."""

    def __init__(self) -> None:
        self._send_callback = None

    def on_send(self, callback) -> None:
        self._send_callback = callback

    def send(self, header: dict) -> None:  # as Session.send frames it: identity, delimiter, signature, header, ...
        self._send_callback([b"ident", b"<IDS|MSG>", b"sig", json.dumps(header).encode(), b"{}", b"{}", b"{}"], None)


class _Shell:
    def __init__(self) -> None:
        self.channels = {"shell": _Stream()}

    def on_kernel_restarted(self) -> None:
        pass


class _WatchedKM:
    def __init__(self) -> None:
        self._restarter = _Restarter()
        self.session = Session(key=b"k")

    def add_restart_callback(self, f, event: str = "restart") -> None:
        self._restarter.callbacks[event].append(f)


def _request(msg_id: str) -> dict:
    return {"msg_id": msg_id, "msg_type": "execute_request", "session": "s"}


def _status(km: _WatchedKM, state: str, parent: dict) -> list[bytes]:
    msg = km.session.msg("status", {"execution_state": state}, parent=parent)
    return km.session.serialize(msg)


def test_the_cell_that_died_is_the_oldest_sent_request_not_yet_idle_even_before_iopub_said_busy():
    async def scenario() -> None:
        km = _WatchedKM()
        early = _Shell()
        km.add_restart_callback(early.on_kernel_restarted)  # a connection open before the kernel's start
        watch = death_notice.CellWatch(km, "tcp://127.0.0.1:9", None)
        late = _Shell()
        km.add_restart_callback(late.on_kernel_restarted)  # one that connects afterwards is hooked as it registers
        try:
            early.channels["shell"].send(_request("a"))
            late.channels["shell"].send(_request("b"))
            late.channels["shell"].send({"msg_id": "c", "msg_type": "complete_request"})  # not a cell
            assert watch.header["msg_id"] == "a"  # no iopub yet: a kernel killed within milliseconds
            watch._on_iopub(_status(km, "busy", _request("a")))
            watch._on_iopub(_status(km, "idle", _request("a")))
            assert watch.header["msg_id"] == "b"
            watch._on_iopub(_status(km, "busy", _request("b")))
            watch._on_iopub(_status(km, "idle", _request("b")))
            assert watch.header["msg_id"] == "b"  # nothing pending: the one iopub last saw busy
            early.channels["shell"].send(_request("d"))
            early.channels["shell"].send(_request("e"))
            watch._on_iopub(_status(km, "busy", _request("e")))  # d's idle was missed: it ended all the same
            assert watch.header["msg_id"] == "e"
        finally:
            watch.close()

    asyncio.run(scenario())


def test_a_restart_moves_the_hooks_to_the_new_watch_and_forgets_the_dead_kernels_requests():
    async def scenario() -> None:
        km = _WatchedKM()
        conn = _Shell()
        first = death_notice.CellWatch(km, "tcp://127.0.0.1:9", None)
        km.add_restart_callback(conn.on_kernel_restarted)
        conn.channels["shell"].send(_request("a"))
        first.close()
        second = death_notice.CellWatch(km, "tcp://127.0.0.1:9", None)  # the restarted kernel's
        try:
            assert second.header == {}
            conn.channels["shell"].send(_request("b"))
            assert second.header["msg_id"] == "b"
            assert first.header["msg_id"] == "a"
        finally:
            second.close()

    asyncio.run(scenario())
