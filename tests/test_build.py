"""Real builds on the real engine, through the CA + wheelhouse + base-override site options."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker.errors
import pytest

from dockyard import specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.errors import BuildError
from dockyard.images import build_mutex
from dockyard.images.build import build
from dockyard.images.build_mutex import lock_name, tag_lock
from dockyard.images.plan import make_plan
from dockyard.labels import LABEL_ENV, LABEL_HASH

from .helpers import REPO, SITE_ENV, TEST_LABEL, TEST_USER, copy_locks, copy_spec

pytestmark = pytest.mark.engine


def test_minimal_builds_and_runs(built, containers) -> None:
    result = built("minimal:cpu")
    assert result.tag.startswith("dockyard/minimal:cpu-")
    versions = "print(ipykernel.__version__, ipywidgets.__version__, os.environ['DOCKYARD_ENV'])"
    out = containers.run_and_wait(result.tag, ["python", "-c", f"import ipykernel, ipywidgets, os; {versions}"])
    assert out.split()[:2] == ["7.4.0", "8.1.9"]
    assert "minimal" in out


@pytest.mark.slow
def test_pytorch_cpu_builds_from_wheelhouse_and_runs(built, containers) -> None:
    result = built("pytorch:cpu")
    code = "print(torch.__version__, torch.tensor([1.0, 2.0]).sum().item(), ipykernel.__version__)"
    out = containers.run_and_wait(result.tag, ["python", "-c", f"import torch, ipykernel; {code}"])
    assert out.split() == ["2.13.0+cpu", "3.0", "7.4.0"]


def test_image_trusts_the_site_ca_and_is_labelled(built, docker_client, containers) -> None:
    result = built("minimal:cpu")
    image = docker_client.images.get(result.tag)
    labels = image.labels
    assert labels[LABEL_ENV] == "minimal"
    assert labels[LABEL_HASH] == result.tag.rsplit("-", 1)[1]
    assert "dockyard/minimal:cpu" in image.tags  # the moving alias follows the newest build
    code = "import os, ssl; print(os.environ['PIP_CERT']); print(len(ssl.create_default_context().get_ca_certs()))"
    pip_cert, n_certs = containers.run_and_wait(result.tag, ["python", "-c", code]).splitlines()
    assert pip_cert == "/etc/ssl/certs/ca-certificates.crt"
    assert int(n_certs) > 10
    # Kernels run as an arbitrary host UID and may `%pip install` into the environment.
    out = containers.run_and_wait(
        result.tag,
        ["python", "-c", "import os, sysconfig; print(os.access(sysconfig.get_paths()['purelib'], os.W_OK))"],
        user="4321:4321",
    )
    assert out.strip() == "True"
    # The wheelhouse stage must not leave wheels in the final image.
    out = containers.run_and_wait(result.tag, ["sh", "-c", "ls /tmp/dockyard 2>&1 || true"])
    assert "No such file" in out


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, number: int, total: int, text: str) -> None:
        self.lines.append(text)

    def output(self, line: str) -> None:
        self.lines.append(line)


def _bodies(bundle: str) -> list[str]:
    """The base64 bodies of a PEM bundle, one per certificate."""
    return ["".join(b.split("-----")[0].split()) for b in bundle.split("-----BEGIN CERTIFICATE-----")[1:]]


def test_build_output_is_text_and_each_certificate_is_installed_once(
    tmp_envs: Path, docker_client, settings, containers
) -> None:
    """The streamed output has no terminal escapes (stderr came as ESC[91m...ESC[0m) and no rehash warnings
    about duplicates: of the host bundle, only what the base lacks is installed, once."""
    # A tag of its own: rebuilding minimal:cpu's would replace the image other tests hold (and remove the old one).
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text() + f'env:\n  TEST_RUN_NONCE: "{time.time_ns()}"\n')
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), settings.build)
    recorder = _Recorder()
    result = build(docker_client, plan, settings.build, recorder, rebuild=True)
    assert recorder.lines, "the build reported nothing"
    assert [line for line in recorder.lines if "\x1b" in line or "[0m" in line] == []
    assert [line for line in recorder.lines if "duplicate" in line] == []
    log = result.log_path.read_text() if result.log_path else ""
    assert "\x1b" not in log
    base = containers.run_and_wait(plan.base, ["cat", "/etc/ssl/certs/ca-certificates.crt"])
    image = containers.run_and_wait(result.tag, ["cat", "/etc/ssl/certs/ca-certificates.crt"])
    pems = [c for c in plan.files.values() if isinstance(c, bytes) and b"BEGIN CERTIFICATE" in c]
    added = {"".join(c.decode().split("-----")[2].split()) for c in pems}
    assert added, "the site settings add CA certificates"
    assert len(_bodies(image)) == len(set(_bodies(image))), "a certificate is installed twice"
    assert set(_bodies(image)) == set(_bodies(base)) | added  # the site's CA (the proxy's) is trusted


def test_unchanged_build_is_a_noop(built, docker_client, settings, monkeypatch) -> None:
    first = built("minimal:cpu")
    calls: list[object] = []
    real_build = docker_client.api.build
    monkeypatch.setattr(docker_client.api, "build", lambda *a, **k: calls.append(a) or real_build(*a, **k))
    s = specs.load("minimal")
    start = time.monotonic()
    again = build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)
    elapsed = time.monotonic() - start
    assert not again.built
    assert again.image_id == first.image_id
    assert calls == []
    assert elapsed < 5  # generous: the bench measures the real figure


def test_failed_step_shows_its_output_and_leaves_nothing(tmp_envs: Path, docker_client, no_new_containers) -> None:
    copy_spec("minimal", tmp_envs)
    # A lock entry no index has (the resolver would refuse such a pin, so the lock is edited): pip's step fails.
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    lock.write_text(lock.read_text().replace("ipywidgets==8.1.9", "ipywidgets==0.0.0.424242"))
    settings = load_settings()
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), settings.build)
    with pytest.raises(BuildError) as info:
        build(docker_client, plan, settings.build)
    text = info.value.text
    assert "ipywidgets==0.0.0.424242" in text  # pip's own words, from the failing step
    assert "full log:" in text
    assert Path(text.split("full log: ")[1].split(" ")[0]).exists()
    assert find_image(docker_client, plan.tag) is None


def test_without_the_proxy_ca_pip_fails_with_a_certificate_hint(
    tmp_envs: Path, docker_client, monkeypatch, no_new_containers
) -> None:
    """The corporate-proxy problem itself: the same build without --ca-cert cannot reach PyPI."""
    copy_spec("minimal", tmp_envs)
    # A lock no build used before, so no cached layer can hide the download.
    lock = tmp_envs / "locks" / "minimal-cpu.txt"
    lock.write_text(lock.read_text() + f"# {time.time_ns()}\n")
    monkeypatch.delenv("DOCKYARD_CA_CERTS")
    settings = load_settings()
    s = specs.load("minimal")
    with pytest.raises(BuildError) as info:
        build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.text or "certificate" in info.value.text.lower()
    assert "--ca-cert" in info.value.text


def test_missing_base_image_gives_override_hint(tmp_envs: Path, docker_client, monkeypatch, no_new_containers) -> None:
    monkeypatch.setenv("DOCKYARD_BASE_OVERRIDES", "python:3.11-slim-bookworm=dockyard-local/does-not-exist:1")
    settings = load_settings()
    s = specs.load("minimal")
    with pytest.raises(BuildError, match=r"pulling is off.*base-override"):
        build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)


def test_concurrent_builds_of_one_tag_build_once(tmp_envs: Path, built, docker_client, no_new_containers) -> None:
    """Two `dockyard build` at once (say a kernel auto-build and a dev container opening): one builds, one waits."""
    original = built("minimal:cpu")  # its layers are cached: only the changed ENV layer and the kit are new
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text() + f'env:\n  TEST_RUN_NONCE: "{time.time_ns()}"\n')
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), load_settings().build)
    cmd = [sys.executable, "-m", "dockyard", "build", "--no-kernels", "minimal:cpu"]  # leave the host's Jupyter alone
    logs = [tmp_envs / f"build-{i}.log" for i in range(2)]
    try:
        # Hold the tag's lock until both say they wait for it, so both really arrive while a build is under way.
        with tag_lock(docker_client, plan.tag, plan.base, lambda _line: None):
            procs = []
            for log in logs:
                with log.open("w") as out:
                    procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True))
            for log, proc in zip(logs, procs, strict=True):
                _wait_for_text(log, "waiting for another build", proc, timeout=60)
        for proc in procs:
            proc.wait(timeout=600)
        outputs = [log.read_text() for log in logs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert all("waiting for another build" in o for o in outputs), outputs
        assert sorted(f"built {plan.tag}" in o for o in outputs) == [False, True], outputs
        assert sorted(f"up to date {plan.tag}" in o for o in outputs) == [False, True], outputs
    finally:
        docker_client.images.get(original.image_id).tag(plan.alias)  # give the alias back to the suite's image
        if find_image(docker_client, plan.tag):
            docker_client.images.remove(plan.tag)  # its last tag: the image goes with it


def _edited_minimal(envs_dir: Path) -> Path:
    """minimal with one more ENV line: a tag never built before whose layers are all cached but the last."""
    path = envs_dir / "minimal.yaml"
    copy_locks("minimal", envs_dir)
    path.write_text((REPO / "envs" / "minimal.yaml").read_text() + f'env:\n  TEST_RUN_NONCE: "{time.time_ns()}"\n')
    return path


def _wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = path.read_text()
        if text in out or proc.poll() is not None:
            return out
        time.sleep(0.2)
    return path.read_text()


def test_builds_of_one_tag_are_serialised_across_users(built, user_python, docker_client, monkeypatch) -> None:
    """root holds the build lock of a tag; the unprivileged user's `dockyard build` of it waits, then builds.

    A lock file in each user's cache dir (the earlier lock) let both build at once.
    """
    original = built("minimal:cpu")
    shared = Path(tempfile.mkdtemp(prefix="dockyard-lock-test-"))
    shared.chmod(0o755)
    envs, home = shared / "envs", shared / "home"
    envs.mkdir()
    home.mkdir()
    os.chown(home, pwd.getpwnam(TEST_USER).pw_uid, pwd.getpwnam(TEST_USER).pw_gid)
    _edited_minimal(envs).chmod(0o644)
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(envs))
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), load_settings().build)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DOCKYARD_CONFIG": os.environ["DOCKYARD_CONFIG"],
        "DOCKYARD_ENVS_PATH": str(envs),
        **{k: os.environ.get(k, v) for k, v in SITE_ENV.items()},
    }
    log = shared / "user-build.log"
    cmd = [
        shutil.which("runuser") or "runuser",
        "-u",
        TEST_USER,
        "--",
        str(user_python),
        "-m",
        "dockyard",
        "build",
        "minimal:cpu",
    ]
    proc = None
    try:
        with tag_lock(docker_client, plan.tag, plan.base, lambda _line: None), log.open("w") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=shared, start_new_session=True
            )
            seen = _wait_for_text(log, "waiting for another build", proc, timeout=60)
            assert "waiting for another build" in seen, f"the other user did not wait for the lock:\n{seen}"
            assert f"@{socket.gethostname()} pid {os.getpid()}" in seen  # the holder is named
            assert find_image(docker_client, plan.tag) is None
            assert proc.poll() is None
        assert proc.wait(timeout=300) == 0, log.read_text()
        assert f"built {plan.tag}" in log.read_text()
        # Not no_new_containers: other sessions share this engine; only this lock's container is ours to check.
        assert not docker_client.containers.list(all=True, filters={"name": lock_name(plan.tag)})
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # runuser and the build under it: no build outlives the test
            proc.wait()
        docker_client.images.get(original.image_id).tag(plan.alias)  # give the alias back to the suite's image
        if find_image(docker_client, plan.tag):
            docker_client.images.remove(plan.tag)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_dead_lock_holder_never_blocks_a_build(docker_client, monkeypatch) -> None:
    """A holder SIGKILLed mid-build frees the lock at once (the engine ends its lock container); a lock
    container never started (its holder died between create and start) is taken over after START_GRACE."""
    base = load_settings().build.base_for("python:3.11-slim-bookworm")  # present: the suite builds from it
    tag = f"dockyard/locktest:cpu-{time.time_ns()}"
    holder = (
        "import sys, time, docker; from dockyard.images.build_mutex import tag_lock\n"
        f"with tag_lock(docker.from_env(), {tag!r}, {base!r}, print):\n"
        "    print('locked', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert docker_client.containers.get(lock_name(tag)).status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    start = time.monotonic()
    with tag_lock(docker_client, tag, base, lambda _line: None):
        took = time.monotonic() - start
    assert took < 10, f"a dead holder's lock blocked for {took:.1f} s"

    monkeypatch.setattr(build_mutex, "START_GRACE", 1.0)
    stuck = docker_client.containers.create(base, ["true"], name=lock_name(tag), labels={TEST_LABEL: "1"})
    try:
        waited: list[str] = []
        with tag_lock(docker_client, tag, base, waited.append):
            pass
        assert len(waited) == 1  # it said it waited, once
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            stuck.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(lock_name(tag))
