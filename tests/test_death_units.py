"""kernel/death.py: an ended container's state words itself into one paragraph with its fix (no engine)."""

from __future__ import annotations

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


def _header(msg_id: str) -> dict:
    return {"msg_id": msg_id, "msg_type": "execute_request"}


def test_the_dying_cell_is_the_one_running_else_the_first_sent_and_not_started():
    cells = death_notice.Cells()
    assert cells.dying() == {}
    cells.sent(_header("a"))
    assert cells.dying()["msg_id"] == "a"  # killed before it said busy for its first cell
    cells.status("busy", _header("a"))
    cells.sent(_header("b"))
    cells.sent(_header("c"))  # queued behind a ("run all")
    assert cells.dying()["msg_id"] == "a"
    cells.status("idle", _header("a"))
    assert cells.dying()["msg_id"] == "b"  # killed within milliseconds of b's start
    cells.status("busy", _header("c"))  # b's busy was lost: c started, so b is done
    assert cells.dying()["msg_id"] == "c"
    cells.status("idle", _header("c"))
    assert cells.dying()["msg_id"] == "c"  # nothing pending: the cell that ran last


class _Stream:
    def __init__(self) -> None:
        self.frames: list[list] = []

    def send_multipart(self, frames: list, flags: int = 0, copy: bool = True) -> None:
        self.frames.append(frames)


class _ShellKM(_KM):
    def __init__(self, restarter) -> None:
        super().__init__(restarter)
        from jupyter_client.session import Session

        self.session = Session(key=b"secret")
        self.streams: list[_Stream] = []

    def connect_shell(self, identity: bytes | None = None) -> _Stream:
        self.streams.append(_Stream())
        return self.streams[-1]


def test_follow_shell_hears_each_execute_request_sent_through_the_kernel_managers_shell_streams():
    km = _ShellKM(_Restarter())
    heard: list[str] = []
    death_notice.follow_shell(km, lambda h: heard.append(h["msg_id"]))
    death_notice.follow_shell(km, lambda h: heard.append("again:" + h["msg_id"]))  # one wrapper, two listeners
    stream = km.connect_shell()
    km.session.send(stream, "kernel_info_request")
    msg = km.session.msg("execute_request", {"code": "1"})
    km.session.send(stream, msg)
    assert heard == [msg["header"]["msg_id"], "again:" + msg["header"]["msg_id"]]
    raw = km.session.msg("execute_request", {"code": "2"})  # JupyterLab's v1 websocket protocol: send_raw
    km.session.send_raw(stream, [km.session.pack(raw[k]) for k in ("header", "parent_header", "metadata", "content")])
    assert heard[-1] == "again:" + raw["header"]["msg_id"]
    assert len(stream.frames) == 3  # every message still went out


def test_tell_next_cell_tells_once_under_the_next_cell_run():
    conn = _Conn()
    km = _ShellKM(_Restarter(conn.on_kernel_restarted))
    death_notice.tell_next_cell(km, "culled")
    stream = km.connect_shell()
    first, second = (km.session.msg("execute_request", {"code": c}) for c in ("x", "y"))
    km.session.send(stream, first)
    km.session.send(stream, second)
    assert [(text, parent["msg_id"]) for text, parent in conn.sent] == [("culled", first["header"]["msg_id"])]
