"""The GPU lease ledger on the real engine, with real processes (no GPU needed: leases are engine containers that
name devices of a recorded inventory, tests/data/gpu/smi/). Many processes racing never give one device two
exclusive holders; a SIGKILLed holder's lease is freed by the reaper; a refusal names who holds what without
waiting; the queue serves first come first; shares and exclusive leases exclude each other."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.gpu import ledger
from dockyard.gpu.choice import parse
from dockyard.gpu.devices import parse_list
from dockyard.kernel import reaper
from dockyard.kernel.reaper import owner_id
from dockyard.labels import LABEL_GPU_LEASE, LABEL_GPU_LEASE_KERNEL, LABEL_GPU_QUEUE

from .helpers import LOCAL_BASE, REPO, assert_one_paragraph, write_kernelspec

pytestmark = pytest.mark.engine

SMI = Path(__file__).with_name("data") / "gpu" / "smi"
SCRIPT = Path(__file__).with_name("gpu_lease_script.py")


@pytest.fixture
def run_id(docker_client) -> Iterator[str]:
    """A prefix for this test's kernel ids; every lease and ticket with it is removed afterwards, pass or fail."""
    rid = f"t{uuid.uuid4().hex[:8]}"
    yield rid
    for label in (LABEL_GPU_LEASE, LABEL_GPU_QUEUE):
        for c in docker_client.api.containers(all=True, filters={"label": label}):
            if (c.get("Labels") or {}).get(LABEL_GPU_LEASE_KERNEL, "").startswith(rid):
                docker_client.api.remove_container(c["Id"], force=True)


def _devices(setup: str) -> list:
    return parse_list((SMI / f"{setup}-L.txt").read_text())


def _holder(kernel_id: str, notebook: str = "", owner: str | None = None) -> ledger.Holder:
    return ledger.Holder(
        kernel_id, f"dockyard-test-{kernel_id}", notebook, "tester", "minimal:cuda", owner or owner_id()
    )


def _spawn(tmp: Path, setup: str, choice: str, kid: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp / f"{kid}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), setup, choice, kid, str(out), *extra], env=env, cwd=REPO)
    return proc, out


def _result(out: Path, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while not out.exists():
        assert time.monotonic() < deadline, f"no result in {out}"
        time.sleep(0.05)
    return json.loads(out.read_text())


def _mine(client, rid: str) -> list[ledger.Lease]:
    return [lease for lease in ledger.leases(client) if lease.holder.kernel_id.startswith(rid)]


@pytest.mark.parametrize(("choice", "winners"), [("any-free", 4), ("device:2", 1), ("2", 2)])
def test_processes_racing_never_share_an_exclusive_device(choice, winners, docker_client, run_id, tmp_path):
    """12 processes start the same instant on a 4-GPU inventory: exactly as many win as there are devices to give
    (any-free: 4; one named device: 1; two each: 2 winners), each device has one holder, the rest are refused."""
    release = tmp_path / "release"
    start_at = f"{time.time() + 3:.3f}"  # after every interpreter has started
    procs = [
        _spawn(tmp_path, "4gpu", choice, f"{run_id}-{i:02d}", "--until", str(release), "--start-at", start_at)
        for i in range(12)
    ]
    try:
        results = [_result(out) for _, out in procs]
        won = [r["devices"] for r in results if "devices" in r]
        refused = [r["error"] for r in results if "error" in r]
        assert len(won) == winners
        held = [d for devices in won for d in devices]
        assert len(held) == len(set(held)), "a device given to two exclusive holders"
        assert sorted(lease.device for lease in _mine(docker_client, run_id)) == sorted(held)
        assert all("No GPU for minimal:cuda now" in e and "is held by tester's notebook" in e for e in refused)
    finally:
        release.touch()
        for proc, _ in procs:
            proc.wait(timeout=60)
    assert _mine(docker_client, run_id) == []  # each holder released its lease on its way out


def test_a_sigkilled_holders_lease_is_freed_by_the_reaper(docker_client, run_id, tmp_path):
    proc, out = _spawn(tmp_path, "1gpu", "any-free", f"{run_id}-killed", "--until", str(tmp_path / "never"))
    [device] = _result(out)["devices"]
    with pytest.raises(DockyardError, match="is held by tester's notebook"):
        ledger.take(docker_client, LOCAL_BASE, _devices("1gpu"), parse("any-free", "t"), _holder(f"{run_id}-next"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [lease.device for lease in _mine(docker_client, run_id)] == [device]  # SIGKILL released nothing itself
    reaper.reap(docker_client)
    assert _mine(docker_client, run_id) == []
    held = ledger.take(docker_client, LOCAL_BASE, _devices("1gpu"), parse("any-free", "t"), _holder(f"{run_id}-next"))
    assert [lease.device for lease in held] == [device]
    ledger.release(docker_client, held)


def test_the_refusal_names_who_holds_what_and_does_not_wait(docker_client, run_id, monkeypatch):
    devices = _devices("4gpu")
    held = [
        ledger.take(
            docker_client, LOCAL_BASE, devices, parse(f"device:{i}", "t"), _holder(f"{run_id}-{i}", f"nb{i}.ipynb")
        )
        for i in range(3)
    ]
    held.append(
        ledger.take(docker_client, LOCAL_BASE, devices, parse("shared:3", "t"), _holder(f"{run_id}-s", "s.ipynb"))
    )

    def no_sleep(seconds: float) -> None:
        raise AssertionError("a start without gpu_wait must be refused without waiting")

    monkeypatch.setattr(time, "sleep", no_sleep)
    with pytest.raises(DockyardError) as err:
        ledger.take(docker_client, LOCAL_BASE, devices, parse("any-free", "t"), _holder(f"{run_id}-late"))
    text = str(err.value)
    assert_one_paragraph(text, "any free GPU", "gpus: shared", "gpu_wait")
    for i in range(3):
        assert f"GPU {i} is held by tester's notebook 'nb{i}.ipynb' (minimal:cuda, kernel {run_id}-{i}"[:70] in text
    assert "GPU 3 is shared by tester's notebook 's.ipynb'" in text
    for h in held:
        ledger.release(docker_client, h)


def test_shares_and_exclusive_leases_exclude_each_other(docker_client, run_id):
    devices = _devices("4gpu")
    take = lambda choice, kid: ledger.take(docker_client, LOCAL_BASE, devices, parse(choice, "t"), _holder(kid))  # noqa: E731
    a = take("shared:0@0.5", f"{run_id}-a")
    b = take("shared:0", f"{run_id}-b")  # a second share of the same card
    with pytest.raises(DockyardError, match="GPU 0 is shared by"):
        take("device:0", f"{run_id}-c")
    c = take("any-free", f"{run_id}-c")  # any-free skips the shared card
    d = take("shared", f"{run_id}-d")  # the least used card that nobody holds exclusively
    assert c[0].device == devices[1].uuid
    assert d[0].device == devices[2].uuid
    with pytest.raises(DockyardError, match="GPU 1 is held by"):
        take("shared:1", f"{run_id}-e")
    for h in (a, b, c, d):
        ledger.release(docker_client, h)
    assert _mine(docker_client, run_id) == []


def test_the_queue_serves_first_come_first(docker_client, run_id, tmp_path):
    first_done, second_done = tmp_path / "first-done", tmp_path / "second-done"
    held = ledger.take(docker_client, LOCAL_BASE, _devices("1gpu"), parse("any-free", "t"), _holder(f"{run_id}-0"))
    first, first_out = _spawn(tmp_path, "1gpu", "any-free", f"{run_id}-1", "--wait", "120", "--until", str(first_done))
    _wait_for(lambda: ledger.queue_length(docker_client) == 1)
    second, second_out = _spawn(
        tmp_path, "1gpu", "any-free", f"{run_id}-2", "--wait", "120", "--until", str(second_done)
    )
    try:
        _wait_for(lambda: ledger.queue_length(docker_client) == 2)
        ledger.release(docker_client, held)
        assert _result(first_out)["devices"] == [held[0].device]  # the first waiter got the card ...
        assert ledger.queue_length(docker_client) == 1
        assert not second_out.exists()
        first_done.touch()
        assert _result(second_out)["devices"] == [held[0].device]
        assert ledger.queue_length(docker_client) == 0
    finally:
        first_done.touch()
        second_done.touch()
        first.wait(timeout=60)
        second.wait(timeout=60)
    assert _mine(docker_client, run_id) == []


def test_waiting_ends_with_the_paragraph(docker_client, run_id):
    devices = _devices("1gpu")
    held = ledger.take(docker_client, LOCAL_BASE, devices, parse("any-free", "t"), _holder(f"{run_id}-0", "a.ipynb"))
    with pytest.raises(DockyardError) as err:
        ledger.take(docker_client, LOCAL_BASE, devices, parse("any-free", "t"), _holder(f"{run_id}-1"), wait=1)
    assert_one_paragraph(str(err.value), "after waiting 1 s", "GPU 0 is held by tester's notebook 'a.ipynb'")
    assert ledger.queue_length(docker_client) == 0  # the ticket went with the waiter
    ledger.release(docker_client, held)


def test_a_lease_whose_kernel_vanished_is_stale_after_the_grace(docker_client, run_id):
    """A holder on another host (its process cannot be judged here) whose kernel container is gone."""
    devices = _devices("1gpu")
    elsewhere = ledger.Holder(
        f"{run_id}-far", "dockyard-no-such-container", "", "bo", "minimal:cuda", "other-host:1:1", since=1.0
    )
    ledger.take(docker_client, LOCAL_BASE, devices, parse("any-free", "t"), elsewhere)
    fresh = ledger.Holder(f"{run_id}-new", "dockyard-no-such-container", "", "bo", "minimal:cuda", "other-host:1:1")
    [lease] = _mine(docker_client, run_id)
    assert ledger.stale(docker_client, lease)
    recent = dataclasses.replace(fresh, since=time.time())  # its kernel container may be about to be created
    assert not ledger.stale(docker_client, ledger.Lease(lease.device, False, "x", "x", recent))
    held = ledger.take(docker_client, LOCAL_BASE, devices, parse("any-free", "t"), _holder(f"{run_id}-here"))
    assert [x.holder.kernel_id for x in _mine(docker_client, run_id)] == [f"{run_id}-here"]  # removed on sight
    ledger.release(docker_client, held)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def _stale_gpu_verdict(docker_client, setup: str) -> None:
    """A cached verdict that says this GPU-less engine has the recorded inventory's GPUs (the daemon then refuses
    the exact request, and the optional-GPU fallback starts the kernel without it: the lease's lifecycle is real)."""
    from dockyard.gpu import verdict

    info = docker_client.info()
    verdict._memo.clear()
    v = verdict.Verdict(True, "--gpus", "recorded", checked_at=time.time(), devices=tuple(_devices(setup)))
    verdict._store(verdict._key(info), v)


def test_a_kernel_takes_its_lease_at_start_and_gives_it_back_at_restart_and_shutdown(
    docker_client, built, tmp_path, monkeypatch
):
    from jupyter_client import KernelManager

    from dockyard import gpu

    built("minimal:cuda")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if gpu.assess(docker_client, docker_client.info(), fresh=True).usable:
        pytest.skip("this engine has a GPU: scripts/gpu-check.py checks leases there")
    write_kernelspec(tmp_path / "jupyter", "dy-gpu-lease", {"env": "minimal", "variant": "cuda", "gpus": "any-free"})
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("DOCKYARD_POOL_SIZE", "0")
    monkeypatch.delenv("DOCKYARD_GPU", raising=False)
    _stale_gpu_verdict(docker_client, "4gpu")
    km = KernelManager(kernel_name="dy-gpu-lease")

    def leases() -> list[ledger.Lease]:
        return [lease for lease in ledger.leases(docker_client) if lease.holder.kernel_id == km.kernel_id]

    try:
        km.start_kernel(cwd=str(tmp_path), env={"JPY_SESSION_NAME": str(tmp_path / "work.ipynb")})
        [first] = leases()
        assert first.holder.notebook == str(tmp_path / "work.ipynb")
        assert first.holder.owner == owner_id()
        assert first.holder.env == "minimal:cuda"
        env = docker_client.api.inspect_container(km.provisioner.container_id)["Config"]["Env"]
        # The real daemon was sent the exact device (driver "nvidia") and refused it: the notice quotes it.
        assert any(e.startswith("DOCKYARD_GPU_NOTICE=") and 'select device driver "nvidia"' in e for e in env), env
        _stale_gpu_verdict(docker_client, "4gpu")  # the fallback forgot the verdict; say GPUs again
        km.restart_kernel(now=True)
        [second] = leases()
        assert second.container_id != first.container_id  # given back, then taken again ...
        assert second.device == first.device  # ... the same card, as a restart prefers
        km.shutdown_kernel(now=True)
        assert leases() == []
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        ledger.release_kernel(docker_client, km.kernel_id or "none")


def test_dockyard_gpus_and_the_panel_list_devices_and_holders(docker_client, run_id, tmp_path, monkeypatch, capsys):
    from dockyard.cli import main
    from dockyard.frontends.panel.gpus import answer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _stale_gpu_verdict(docker_client, "mig")
    devices = _devices("mig")
    held = ledger.take(docker_client, LOCAL_BASE, devices, parse("device:0:1", "t"), _holder(f"{run_id}-m", "m.ipynb"))
    try:
        body = answer(docker_client, {f"{run_id}-m": 5 << 30})
        rows = {r["index"]: r for r in body["devices"]}
        assert set(rows) == {"0:0", "0:1", "0:2", "1"}
        assert rows["0:1"]["state"] == "exclusive"
        [h] = rows["0:1"]["holders"]
        assert (h["notebook"], h["user"], h["gpu_memory_used"]) == ("m.ipynb", "tester", 5 << 30)
        assert rows["1"]["state"] == "free"
        assert main(["gpus", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [r["state"] for r in listed["devices"]] == ["free", "exclusive", "free", "free"]
    finally:
        ledger.release(docker_client, held)
