"""The warm kernel pool on the real engine: a pooled kernel is the cold kernel, claims are exclusive, nothing is left.

Kernelspecs, helpers and the unprivileged-user set-up come from test_kernel_lifecycle.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import jupyter_kernel_test
import pytest
from jupyter_client import KernelManager
from jupyter_client.connect import LocalPortCache

from dockyard.cli import main as dockyard_main
from dockyard.config import load_settings
from dockyard.frontends.panel import environments
from dockyard.kernel.pool import pooled as pool
from dockyard.kernel.pool.fill import fill_for
from dockyard.kernel.pool.keeper import PoolKeeper
from dockyard.labels import LABEL_OWNER, LABEL_POOL_DIR, LABEL_POOL_KEY
from tests.helpers import (
    KERNEL_SCRIPT,
    SITE_ENV,
    TEST_UID,
    gone,
    kernel,
    remove_leftovers,
    run,
    run_json,
    start_jupyter,
    stop_jupyter,
    wait_busy,
    write_kernelspec,
)

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

# What a notebook can see of its kernel. HOSTNAME is the container's id, different for any two containers.
FACTS = (
    "import os, sys, json, pwd; print(json.dumps({'cwd': os.getcwd(), 'files': sorted(os.listdir('.')), "
    "'uid': os.getuid(), 'gid': os.getgid(), 'groups': sorted(os.getgroups()), 'umask': os.umask(0o22), "
    "'home': sorted(os.listdir(os.path.expanduser('~'))), 'path': sys.path, 'argv': sys.argv, "
    "'env': {k: v for k, v in os.environ.items() if k != 'HOSTNAME'}, 'dh': [str(d) for d in _dh], "
    "'modules': sorted(sys.modules), 'executable': sys.executable, 'pid1': open('/proc/1/cmdline').read()}))"
)
# The container settings that make a kernel what it is (kernel/container.py), from `docker inspect`.
HOST_CONFIG = ("Privileged", "CapDrop", "SecurityOpt", "Init", "ShmSize", "Memory", "NanoCpus", "NetworkMode", "Tmpfs")


@pytest.fixture(scope="module")
def shared(built) -> Iterator[Path]:
    """test_kernel_lifecycle's dy-minimal kernelspec on JUPYTER_PATH, a private runtime dir (pooled containers'
    run directories go there), in a world-readable dir the unprivileged test user can use too."""
    built("minimal:cpu")
    d = Path(tempfile.mkdtemp(prefix="dockyard-pool-tests-"))
    d.chmod(0o755)
    root = d / "jupyter"
    write_kernelspec(root, "dy-minimal", {"env": "minimal", "variant": "cpu"}, env={"FOO": "bar"})
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    (d / "runtime").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(d / "runtime"))
        yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def keeper(shared, monkeypatch, docker_client):
    """A warm pool for this test: a fresh keeper (this process owns its containers), closed and checked after."""
    monkeypatch.setenv("DOCKYARD_POOL_SIZE", "1")
    k = PoolKeeper.instance()
    yield k
    k.close()
    mine = [c for c in docker_client.containers.list(all=True, filters={"label": LABEL_POOL_KEY}) if _owned(c, k)]
    for c in mine:
        c.remove(force=True)
    assert not mine, f"pooled containers left: {[c.name for c in mine]}"
    root = pool.pool_root()
    left = [p.name for p in root.iterdir()] if root.exists() else []
    assert not left, f"run directories left in {root}: {left}"


def _owned(container, k: PoolKeeper) -> bool:
    return container.labels.get(LABEL_OWNER) == k.owner


def _fill(cwd: Path, count: int = 1) -> list[pool.Pooled]:
    made = fill_for("dy-minimal", cwd, count, load_settings().kernels.pool)
    assert len(made) == count, PoolKeeper.instance().last_error
    return made


def _claimed_from(km: KernelManager, made: list[pool.Pooled]) -> bool:
    return km.provisioner.container_id in {p.id for p in made}


def test_pooled_kernel_is_the_cold_kernel(keeper, tmp_path, docker_client, monkeypatch):
    (tmp_path / "data.txt").write_text("x")
    monkeypatch.setenv("DOCKYARD_POOL_SIZE", "0")  # the cold reference: no claim, no refill
    with kernel("dy-minimal", tmp_path) as (km, kc):
        assert km.provisioner._pool_dir is None
        cold = run_json(kc, FACTS)
        cold_attrs = docker_client.api.inspect_container(km.provisioner.container_id)
    monkeypatch.setenv("DOCKYARD_POOL_SIZE", "1")
    made = _fill(tmp_path)
    with kernel("dy-minimal", tmp_path) as (km, kc):
        assert _claimed_from(km, made)
        warm = run_json(kc, FACTS)
        warm_attrs = docker_client.api.inspect_container(km.provisioner.container_id)
        name = km.provisioner.container_name
    assert name == f"dockyard-minimal-cpu-{km.kernel_id[:8]}"  # renamed like a cold kernel's container
    assert set(cold.pop("modules")) <= set(warm.pop("modules"))  # the pool may have imported more, never less
    # docker-init is PID 1 in both; its command line names pool_kernel.py instead of `-m ipykernel_launcher`
    # (docs/pool.md lists this among what differs).
    assert warm.pop("pid1").split("\0")[:3] == cold.pop("pid1").split("\0")[:3] == ["/sbin/docker-init", "--", "python"]
    assert warm == cold
    assert warm["cwd"] == str(tmp_path.resolve())
    for key in HOST_CONFIG:
        assert warm_attrs["HostConfig"][key] == cold_attrs["HostConfig"][key], key
    assert warm_attrs["Config"]["User"] == cold_attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    workspace = [m for m in warm_attrs["Mounts"] if m["Destination"] == str(tmp_path.resolve())]
    assert [(m["Source"], m["RW"]) for m in workspace] == [(str(tmp_path.resolve()), True)]
    assert gone(docker_client, made[0].id)
    assert not made[0].run_dir.exists()


def test_pooled_kernel_interrupt_restart_shutdown(keeper, tmp_path, docker_client):
    made = _fill(tmp_path)
    with kernel("dy-minimal", tmp_path) as (km, kc):
        assert _claimed_from(km, made)
        # The pool refills behind the claim (in the background; top_up waits for that fill or makes it).
        keeper.top_up()
        refill = [p for p in keeper.mine() if p.state == "ready"]
        assert [p.key for p in refill] == [made[0].key]
        assert refill[0].id != made[0].id
        run(kc, "x = 1; open('before_restart.txt', 'w').write('1')")
        msg_id = kc.execute("while True: pass")
        wait_busy(kc, msg_id)
        time.sleep(0.3)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        # ipykernel 7 aborts execute requests until a "stop aborting" message posted on its shell channel thread
        # comes through; a request sent at once may overtake it (seen with cold kernels too, about 1 in 6).
        time.sleep(0.5)
        assert run(kc, "print(x + 41)")[1].strip() == "42"
        # A cell's child process gets the interrupt too (the pooled kernel leads its process group, as a cold one).
        msg_id = kc.execute("import os; os.system('sleep 30')")
        wait_busy(kc, msg_id)
        time.sleep(1)
        start = time.monotonic()
        km.interrupt_kernel()
        assert kc.get_shell_msg(timeout=45)["parent_header"]["msg_id"] == msg_id
        assert time.monotonic() - start < 5
        time.sleep(0.5)

        first = km.provisioner.container_id
        ports = {km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port}
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)  # the same client: a restart keeps the ports and key
        assert {km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port} == ports
        second = km.provisioner.container_id
        assert second != first
        assert gone(docker_client, first)
        assert not made[0].run_dir.exists()
        info = run_json(kc, "import os, json; print(json.dumps({'x': 'x' in globals(), 'cwd': os.getcwd()}))")
        assert info == {"x": False, "cwd": str(tmp_path.resolve())}
        km.shutdown_kernel()
        assert gone(docker_client, second)
    assert not ports & LocalPortCache.instance().currently_used_ports


def test_two_kernels_started_at_once_never_share_a_container(keeper, tmp_path, docker_client):
    made = _fill(tmp_path, 2)
    barrier = threading.Barrier(4)

    def start(_: int) -> KernelManager:
        km = KernelManager(kernel_name="dy-minimal")
        barrier.wait()
        km.start_kernel(cwd=str(tmp_path))
        return km

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        kms = list(ex.map(start, range(4)))
    try:
        ids = [km.provisioner.container_id for km in kms]
        assert len(set(ids)) == 4
        assert sorted(i for i in ids if i in {p.id for p in made}) == sorted(p.id for p in made)
        for km in kms:
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                assert run(kc, "print(6 * 7)")[1].strip() == "42"
            finally:
                kc.stop_channels()
    finally:
        for km in kms:
            km.shutdown_kernel(now=True)
    assert all(gone(docker_client, i) for i in ids)


_TAKE = """
import os, sys, time
from pathlib import Path
from dockyard.frontends.panel import environments
from dockyard.kernel.pool import pooled as pool
go = Path(sys.argv[1]) / "go"
while not go.exists():
    time.sleep(0.001)
print(int(pool._take(Path(sys.argv[1]), f"proc-{os.getpid()}")), flush=True)
"""


def test_claim_is_exclusive_across_processes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    procs = [
        subprocess.Popen([sys.executable, "-c", _TAKE, str(run_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(12)
    ]
    time.sleep(1.5)  # all are waiting on the go file
    (run_dir / "go").touch()
    wins = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert sum(wins) == 1
    assert (run_dir / "taken").read_text().startswith("proc-")


def test_drain_leaves_nothing_but_kernels(keeper, tmp_path, docker_client, capsys):
    made = _fill(tmp_path, 2)
    panel = environments.snapshot(None, {}, "minimal:cpu")  # what the panel's REST API answers
    assert panel["environments"][0]["pool"]["ready"] >= 2
    assert panel["pool"]["owner"] == keeper.owner
    assert {"ref": "minimal:cpu", "workspace": str(tmp_path.resolve()), "key": made[0].key} in panel["pool"]["wanted"]
    with kernel("dy-minimal", tmp_path) as (km, _kc):
        claimed = km.provisioner.container_id
        assert claimed in {p.id for p in made}
        # Pool size 1: the container left over is the refill the kernel start wants, so none is made meanwhile.
        assert dockyard_main(["kernels", "pool", "drain"]) == 0
        assert "1 pooled container(s) removed" in capsys.readouterr().out
        assert all(gone(docker_client, p.id) for p in made if p.id != claimed)
        assert not gone(docker_client, claimed)  # a claimed container is a kernel: drain keeps it
        assert dockyard_main(["kernels", "pool", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(p["name"], p["state"]) for p in listed if p["name"] == km.provisioner.container_name] == [
            (km.provisioner.container_name, "claimed")
        ]
    assert gone(docker_client, claimed)


def _hold(args: list[str], cwd: Path, marker: str) -> subprocess.Popen:
    env = {**os.environ, "DOCKYARD_POOL_SIZE": "1"}
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return proc
    raise AssertionError(f"exited with {proc.wait()} before {marker!r}: {''.join(lines)[-3000:]}")


def test_sigkilled_owners_then_gc_leave_nothing(shared, tmp_path, docker_client):
    """A `pool fill` and a process holding a kernel (it claims the oldest pooled container: the filler's, another
    process's) are SIGKILLed; `dockyard kernels gc` removes their containers, claimed or not, and run dirs."""
    fill = [sys.executable, "-m", "dockyard", "kernels", "pool", "fill", "dy-minimal", "-n", "2"]
    filler = _hold(fill, tmp_path, "holding")
    holder = _hold([sys.executable, str(KERNEL_SCRIPT), "hold", "dy-minimal", str(tmp_path)], tmp_path, "container_id")
    time.sleep(2.5)  # the holder's keeper refills behind its claim meanwhile: that container must go too
    pids = {filler.pid, holder.pid}
    for proc in (filler, holder):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    def theirs() -> list:
        found = docker_client.containers.list(all=True, filters={"label": LABEL_POOL_KEY})
        return [c for c in found if int(c.labels[LABEL_OWNER].split(":")[1]) in pids]

    time.sleep(1)  # a create request in flight when its client died still completes in the engine
    before = theirs()
    assert len(before) >= 2  # the filler's two, less what the holder claimed; the holder's kernel and refill
    assert any(c.name.startswith(pool.UNCLAIMED_PREFIX) for c in before)
    run_dirs = {Path(c.labels[LABEL_POOL_DIR]) for c in before}
    # A filler killed between making a run directory and creating its container leaves the directory alone:
    # the reaper removes it once it is a minute old.
    stray = pool.pool_root() / f"{pool.UNCLAIMED_PREFIX}minimal-cpu-stray"
    stray.mkdir(mode=0o700)
    os.utime(stray, (time.time() - 120, time.time() - 120))
    run_dirs.add(stray)
    assert dockyard_main(["kernels", "gc"]) == 0
    assert [c.name for c in theirs()] == []
    assert [d for d in run_dirs if d.exists()] == []


def test_unprivileged_user_gets_a_pooled_kernel(shared, user_python, docker_client):
    base = shared / "as-user"
    home, runtime, ws = base / "home", base / "runtime", base / "work"
    for d in (base, home, runtime, ws):
        d.mkdir(parents=True)
        os.chown(d, TEST_UID, TEST_UID)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "JUPYTER_PATH": str(shared / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "DOCKYARD_CONFIG": os.environ["DOCKYARD_CONFIG"],
        "DOCKYARD_POOL_SIZE": "1",
        **{k: os.environ.get(k, v) for k, v in SITE_ENV.items()},
    }
    runuser = shutil.which("runuser") or "runuser"
    cmd = [runuser, "-u", "dockyard-test", "--", str(user_python), str(KERNEL_SCRIPT), "write", "dy-minimal", str(ws)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["pooled"] is True
    assert report["kernel"] == {"uid": TEST_UID, "cwd": str(ws)}
    written = ws / "from_kernel.txt"
    assert (written.read_text(), written.stat().st_uid, written.stat().st_gid) == ("hi", TEST_UID, TEST_UID)
    assert gone(docker_client, report["container_id"])
    assert list((runtime / "dockyard-pool").iterdir()) == []
    left = [
        c.name
        for c in docker_client.containers.list(all=True, filters={"label": LABEL_POOL_KEY})
        if c.labels.get(LABEL_POOL_DIR, "").startswith(str(runtime))
    ]
    assert left == []


@pytest.mark.usefixtures("shared")
class TestPooledKernelConformance(jupyter_kernel_test.KernelTests):
    """jupyter_kernel_test's message-protocol suite against a kernel claimed from the pool."""

    kernel_name = "dy-minimal"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]  # noqa: RUF012 (the suite's API)
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]  # noqa: RUF012
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]  # noqa: RUF012
    invalid_code_samples = ["import = 7q"]  # noqa: RUF012
    code_page_something = "zip?"
    code_generate_error = "raise"
    code_execute_result = [{"code": "1+2+3", "result": "6"}]  # noqa: RUF012
    code_display_data = [  # noqa: RUF012
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))", "mime": "text/html"}
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    @classmethod
    def setUpClass(cls) -> None:
        cls._saved = os.environ.get("DOCKYARD_POOL_SIZE")
        os.environ["DOCKYARD_POOL_SIZE"] = "1"
        cls.keeper = PoolKeeper.instance()
        cls.made = _fill(Path.cwd())
        super().setUpClass()  # start_new_kernel in this directory: claims the pooled container
        cls.keeper.close()
        assert _claimed_from(cls.km, cls.made)

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        if cls._saved is None:
            os.environ.pop("DOCKYARD_POOL_SIZE", None)
        else:
            os.environ["DOCKYARD_POOL_SIZE"] = cls._saved
        try:
            cls.keeper.client.containers.get(cls.made[0].id)
            raise AssertionError("the claimed container outlived its kernel")
        except docker.errors.NotFound:
            pass


def _server_ready(docker_client, pid: int) -> list:
    """Pooled containers process pid filled whose kernel is ready for a claim."""
    found = docker_client.containers.list(all=True, filters={"label": LABEL_POOL_KEY})
    mine = [c for c in found if int(c.labels[LABEL_OWNER].split(":")[1]) == pid]
    return [c for c in mine if (Path(c.labels[LABEL_POOL_DIR]) / "ready").exists()]


def test_a_jupyter_server_keeps_the_pool_and_its_next_notebook_claims(shared, tmp_path, docker_client):
    """The owner in real use: a Jupyter server fills the pool behind a notebook's kernel, the next notebook's
    kernel claims it (its own notebook name in JPY_SESSION_NAME), restarts through the REST API, and the
    server's SIGTERM leaves no container of it."""
    server = start_jupyter("server", shared / "jupyter", tmp_path, DOCKYARD_POOL_SIZE="1")
    try:
        first = server.new_session("dy-minimal", "a.ipynb")
        assert first.status_code == 201, server.log_tail()
        deadline = time.monotonic() + 120
        while not (ready := _server_ready(docker_client, server.proc.pid)):
            assert time.monotonic() < deadline, f"the server filled no pool:\n{server.log_tail()}"
            time.sleep(0.5)
        second = server.new_session("dy-minimal", "b.ipynb")
        assert second.status_code == 201, server.log_tail()
        kernel_id = second.json()["kernel"]["id"]
        [claimed] = docker_client.containers.list(filters={"name": f"dockyard-minimal-cpu-{kernel_id[:8]}"})
        assert claimed.id == ready[0].id
        code = "import os, json; print(json.dumps([os.getcwd(), os.environ.get('JPY_SESSION_NAME', '')]))"
        cwd, session = json.loads(server.execute(kernel_id, code))
        assert cwd == str(server.root.resolve())
        assert session.endswith("b.ipynb")
        panel = server.api("GET", "/dockyard/api/environments/minimal:cpu").json()
        assert panel["pool"]["owner"].split(":")[1] == str(server.proc.pid)
        assert panel["environment"]["pool"]["claimed"] >= 1
        assert server.api("POST", f"/api/kernels/{kernel_id}/restart").status_code == 200
        assert json.loads(server.execute(kernel_id, code))[0] == cwd  # restarted cold, in the same directory
        assert gone(docker_client, claimed.id)
    finally:
        stop_jupyter(server)
    # Its kernels are shut down and its pooled container drained as it exits (no gc needed).
    assert remove_leftovers(docker_client, server.proc.pid, wait=15) == [], "containers outlived the server"
