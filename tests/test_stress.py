"""Stress as regression tests: many kernels at once, many owners killed at once, a crashed Jupyter server.

Each test counts and removes only the containers it started (by container id, kernel id or owner PID):
other sessions may run dockyard kernels on the same engine. The figures each test prints (seconds) are
for the CI log; the asserts are about behaviour, not speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from jupyter_client import AsyncKernelManager

from .helpers import force_remove, install_kernelspecs, owned_containers, remove_leftovers, start_jupyter, stop_jupyter

pytestmark = pytest.mark.engine

KERNEL = "dockyard-minimal-cpu"  # the generated kernelspec, as `dockyard kernels install` writes it
SCRIPT = Path(__file__).with_name("kernel_script.py")


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory, built) -> Iterator[Path]:
    """The generated kernelspecs on JUPYTER_PATH for this process and its helpers; a private runtime dir."""
    built("minimal:cpu")
    path = install_kernelspecs(tmp_path_factory.mktemp("stress-prefix"))
    runtime = tmp_path_factory.mktemp("stress-runtime")
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
    os.environ.update(JUPYTER_PATH=str(path), JUPYTER_RUNTIME_DIR=str(runtime))
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _status(client, cid: str) -> str:
    try:
        return str(client.containers.get(cid).status)
    except docker.errors.NotFound:
        return "gone"


def _gone(client, cid: str) -> bool:
    return _status(client, cid) == "gone"


def _remove_ids(client, ids: list[str]) -> list[str]:
    """Force-removes those of ids that still exist; returns their names (a test asserts it is empty)."""
    left = []
    for cid in ids:
        with contextlib.suppress(docker.errors.NotFound):
            left.append(client.containers.get(cid))
    return force_remove(left)


def test_24_kernels_at_once_each_sees_only_its_own_workspace(jupyter_path, tmp_path, docker_client):
    n = 24
    dirs = [tmp_path / f"ws{i:02d}" for i in range(n)]
    for i, d in enumerate(dirs):
        d.mkdir()
        (d / f"marker{i:02d}").write_text(str(i))
    markers = [str(d / f"marker{i:02d}") for i, d in enumerate(dirs)]
    # Each kernel lists the markers it can see and what lies beside its workspace, and writes a file of its own.
    code = (
        "import os, json; open('mine.txt', 'w').write(os.getcwd()); "
        f"print(json.dumps({{'cwd': os.getcwd(), 'seen': [p for p in {markers!r} if os.path.exists(p)], "
        "'others': sorted(os.listdir('..')) if os.access('..', os.R_OK) else None}))"
    )
    cids: list[str] = []

    async def scenario() -> tuple[list[dict], float, float]:
        kms = [AsyncKernelManager(kernel_name=KERNEL) for _ in dirs]
        clients = []
        t0 = time.monotonic()
        try:
            results = await asyncio.gather(
                *(km.start_kernel(cwd=str(d)) for km, d in zip(kms, dirs, strict=True)), return_exceptions=True
            )
            cids.extend(km.provisioner.container_id for km in kms if km.has_kernel)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"{len(errors)} of {n} kernels failed to start: {errors[0]}"
            clients = [km.client() for km in kms]
            for kc in clients:
                kc.start_channels()
            await asyncio.gather(*(kc.wait_for_ready(timeout=180) for kc in clients))
            started = time.monotonic() - t0

            async def ask(kc) -> dict:
                out: list[str] = []
                reply = await kc.execute_interactive(
                    code, timeout=120, output_hook=lambda m: out.append(m["content"].get("text", ""))
                )
                assert reply["content"]["status"] == "ok", reply["content"]
                return json.loads("".join(out))

            answers = await asyncio.gather(*(ask(kc) for kc in clients))  # all 24 busy at once
            return answers, started, time.monotonic() - t0
        finally:
            for kc in clients:
                kc.stop_channels()
            await asyncio.gather(*(km.shutdown_kernel(now=True) for km in kms if km.has_kernel))

    try:
        answers, started, total = asyncio.run(scenario())
        print(f"{n} kernels: all ready in {started:.1f} s, all answered in {total:.1f} s")
        assert len(set(cids)) == n
        for i, (d, answer) in enumerate(zip(dirs, answers, strict=True)):
            real = str(d.resolve())
            assert answer["cwd"] == real
            assert answer["seen"] == [markers[i]], f"kernel {i} sees {answer['seen']}"
            assert answer["others"] == [d.name]  # '..' in the container holds only the mount point, not the others
            assert (d / "mine.txt").read_text() == real
    finally:
        left = _remove_ids(docker_client, cids)
    assert not left, f"kernel containers left behind: {left}"


def _hold(cwd: Path) -> subprocess.Popen:
    """A helper process that starts a kernel and holds it (it prints the container id when ready)."""
    return subprocess.Popen([sys.executable, str(SCRIPT), "hold", KERNEL, str(cwd)], stdout=subprocess.PIPE, text=True)


def test_20_owners_sigkilled_then_gc_leaves_none_of_their_containers(jupyter_path, tmp_path, docker_client):
    n = 20
    procs: list[subprocess.Popen] = []
    cids: list[str] = []
    t0 = time.monotonic()
    try:
        procs = [_hold(tmp_path) for _ in range(n)]
        for p in procs:
            line = p.stdout.readline()
            assert line, f"helper exited early with {p.wait()}"
            cids.append(json.loads(line)["container_id"])
        ready = time.monotonic() - t0
        assert len(set(cids)) == n
        assert all(docker_client.containers.get(c).status == "running" for c in cids)
        for p in procs:
            p.send_signal(signal.SIGKILL)  # all owners die while their kernels run
        for p in procs:
            p.wait()
        t1 = time.monotonic()
        gc = subprocess.run(
            [sys.executable, "-m", "dockyard", "kernels", "gc"], capture_output=True, text=True, timeout=120
        )
        print(f"{n} held kernels ready in {ready:.1f} s; gc took {time.monotonic() - t1:.1f} s")
        assert gc.returncode == 0, gc.stderr
        # gc may also meet orphans of other sessions, and their reapers ours: count only our containers.
        assert [c for c in cids if not _gone(docker_client, c)] == [], gc.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        left = _remove_ids(docker_client, cids)
    assert not left, f"kernel containers left behind: {left}"


def test_server_sigkilled_with_4_kernels_then_next_server_reaps_them(jupyter_path, tmp_path, docker_client):
    first = start_jupyter("server", jupyter_path, tmp_path / "first")
    second = None
    orphans: list[str] = []
    try:
        for i in range(4):
            r = first.new_session(KERNEL, name=f"nb{i}.ipynb")
            assert r.status_code == 201, f"{r.text}\n{first.log.read_text()[-3000:]}"
        orphans = [c.id for c in owned_containers(docker_client, first.proc.pid)]
        assert len(orphans) == 4
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        # Still running: nobody cleaned up (unless another session's kernel start reaped them meanwhile).
        assert {_status(docker_client, c) for c in orphans} <= {"running", "gone"}

        second = start_jupyter("server", jupyter_path, tmp_path / "second")
        t0 = time.monotonic()
        r = second.new_session(KERNEL, name="after-crash.ipynb")
        assert r.status_code == 201, f"{r.text}\n{second.log.read_text()[-3000:]}"
        print(f"kernel start on the new server, reaping 4 orphans: {time.monotonic() - t0:.1f} s")
        assert [c for c in orphans if not _gone(docker_client, c)] == []
        [kept] = owned_containers(docker_client, second.proc.pid)  # the new server's own kernel runs on
        assert kept.status == "running"
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait()
        left = _remove_ids(docker_client, orphans) + remove_leftovers(docker_client, first.proc.pid)
        if second is not None:
            stop_jupyter(second)
            left += remove_leftovers(docker_client, second.proc.pid, wait=10)
    assert not left, f"kernel containers left behind: {left}"
