"""Container kernels end to end: the DockerProvisioner under real jupyter_client KernelManagers.

Every test starts real containers from the minimal:cpu image and must leave no kernel container behind
(autouse fixture below). The pure parts (argument building, the reaper's judgement) are in test_kernel_units.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from jupyter_client import AsyncKernelManager, KernelManager
from jupyter_client.connect import LocalPortCache

from dockyard import gpu, specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.errors import DockyardError
from dockyard.images.build import build
from dockyard.images.lockfile import installed_pins, load_lock, lock_pins
from dockyard.images.naming import image_repository
from dockyard.images.plan import BuildPlan, make_plan
from dockyard.kernel.container import (
    CONNECTION_FILE,
)
from dockyard.kernel.provisioner import DockerProvisioner
from dockyard.kernel.reaper import owner_id, reap
from dockyard.labels import LABEL_ENV, LABEL_KERNEL_ID, LABEL_OWNER, LABEL_VARIANT

from .helpers import (
    KERNEL_SCRIPT,
    LOCAL_BASE,
    REPO,
    SITE_ENV,
    TEST_UID,
    copy_locks,
    gone,
    kernel,
    run,
    run_json,
    wait_busy,
    write_kernelspec,
)

pytestmark = pytest.mark.engine

# Processes whose kernel containers the leftover check counts: this one plus helper processes.
_OWNER_PIDS: set[int] = {os.getpid()}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A world-readable scratch dir (pytest's tmp dirs are mode 700, closed to the unprivileged user)."""
    d = Path(tempfile.mkdtemp(prefix="dockyard-kernel-tests-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def kernelspecs(shared_dir: Path, built) -> Iterator[Path]:
    """Test kernelspecs on JUPYTER_PATH (the contract `dockyard kernels generate` writes), and a private runtime dir."""
    built("minimal:cpu")
    root = shared_dir / "jupyter"
    cfg = {"env": "minimal", "variant": "cpu"}
    write_kernelspec(root, "dy-minimal", cfg, env={"FOO": "bar"})
    write_kernelspec(root, "dy-bridge", {**cfg, "network": "bridge"})
    write_kernelspec(root, "dy-curve", cfg, curve=True)
    write_kernelspec(
        root,
        "dy-crash",
        {**cfg, "startup_timeout": 30},
        argv=["python", "-c", "import sys; print('boom: no kernel today'); sys.exit(3)"],
    )
    write_kernelspec(root, "dy-noimage", {"image": "dockyard/does-not-exist:nope"})
    write_kernelspec(root, "dy-unbuilt", {"env": "kerneltest", "variant": "cpu"})
    write_kernelspec(root, "dy-gpu", {"env": "minimal", "variant": "cuda", "gpu": "required"})
    write_kernelspec(root, "dy-rooted", {**cfg, "workspace_root": str(shared_dir / "root")})
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    runtime = shared_dir / "runtime"
    runtime.mkdir()
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
    os.environ["JUPYTER_PATH"] = str(root)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _ours(container) -> bool:
    host, _, rest = container.labels.get(LABEL_OWNER, "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and int(pid) in _OWNER_PIDS


@pytest.fixture(autouse=True)
def no_kernel_container_left(docker_client):
    """Each test leaves no labelled kernel container of its own processes (others may run in parallel)."""
    before = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})}
    yield
    left = [
        c
        for c in docker_client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})
        if c.id not in before and _ours(c)
    ]
    for c in left:
        c.remove(force=True)
    assert not left, f"kernel containers left behind: {[c.name for c in left]}"


def _listeners(ports: set[int]) -> dict[int, set[str]]:
    """LISTEN sockets on the given ports from /proc/net/tcp{,6}: port → local addresses."""
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, port_hex = fields[1].split(":")
            port = int(port_hex, 16)
            if fields[3] != "0A" or port not in ports:
                continue
            if len(addr) == 8:
                ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
            else:
                raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            found.setdefault(port, set()).add(ip)
    return found


def _ports(km: KernelManager) -> set[int]:
    return {km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port}


# --- running in the container ----------------------------------------------------------------


def test_kernel_runs_in_container_in_notebook_dir(kernelspecs, tmp_path, docker_client):
    nb = tmp_path / "project" / "notebooks"
    nb.mkdir(parents=True)
    (nb / "data.csv").write_text("a,b\n1,2\n")
    km_env = {
        **os.environ,
        "JPY_SESSION_NAME": str(nb / "x.ipynb"),
        "DY_PASSED": "yes",
        "VIRTUAL_ENV": "/host/venv",
        "PYTHONPATH": "/host/lib",
        "JPY_PARENT_PID": str(os.getpid()),
    }
    with kernel("dy-minimal", nb, env=km_env) as (km, kc):
        info = run_json(
            kc,
            """
import os, json, getpass, pathlib
open('written_by_kernel.txt', 'w').write('hello')
pathlib.Path.home().joinpath('scratch').write_text('ok')  # HOME is writable
print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ), 'uid': os.getuid(), 'gid': os.getgid(),
                  'user': getpass.getuser(), 'kit': os.path.exists('/opt/dockyard/kit/environment.json'),
                  'data': open('data.csv').read(), 'exe': __import__('sys').executable}))
""",
        )
        cid = km.provisioner.container_id
        assert docker_client.containers.get(cid).status == "running"
    assert info["cwd"] == str(nb)
    assert info["kit"]
    assert info["exe"].startswith("/opt/dockyard/venv/")
    env = info["env"]
    assert env["DOCKYARD_ENV"] == "minimal"
    assert env["DOCKYARD_VARIANT"] == "cpu"
    assert env["FOO"] == "bar"  # kernelspec env
    assert env["JPY_SESSION_NAME"] == str(nb / "x.ipynb")
    assert env["DY_PASSED"] == "yes"
    assert env["PATH"].startswith("/opt/dockyard/venv/bin")  # the image's, not the host's
    assert env["VIRTUAL_ENV"] == "/opt/dockyard/venv"
    for host_only in ("PYTHONPATH", "JPY_PARENT_PID"):
        assert host_only not in env
    assert env["HOME"] == "/home/dockyard-user"
    assert info["data"] == "a,b\n1,2\n"
    assert (info["uid"], info["gid"]) == (os.getuid(), os.getgid())
    written = nb / "written_by_kernel.txt"
    assert written.read_text() == "hello"
    assert (written.stat().st_uid, written.stat().st_gid) == (os.getuid(), os.getgid())
    assert gone(docker_client, cid)


def test_kernel_holds_exactly_the_locked_packages(kernelspecs, tmp_path):
    """Parity: `pip freeze` inside a running container kernel is the lock's set of packages and versions."""
    with kernel("dy-minimal", tmp_path) as (_, kc):
        content, out = run(
            kc,
            "import subprocess, sys; print(subprocess.run([sys.executable, '-m', 'pip', 'freeze', '--all'], "
            "capture_output=True, text=True, check=True).stdout)",
            timeout=60,
        )
    assert content["status"] == "ok", content
    lock = load_lock(*specs.resolve("minimal:cpu"))
    assert installed_pins(out, lock) == lock_pins(lock)


def test_ports_loopback_only_and_no_secret_in_container_config(kernelspecs, tmp_path, docker_client):
    km_env = {**os.environ}
    with kernel("dy-minimal", tmp_path, env=km_env) as (km, _kc):
        key = km.session.key.decode()
        assert len(key) >= 16
        assert key in Path(km.connection_file).read_text()
        ports = _ports(km)
        listeners = _listeners(ports)
        assert set(listeners) == ports, f"kernel ports not all listening: {listeners}"
        assert all(addrs == {"127.0.0.1"} for addrs in listeners.values()), listeners
        cid = km.provisioner.container_id
        attrs = docker_client.api.inspect_container(cid)
        assert key not in json.dumps(attrs)
        hc, cfg = attrs["HostConfig"], attrs["Config"]
        assert hc["Privileged"] is False
        assert hc["CapDrop"] == ["ALL"]
        assert hc["SecurityOpt"] == ["no-new-privileges"]
        assert hc["Init"] is True
        assert hc["NetworkMode"] == "host"
        assert hc["ShmSize"] == 1024**3
        assert cfg["User"] == f"{os.getuid()}:{os.getgid()}"
        assert "/home/dockyard-user" in hc["Tmpfs"]
        assert cfg["Cmd"] == ["python", "-m", "ipykernel_launcher", "-f", CONNECTION_FILE]
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        assert set(mounts) == {str(tmp_path.resolve()), CONNECTION_FILE}
        assert mounts[CONNECTION_FILE]["RW"] is False
        assert mounts[str(tmp_path.resolve())]["RW"] is True
        assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
        labels = cfg["Labels"]
        assert labels[LABEL_KERNEL_ID] == km.kernel_id
        assert labels[LABEL_ENV] == "minimal"
        assert labels[LABEL_VARIANT] == "cpu"
        assert labels[LABEL_OWNER] == owner_id()
        assert attrs["Name"] == f"/dockyard-minimal-cpu-{km.kernel_id[:8]}"
        assert not hc.get("DeviceRequests")  # a CPU kernel asks for no GPU
        # Persistence: another provisioner instance can take over the running container from the info.
        info = asyncio.run(km.provisioner.get_provisioner_info())
        assert info["container_id"] == cid
        assert info["container_name"] == attrs["Name"].lstrip("/")
        other = DockerProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec)
        asyncio.run(other.load_provisioner_info(info))
        assert other.has_process
        assert asyncio.run(other.poll()) is None


def test_bridge_network_publishes_on_loopback_only(kernelspecs, tmp_path, docker_client):
    with kernel("dy-bridge", tmp_path) as (km, kc):
        _, out = run(kc, "print(6 * 7)")
        assert out.strip() == "42"
        attrs = docker_client.api.inspect_container(km.provisioner.container_id)
        bindings = attrs["HostConfig"]["PortBindings"]
        assert {int(k.split("/")[0]) for k in bindings} == _ports(km)
        assert all(b == [{"HostIp": "127.0.0.1", "HostPort": k.split("/")[0]}] for k, b in bindings.items())
        assert all(addrs <= {"127.0.0.1"} for addrs in _listeners(_ports(km)).values())  # docker-proxy, if any
        copy = km.provisioner._private_file
        assert copy is not None
        assert json.loads(copy.read_text())["ip"] == "0.0.0.0"
        assert copy.stat().st_mode & 0o077 == 0
        assert json.loads(Path(km.connection_file).read_text())["ip"] == "127.0.0.1"
    assert not copy.exists()


def test_curve_encrypted_transport(kernelspecs, tmp_path, docker_client):
    km = KernelManager(kernel_name="dy-curve", transport_encryption="required")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        assert km.curve_publickey is not None
        assert run(kc, "print('encrypted')")[1].strip() == "encrypted"
        attrs = docker_client.api.inspect_container(km.provisioner.container_id)
        assert km.curve_secretkey.decode() not in json.dumps(attrs)
        assert km.session.key.decode() not in json.dumps(attrs)
        # ipykernel rewrites its connection file under CurveZMQ: it gets a private copy, never the manager's file.
        copy = km.provisioner._private_file
        mount = next(m for m in attrs["Mounts"] if m["Destination"] == CONNECTION_FILE)
        assert copy is not None
        assert mount["Source"] == str(copy)
        assert copy.stat().st_mode & 0o077 == 0
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    assert not copy.exists()


# --- interrupt, restart, shutdown, kill ----------------------------------------------------


def test_interrupt_restart_shutdown(kernelspecs, tmp_path, docker_client):
    with kernel("dy-minimal", tmp_path) as (km, kc):
        run(kc, "x = 1; open('before_restart.txt', 'w').write('1')")
        msg_id = kc.execute("while True: pass")
        wait_busy(kc, msg_id)
        time.sleep(0.3)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert km.is_alive()
        assert run(kc, "print(x + 41)")[1].strip() == "42"  # same kernel, state intact

        first = km.provisioner.container_id
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)
        second = km.provisioner.container_id
        assert second != first
        assert gone(docker_client, first)
        info = run_json(
            kc,
            "import os, json; print(json.dumps({'x': 'x' in globals(), 'cwd': os.getcwd(), "
            "'foo': os.environ.get('FOO'), 'file': open('before_restart.txt').read()}))",
        )
        assert info == {"x": False, "cwd": str(tmp_path.resolve()), "foo": "bar", "file": "1"}
        ports = _ports(km)
        assert ports <= LocalPortCache.instance().currently_used_ports
        km.shutdown_kernel()
        assert not km.is_alive()
        assert gone(docker_client, second)
        assert not km.has_kernel
        assert not ports & LocalPortCache.instance().currently_used_ports  # handed back, as LocalProvisioner does


def test_interrupt_reaches_the_cells_child_processes(kernelspecs, tmp_path):
    """Interrupt reaches the kernel's whole process group, as jupyter_client's killpg does for a local kernel.

    os.system ignores SIGINT in the kernel while it waits, so only a signal to the child (the group) stops
    the cell; signalling the kernel process alone left it running until the child ended by itself.
    """
    with kernel("dy-minimal", tmp_path) as (km, kc):
        msg_id = kc.execute(
            "import os, time; t0 = time.monotonic(); status = os.system('sleep 30'); took = time.monotonic() - t0"
        )
        wait_busy(kc, msg_id)
        time.sleep(1)  # the sleep is running now
        start = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=45)
        stopped = time.monotonic() - start
        assert reply["parent_header"]["msg_id"] == msg_id
        assert stopped < 5, f"the cell ran on for {stopped:.0f} s after the interrupt"
        info = run_json(
            kc,
            "import json, os; print(json.dumps({'signal': os.WIFSIGNALED(status) and os.WTERMSIG(status), "
            "'code': os.WIFEXITED(status) and os.WEXITSTATUS(status), 'took': took}))",
        )
        assert info["signal"] == signal.SIGINT or info["code"] == 128 + signal.SIGINT, info  # sleep itself got SIGINT
        assert info["took"] < 10, info
        assert km.is_alive()


def test_restart_after_rebuild_runs_the_new_image(kernelspecs, built, tmp_envs, tmp_path, docker_client, caplog):
    """A restart resolves the spec again, as a fresh start would.

    After the spec is edited and built, the restarted kernel runs the new image. After an edit that is not
    built yet, it keeps the image it had and the log says why and what to run (failing would leave a dead
    kernel behind Jupyter Server's bare "Exception restarting kernel"); once built, the next restart takes it.
    """
    original = built("minimal:cpu")  # layers cached: each edit below only adds its ENV layer and the kit
    stamp = time.time_ns()
    spec = tmp_envs / "minimal.yaml"
    copy_locks("minimal", tmp_envs)
    tags: list[str] = []

    def edit_and_plan(mark: str) -> BuildPlan:
        spec.write_text((REPO / "envs" / "minimal.yaml").read_text() + f'env:\n  DY_MARK: "{mark}-{stamp}"\n')
        s = specs.load("minimal")
        plan = make_plan(s, s.variant("cpu"), load_settings().build)
        tags.append(plan.tag)
        return plan

    def image_and_mark(km: KernelManager, kc) -> tuple[str, str]:
        attrs = docker_client.api.inspect_container(km.provisioner.container_id)
        return attrs["Config"]["Image"], run(kc, "import os; print(os.environ['DY_MARK'])")[1].strip()

    try:
        first = edit_and_plan("one")
        build(docker_client, first, load_settings().build)
        with kernel("dy-minimal", tmp_path) as (km, kc):
            assert image_and_mark(km, kc) == (first.tag, f"one-{stamp}")
            second = edit_and_plan("two")
            build(docker_client, second, load_settings().build)  # what `dockyard build minimal` does
            old = km.provisioner.container_id
            km.restart_kernel()
            kc.wait_for_ready(timeout=60)
            assert image_and_mark(km, kc) == (second.tag, f"two-{stamp}")
            assert gone(docker_client, old)

            third = edit_and_plan("three")  # edited, not built
            old = km.provisioner.container_id
            with caplog.at_level(logging.WARNING):
                km.restart_kernel()
            kc.wait_for_ready(timeout=60)
            assert image_and_mark(km, kc) == (second.tag, f"two-{stamp}")
            assert gone(docker_client, old)
            warning = f"restarts with its previous image {second.tag}, not the spec's current one: The image for "
            warning += f"minimal:cpu ({third.tag}) is not built yet"
            assert warning in caplog.text
            assert "Fix: run 'dockyard build minimal:cpu'" in caplog.text
            build(docker_client, third, load_settings().build)  # what the log says to do; then restart again
            km.restart_kernel()
            kc.wait_for_ready(timeout=60)
            assert image_and_mark(km, kc) == (third.tag, f"three-{stamp}")
    finally:
        docker_client.images.get(original.image_id).tag(image_repository("minimal"), "cpu")  # the suite's alias back
        for tag in tags:
            if find_image(docker_client, tag):
                docker_client.images.remove(tag)


@pytest.mark.parametrize("name", ["dy-minimal", "dy-bridge"])
def test_port_taken_meanwhile_starts_again_on_new_ports(kernelspecs, tmp_path, monkeypatch, caplog, name):
    """Ports are picked free here but bound seconds later, in the container: another process starting a kernel
    meanwhile can take one (20 helper processes starting kernels at once did). The start goes on, on new ports.

    The collision is made certain: the first port handed out is one this test keeps bound.
    """
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    cache = LocalPortCache.instance()
    real = cache.find_available_port
    first = iter([taken])
    monkeypatch.setattr(cache, "find_available_port", lambda ip: next(first, None) or real(ip))
    try:
        with caplog.at_level(logging.INFO), kernel(name, tmp_path) as (km, kc):
            assert run(kc, "print(6 * 7)")[1].strip() == "42"
            assert taken not in _ports(km)
            assert json.loads(Path(km.connection_file).read_text())["shell_port"] == km.shell_port
        assert "took one of the kernel's ports" in caplog.text
        assert "starting again on new ports" in caplog.text
    finally:
        squatter.close()


def test_kill_removes_container_and_cleanup_is_idempotent(kernelspecs, tmp_path, docker_client):
    km = KernelManager(kernel_name="dy-minimal")
    km.start_kernel(cwd=str(tmp_path))
    prov = km.provisioner
    cid = prov.container_id
    km.shutdown_kernel(now=True)
    assert gone(docker_client, cid)
    assert prov.container_id is None

    async def again() -> None:  # every step once more, on a container that is already gone (404s)
        prov.container_id = cid
        await prov.send_signal(signal.SIGINT)
        await prov.kill()
        await prov.terminate()
        assert await prov.poll() == -1
        await prov.cleanup()
        await prov.cleanup()
        assert await prov.poll() == 0
        assert not prov.has_process

    asyncio.run(again())


def test_container_removed_from_outside_then_restart(kernelspecs, tmp_path, docker_client):
    with kernel("dy-minimal", tmp_path) as (km, kc):
        cid = km.provisioner.container_id
        docker_client.containers.get(cid).remove(force=True)
        assert not km.is_alive()
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        assert run(kc, "print('back')")[1].strip() == "back"
        assert km.provisioner.container_id != cid


# --- orphans -------------------------------------------------------------------------------


def _orphan(cwd: Path) -> dict:
    """A kernel whose owning process was SIGKILLed: its container keeps running."""
    proc = subprocess.Popen(
        [sys.executable, str(KERNEL_SCRIPT), "hold", "dy-minimal", str(cwd)], stdout=subprocess.PIPE, text=True
    )
    _OWNER_PIDS.add(proc.pid)
    try:
        line = proc.stdout.readline()
        assert line, f"helper exited early with {proc.wait()}"
        return {**json.loads(line), "pid": proc.pid}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_owner_sigkilled_then_reaped(kernelspecs, tmp_path, docker_client):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first, second = pool.map(_orphan, [tmp_path, tmp_path])
    containers = [docker_client.containers.get(o["container_id"]) for o in (first, second)]
    for c, o in zip(containers, (first, second), strict=True):
        assert c.status == "running"
        assert c.labels[LABEL_KERNEL_ID] == o["kernel_id"]
        assert c.labels[LABEL_OWNER].split(":")[1] == str(o["pid"])
    # `dockyard kernels gc` calls reap(); it removes both orphans (and would keep live owners' kernels).
    assert sorted(reap(docker_client)) == sorted(c.name for c in containers)
    assert all(gone(docker_client, c.id) for c in containers)


def test_gc_removes_the_containers_of_dead_owners_only(docker_client, capsys):
    """`dockyard kernels gc` against real containers: a dead owner's (same PID, another start time: the PID was
    reused) goes, a live owner's stays."""
    from dockyard.cli import main

    host, pid, _start = owner_id().split(":")
    made = []
    try:
        for kernel_id, owner in (("gc-dead", f"{host}:{pid}:1"), ("gc-live", owner_id())):
            made.append(
                docker_client.containers.create(
                    LOCAL_BASE,
                    ["sleep", "60"],
                    name=f"dockyard-test-{kernel_id}-{os.getpid()}",
                    labels={LABEL_KERNEL_ID: kernel_id, LABEL_OWNER: owner},
                )
            )
        assert main(["kernels", "gc"]) == 0
        out = capsys.readouterr().out
        assert made[0].name in out
        assert made[1].name not in out
        assert gone(docker_client, made[0].id)
        assert not gone(docker_client, made[1].id)
    finally:
        for c in made:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def test_kernel_start_reaps_orphans(kernelspecs, tmp_path, docker_client):
    orphan = _orphan(tmp_path)
    with kernel("dy-minimal", tmp_path) as (km, _kc):  # the provisioner reaps when it starts
        assert gone(docker_client, orphan["container_id"])
        assert not gone(docker_client, km.provisioner.container_id)


# --- many at once ------------------------------------------------------------------------------


def test_eight_kernels_at_once_each_sees_only_its_workspace(kernelspecs, tmp_path, docker_client):
    dirs = [tmp_path / f"ws{i}" for i in range(8)]
    markers = [d / f"marker{i}" for i, d in enumerate(dirs)]
    for d, m in zip(dirs, markers, strict=True):
        d.mkdir()
        m.write_text("x")
    seen = f"[p for p in {[str(m) for m in markers]!r} if os.path.exists(p)]"
    code = f"import os, json; print(json.dumps({{'cwd': os.getcwd(), 'seen': {seen}}}))"

    async def scenario() -> tuple[list[dict], float, set[str]]:
        kms = [AsyncKernelManager(kernel_name="dy-minimal") for _ in dirs]
        clients = []
        t0 = time.monotonic()
        try:
            await asyncio.gather(*(km.start_kernel(cwd=str(d)) for km, d in zip(kms, dirs, strict=True)))
            cids = {km.provisioner.container_id for km in kms}
            clients = [km.client() for km in kms]
            for kc in clients:
                kc.start_channels()
            await asyncio.gather(*(kc.wait_for_ready(timeout=90) for kc in clients))
            results = []
            for kc in clients:
                out: list[str] = []
                reply = await kc.execute_interactive(
                    code, timeout=60, output_hook=lambda m, out=out: out.append(m["content"].get("text", ""))
                )
                assert reply["content"]["status"] == "ok", reply["content"]
                results.append(json.loads("".join(out)))
            return results, time.monotonic() - t0, cids
        finally:
            for kc in clients:
                kc.stop_channels()
            await asyncio.gather(*(km.shutdown_kernel() for km in kms if km.has_kernel))

    results, seconds, cids = asyncio.run(scenario())
    print(f"8 kernels started and executed in {seconds:.1f} s")
    assert len(cids) == 8
    for d, m, r in zip(dirs, markers, results, strict=True):
        assert r == {"cwd": str(d.resolve()), "seen": [str(m)]}
    assert all(gone(docker_client, c) for c in cids)


# --- unprivileged user ---------------------------------------------------------------------


def test_unprivileged_user_owns_what_the_kernel_writes(kernelspecs, user_python, shared_dir, docker_client):
    base = shared_dir / "as-user"
    home, runtime, ws = base / "home", base / "runtime", base / "work"
    for d in (base, home, runtime, ws):
        d.mkdir(parents=True)
        os.chown(d, TEST_UID, TEST_UID)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "JUPYTER_PATH": str(kernelspecs),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "DOCKYARD_CONFIG": os.environ["DOCKYARD_CONFIG"],
        **{k: os.environ.get(k, v) for k, v in SITE_ENV.items()},
    }
    res = subprocess.run(
        [
            shutil.which("runuser") or "runuser",
            "-u",
            "dockyard-test",
            "--",
            str(user_python),
            str(KERNEL_SCRIPT),
            "write",
            "dy-minimal",
            str(ws),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["kernel"] == {"uid": TEST_UID, "cwd": str(ws)}
    written = ws / "from_kernel.txt"
    assert written.read_text() == "hi"
    assert (written.stat().st_uid, written.stat().st_gid) == (TEST_UID, TEST_UID)
    assert gone(docker_client, report["container_id"])


# --- errors: one clear message from start_kernel ---------------------------------------------


def _start_error(name: str, cwd: Path) -> str:
    km = KernelManager(kernel_name=name)
    with pytest.raises(DockyardError) as info:
        km.start_kernel(cwd=str(cwd))
    return str(info.value)


def test_container_exiting_at_start_shows_its_log(kernelspecs, tmp_path):
    before = set(LocalPortCache.instance().currently_used_ports)
    msg = _start_error("dy-crash", tmp_path)
    assert LocalPortCache.instance().currently_used_ports == before  # a failed start keeps no ports
    assert "exited with code 3 before the kernel was ready" in msg
    assert "boom: no kernel today" in msg
    assert "minimal:cpu" in msg


def test_missing_image_names_the_build_command(kernelspecs, tmp_envs, tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_AUTO_BUILD", raising=False)
    (tmp_envs / "kerneltest.yaml").write_text(
        (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: kerneltest")
    )
    msg = _start_error("dy-unbuilt", tmp_path)
    assert "is not built yet" in msg
    assert "'dockyard build kerneltest:cpu'" in msg
    assert "DOCKYARD_AUTO_BUILD=1" in msg
    assert "dockyard/does-not-exist:nope" in _start_error("dy-noimage", tmp_path)


def test_other_site_settings_are_named_as_the_likely_cause(kernelspecs, built, tmp_path, monkeypatch):
    """The server sees other settings than `dockyard build` did: the message says an older image exists."""
    built("minimal:cpu")
    monkeypatch.delenv("DOCKYARD_AUTO_BUILD", raising=False)
    monkeypatch.setenv("DOCKYARD_PIP_INDEX_URL", "https://mirror.invalid/simple")  # another site → another content tag
    msg = _start_error("dy-minimal", tmp_path)
    assert "is not built yet" in msg
    assert "other site settings exists: dockyard/minimal:cpu" in msg


def test_gpu_required_without_gpu_is_refused(kernelspecs, tmp_path, docker_client):
    if gpu.assess(docker_client, docker_client.info(), fresh=True).usable:
        pytest.skip("this engine offers GPUs")
    assert "requires a GPU" in _start_error("dy-gpu", tmp_path)


def test_bad_config_and_workspace_errors(kernelspecs, shared_dir, tmp_path, docker_client):
    root = shared_dir / "root"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "top.txt").write_text("t")
    assert "outside the kernel workspace root" in _start_error("dy-rooted", tmp_path)
    with kernel("dy-rooted", root / "sub") as (_km, kc):  # the root is mounted, the kernel works in sub/
        info = run_json(
            kc, "import os, json; print(json.dumps({'cwd': os.getcwd(), 'top': open('../top.txt').read()}))"
        )
        assert info == {"cwd": str(root / "sub"), "top": "t"}
