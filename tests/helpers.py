"""Plain helpers and constants shared by the tests (fixtures live in conftest.py): the test site's
settings, generated-tree comparison, tracked containers, and Jupyter servers in a subprocess against
temp-installed kernelspecs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container
from jupyter_client import KernelManager
from tornado.websocket import websocket_connect

from dockyard.cli import main as dockyard_main
from dockyard.kernel.container import KernelContainer, container_argv
from dockyard.labels import LABEL_OWNER

REPO = Path(__file__).resolve().parent.parent
LOCAL_BASE = os.environ.get("DOCKYARD_TEST_BASE", "dockyard-local/python:3.11-bookworm")
UPSTREAM_BASE = "python:3.11-slim-bookworm"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
TEST_LABEL = "org.dockyard.test"
TEST_USER = os.environ.get("DOCKYARD_TEST_USER", "dockyard-test")  # scripts/make-test-user.sh

# The site options a test machine needs, through the documented user-facing settings:
# no registry (base override), a TLS-intercepting proxy (extra CA), the local torch wheel (wheelhouse).
SITE_ENV = {
    "DOCKYARD_BASE_OVERRIDES": f"{UPSTREAM_BASE}={LOCAL_BASE}",
    "DOCKYARD_CA_CERTS": HOST_CA,
    "DOCKYARD_WHEELHOUSE": os.environ.get("DOCKYARD_TEST_WHEELHOUSE", "/opt/wheels"),
    # The spec's download.pytorch.org index is unreachable here; the wheelhouse has the CPU wheel.
    "DOCKYARD_IGNORE_SPEC_INDEXES": "1",
    # No registry here, and tests talk to no outside address: a missing base is an error, never a pull.
    "DOCKYARD_PULL": "never",
}


def assert_same_files(fresh: Path, committed: Path, command: str) -> None:
    """A freshly generated tree equals the checked-in one, byte for byte (else: run `command`)."""

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    new, old = files(fresh), files(committed)
    assert sorted(new) == sorted(old), f"run '{command}' and commit {committed.name}/"
    for rel, data in new.items():
        assert old[rel] == data, f"{committed.name}/{rel} is outdated: run '{command}'"


def copy_spec(name: str, dest: Path) -> Path:
    """A shipped spec and its lock files, copied into the spec directory dest."""
    target = dest / f"{name}.yaml"
    shutil.copy(REPO / "envs" / f"{name}.yaml", target)
    copy_locks(name, dest)
    return target


def copy_locks(name: str, dest: Path, as_name: str | None = None) -> None:
    """The lock files of a shipped spec into dest/locks/ (a spec's locks live next to it); as_name: for a copy
    of the spec under another name (the lock does not depend on the name)."""
    (dest / "locks").mkdir(exist_ok=True)
    for lock in (REPO / "envs" / "locks").glob(f"{name}-*.txt"):
        shutil.copy(lock, dest / "locks" / lock.name.replace(f"{name}-", f"{as_name or name}-", 1))


def restamp_locks(spec_path: Path) -> None:
    """Mark the copied locks as made from the edited spec at spec_path, without resolving again.

    Only for tests whose edit (Python 3.12 on a 3.11 base) must reach a check *inside* the build: the image's
    own Python check fails before any package is installed, so the lock's contents never matter there."""
    from dockyard.images.lockfile import inputs_digest, lock_path
    from dockyard.specs import load_file

    spec = load_file(spec_path)
    for variant in spec.variants.values():
        path = lock_path(spec, variant)
        text = re.sub(r"(?m)^# inputs: [0-9a-f]{64}$", f"# inputs: {inputs_digest(spec, variant)}", path.read_text())
        path.write_text(text)


class TrackedContainers:
    """Containers a test runs, every one removed afterwards; runs assert instead of returning codes
    (after docker-stacks' TrackedContainer)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.containers: list[Container] = []

    def run_detached(self, image: str, command: list[str], **kwargs: Any) -> Container:
        kwargs.setdefault("labels", {})[TEST_LABEL] = "1"
        container = self.client.containers.run(image, command, detach=True, **kwargs)
        self.containers.append(container)
        return container

    def run_and_wait(self, image: str, command: list[str], *, timeout: int = 300, **kwargs: Any) -> str:
        """Run to the end; fails the test (showing the output) unless the exit code is 0. Returns the output."""
        container = self.run_detached(image, command, **kwargs)
        status = container.wait(timeout=timeout)["StatusCode"]
        logs = container.logs().decode()
        assert status == 0, f"{command} exited {status} in {image}:\n{logs}"
        return logs

    def remove_all(self) -> None:
        for container in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


OWNER_LABEL = LABEL_OWNER  # written by the provisioner: "HOST:PID:START"


def install_kernelspecs(prefix: Path) -> Path:
    """Every dockyard kernelspec, built or not (tests start unbuilt ones on purpose), into PREFIX/share/jupyter;
    returns the dir to put on JUPYTER_PATH."""
    assert dockyard_main(["kernels", "install", "--include-unbuilt", "--prefix", str(prefix)]) == 0
    return prefix / "share" / "jupyter"


def jupyter_env(jupyter_path: Path, scratch: Path, **extra: str) -> dict[str, str]:
    """os.environ (with the site settings conftest put there) plus a Jupyter that sees only our dirs:
    no user config or kernelspecs leak in, and runtime files (connection files) stay in scratch."""
    env = dict(os.environ)
    for name in ("config", "data", "runtime"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def owned_containers(client, pid: int) -> list:
    """Kernel containers whose owner label names process pid on this host."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return [
        c
        for c in client.containers.list(all=True, filters={"label": OWNER_LABEL})
        if c.labels.get(OWNER_LABEL, "").startswith(prefix)
    ]


def remove_leftovers(client, pid: int, wait: float = 0.0) -> list[str]:
    """Waits up to `wait` seconds for pid's kernel containers to go, then force-removes any that remain.
    Returns the names of those it had to remove (a test asserts that list is empty)."""
    deadline = time.monotonic() + wait
    while (left := owned_containers(client, pid)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return force_remove(left)


def force_remove(containers: list) -> list[str]:
    """Force-removes containers (already gone is fine); returns their names."""
    for c in containers:
        with contextlib.suppress(Exception):
            c.remove(force=True)
    return [c.name for c in containers]


def remove_mounting(client, directory: Path) -> list[str]:
    """Force-removes kernel containers that bind-mount directory or a folder inside it; returns their names."""

    def mounts_it(c) -> bool:
        sources = [Path(m.get("Source", "")) for m in c.attrs.get("Mounts", [])]
        return any(src == directory or directory in src.parents for src in sources)

    return force_remove([c for c in client.containers.list(all=True, filters={"label": OWNER_LABEL}) if mounts_it(c)])


def run_and_clean(cmd: list[str], *, timeout: float, clean, **popen_kwargs) -> tuple[int, str, list[str]]:
    """Runs cmd to the end (killed after timeout), then clean(pid) whatever happened.

    Returns (exit code, combined output, what clean had to remove)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, _ = proc.communicate()
        leftovers = clean(proc.pid)
    return proc.returncode, out, leftovers


def nbval_as_test_user(
    user_python: Path,
    docker_client,
    kernel: str,
    folders: list[str],
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 900,
) -> str:
    """nbval on notebooks/<folder>s in the container kernel `kernel` (e.g. 'pytorch:cpu'), run as TEST_USER.

    CI runs as root, which hides UID bugs: the kernel must write the notebook's folder and its home as that user.
    The notebooks are copied into a directory the user owns; the kernelspec is installed by the user into a prefix
    there. Kernel containers are found by their workspace mount (runuser forks, so the owner label names its
    child) and removed, pass or fail. Returns nbval's output; fails the test on any error.
    """
    base = Path(tempfile.mkdtemp(prefix="dockyard-nbval-user-"))
    try:
        os.chmod(base, 0o755)
        for folder in folders:
            shutil.copytree(
                REPO / "notebooks" / folder, base / "work" / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
            )
        prefix = base / "prefix"
        subprocess.run(
            [str(user_python), "-m", "dockyard", "kernels", "install", kernel, "--prefix", str(prefix)],
            check=True,
            capture_output=True,
        )
        (base / "home").mkdir()
        subprocess.run(["chown", "-R", f"{TEST_USER}:{TEST_USER}", str(base)], check=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base / "home"), "JUPYTER_PATH": str(prefix / "share" / "jupyter")}
        env |= {k: v for k, v in os.environ.items() if k.startswith("DOCKYARD_")}  # the site settings
        env |= extra_env or {}
        runuser = shutil.which("runuser") or "runuser"  # the env's PATH has no sbin: resolve it here
        name = "dockyard-" + kernel.replace(":", "-")
        nbval = [
            "--nbval",
            "--nbval-kernel-name",
            name,
            "--nbval-kernel-startup-timeout",
            "180",
            "-p",
            "no:cacheprovider",
            "-q",
            *folders,
        ]
        cmd = [runuser, "-u", TEST_USER, "--", str(user_python), "-m", "pytest", *nbval]
        code, out, leftovers = run_and_clean(
            cmd, timeout=timeout, clean=lambda _pid: remove_mounting(docker_client, base), cwd=base / "work", env=env
        )
        assert code == 0, f"nbval failed in {name} as {TEST_USER}:\n{out[-6000:]}"
        assert " passed" in out
        assert "skipped" not in out.splitlines()[-1]
        assert not leftovers, f"kernel containers left behind: {leftovers}"
        # The notebooks clean up after themselves: nothing new next to them.
        for folder in folders:
            assert sorted(p.name for p in (base / "work" / folder).iterdir()) == sorted(
                p.name for p in (REPO / "notebooks" / folder).glob("*.ipynb")
            )
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- Jupyter server / JupyterLab subprocesses with the panel's server extension (tests/test_panel_*.py)

PANEL_CONFIG = REPO / "jupyter-config"  # what the wheel installs as etc/jupyter/jupyter_server_config.d/dockyard.json
LABEXTENSION = REPO / "dockyard" / "frontends" / "panel" / "labextension"


@dataclass
class JupyterProc:
    url: str
    token: str
    proc: subprocess.Popen
    root: Path
    log: Path

    def api(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"} if auth else {}
        headers |= kwargs.pop("headers", {})
        kwargs.setdefault("timeout", 120)
        return requests.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def new_session(self, kernel: str, name: str = "test.ipynb") -> requests.Response:
        body = {"path": name, "name": name, "type": "notebook", "kernel": {"name": kernel}}
        return self.api("POST", "/api/sessions", json=body)

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run code over the kernel's websocket (as JupyterLab does); returns its stdout."""
        return asyncio.run(_execute(self, kernel_id, code, timeout))


async def _execute(server: JupyterProc, kernel_id: str, code: str, timeout: float) -> str:
    ws_url = server.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?token={server.token}"
    conn = await websocket_connect(ws_url)
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "test"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    conn.write_message(json.dumps({
        "channel": "shell",
        "header": {**header, "version": "5.3"},
        "parent_header": {}, "metadata": {},
        "content": content,
    }))  # fmt: skip
    out: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), max(0.1, deadline - time.monotonic()))
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        conn.close()


def start_jupyter(app: str, jupyter_path: Path, scratch: Path, *args: str, **env_extra: str) -> JupyterProc:
    """`jupyter APP` (server or lab) on 127.0.0.1 with a token, the repo's server config (the panel's
    extension enabled exactly as an installed wheel enables it) and only our data dirs."""
    port, token = free_port(), secrets.token_hex(16)
    root = scratch / "root"
    root.mkdir(parents=True, exist_ok=True)
    log = scratch / f"{app}.log"
    env = jupyter_env(jupyter_path, scratch / "jupyter", JUPYTER_CONFIG_PATH=str(PANEL_CONFIG), **env_extra)
    if sys.prefix != sys.base_prefix:
        # A venv with system site-packages: the widget labextensions (jupyterlab_widgets) are data files of the
        # base Python's prefix, which Jupyter searches only as the running Python's own prefix.
        env["JUPYTER_PATH"] += os.pathsep + str(Path(sys.base_prefix) / "share" / "jupyter")
    cmd = [
        # The module itself, not `jupyter APP`: that runs the first jupyter-APP script on PATH, whose Python
        # may import another checkout's dockyard (a venv with system site-packages has no script of its own).
        sys.executable, "-m", {"server": "jupyter_server", "lab": "jupyterlab"}[app], "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", *args,
    ]  # fmt: skip
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    server = JupyterProc(f"http://127.0.0.1:{port}", token, proc, root, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter {app} exited:\n{server.log_tail()}")
        with contextlib.suppress(requests.ConnectionError):
            if server.api("GET", "/api/status", timeout=5).status_code == 200:
                return server
        time.sleep(0.2)
    stop_jupyter(server)
    raise AssertionError(f"jupyter {app} did not answer within 90 s:\n{server.log_tail()}")


def stop_jupyter(server: JupyterProc) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()  # SIGTERM: the server shuts its kernels down, as on Ctrl-C
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def _ws_message(channel: str, msg_type: str, content: dict) -> tuple[str, str]:
    """A client message as JupyterLab's JSON websocket protocol sends it, and its msg_id."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": uuid.uuid4().hex, "username": "t", "version": "5.3"}
    body = {"channel": channel, "header": header, "parent_header": {}, "metadata": {}, "content": content}
    return json.dumps(body), msg_id


async def stderr_of_cell(
    srv: JupyterProc,
    kernel_id: str,
    code: str,
    want: str,
    timeout: float,
    *,
    before: Callable[[], object] | None = None,
    then: Callable[[], object] | None = None,
) -> tuple[str, float]:
    """Run code as JupyterLab does; return the cell's stderr once it contains want, and the seconds it took.
    Only stderr whose parent is this cell's execute_request counts (what JupyterLab shows under the cell).
    `before` runs once the notebook's websocket is open and answered (as JupyterLab's is when a cell runs),
    `then` (in a thread) right after the request is sent."""
    conn = await websocket_connect(
        srv.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?token={srv.token}"
    )
    if before is not None:
        info, info_id = _ws_message("shell", "kernel_info_request", {})
        conn.write_message(info)
        while (raw := await asyncio.wait_for(conn.read_message(), timeout)) is not None:
            if json.loads(raw).get("parent_header", {}).get("msg_id") == info_id:
                break
        before()
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    request, msg_id = _ws_message("shell", "execute_request", content)
    conn.write_message(request)
    start, err = time.monotonic(), ""
    done = asyncio.ensure_future(asyncio.to_thread(then)) if then is not None else None
    try:
        while want not in err:
            left = timeout - (time.monotonic() - start)
            raw = await asyncio.wait_for(conn.read_message(), max(0.1, left))
            assert raw is not None, "websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["header"]["msg_type"] == "stream":
                err += msg["content"]["text"] if msg["content"]["name"] == "stderr" else ""
        if done is not None:
            await done
        return err, time.monotonic() - start
    finally:
        conn.close()


# --- kernels through jupyter_client (test_kernel_lifecycle.py, test_pool.py) ---------------------------------

KERNEL_SCRIPT = Path(__file__).with_name("kernel_script.py")
KERNEL_ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
TEST_UID = 1234  # TEST_USER's uid (scripts/make-test-user.sh)


def write_kernelspec(
    root: Path, name: str, config: dict, *, argv: list[str] | None = None, env: dict | None = None, curve: bool = False
) -> None:
    d = root / "kernels" / name
    d.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": argv or KERNEL_ARGV,
        "display_name": name,
        "language": "python",
        "interrupt_mode": "signal",
        "env": env or {},
        "metadata": {"kernel_provisioner": {"provisioner_name": "dockyard-docker-provisioner", "config": config}},
    }
    if curve:
        spec["metadata"]["supported_encryption"] = ["curve"]  # the image's ipykernel (7.4) reads CurveZMQ keys
    (d / "kernel.json").write_text(json.dumps(spec))


@contextlib.contextmanager
def kernel(name: str, cwd: Path, **start_kw) -> Iterator[tuple[KernelManager, object]]:
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=str(cwd), **start_kw)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel()


def run(kc, code: str, timeout: float = 30) -> tuple[dict, str]:
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def run_json(kc, code: str) -> dict:
    content, out = run(kc, code)
    assert content["status"] == "ok", content
    return json.loads(out)


def gone(client, cid: str) -> bool:
    try:
        client.containers.get(cid)
    except docker.errors.NotFound:
        return True
    return False


def wait_busy(kc, msg_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=20)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            return
    raise AssertionError("cell never started")


def make_kernel_container(workspace: Path, **changes: Any) -> KernelContainer:
    """A KernelContainer as the provisioner builds one for a kernel started in workspace (no engine involved);
    a test changes the fields it looks at."""
    fields: dict[str, Any] = {
        "image": "dockyard/minimal:cpu-0123456789ab",
        "env_name": "minimal",
        "variant": "cpu",
        "kernel_id": "0123456789ab",
        "owner": "host:1:2",
        "argv": container_argv(KERNEL_ARGV),
        "environment": {},
        "workspace": workspace,
        "cwd": workspace,
        "connection_file": workspace / "k.json",
        "ports": (1, 2, 3, 4, 5),
        "uid": 1000,
        "gid": 1000,
    }
    return KernelContainer(**{**fields, **changes})


# ---------------------------------------------------------------------- hostile input: one paragraph, bounded memory


def assert_one_paragraph(text: str, *fragments: str) -> None:
    """A user-facing error: one line of text with a fix, no traceback, naming what it was given."""
    text = text.strip()
    assert text, "empty error message"
    assert "\n" not in text, f"not one paragraph: {text!r}"
    assert "Traceback" not in text, text
    assert "Fix:" in text, f"no fix in: {text!r}"
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text!r}"


def _vm_size() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmSize:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) * 1024 if match else None


@contextlib.contextmanager
def bounded_memory(headroom_mb: int = 400) -> Iterator[None]:
    """Lower this process's RLIMIT_AS to its current size plus headroom for the block, then restore it.

    A case that tries to expand a bomb then raises MemoryError, which no `except DockyardError` catches.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    current = _vm_size()
    if current is None:  # not Linux: the per-case time check still applies
        yield
        return
    limit = current + headroom_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
