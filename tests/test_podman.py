"""dockyard on rootless Podman, for real: the unprivileged test account runs `dockyard` and Jupyter against its
own `podman system service` (scripts/start-podman.sh; images come from Docker by `docker save | podman load`).

The service is on the account's user socket; these tests run as root and drive the account through runuser,
and look at the account's Podman through the same socket to check that nothing is left behind. They skip only
when that service is absent, and fail instead where DOCKYARD_REQUIRE_PODMAN is set (.ci/run sets it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.engine import capabilities
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import REPO, SITE_ENV, TEST_USER, copy_locks

pytestmark = [pytest.mark.engine, pytest.mark.podman]

TEST_UID = 1234  # scripts/make-test-user.sh
SOCKET = Path(f"/run/user/{TEST_UID}/podman/podman.sock")
_STEP = re.compile(r"^Step (\d+)/(\d+) ", re.MULTILINE)


class UserRunner:
    """Runs commands as TEST_USER with a private HOME, against its Podman socket and the test site settings."""

    def __init__(self, python: Path, base: Path) -> None:
        self.python = python
        self.home = base / "home"
        self.work = base / "work"
        self.jupyter = base / "jupyter"
        for d in (base, self.home, self.work, self.jupyter, base / "runtime"):
            d.mkdir(exist_ok=True)
            os.chown(d, TEST_UID, TEST_UID)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "DOCKER_HOST": f"unix://{SOCKET}",
            "DOCKYARD_CONFIG": os.environ["DOCKYARD_CONFIG"],
            "JUPYTER_PATH": str(self.jupyter / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            **{k: os.environ.get(k, v) for k, v in SITE_ENV.items()},
        }

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 600, **env: str
    ) -> subprocess.CompletedProcess[str]:
        runuser = shutil.which("runuser") or "runuser"
        return subprocess.run(
            [runuser, "-u", TEST_USER, "--", str(self.python), *args],
            env={**self.env, **env},
            cwd=cwd or self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def dockyard(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "dockyard", *args, **env)


@pytest.fixture(scope="session")
def podman(user_python: Path) -> Iterator[docker.DockerClient]:
    """The test account's rootless Podman, seen through its socket (root may open it)."""
    if not SOCKET.is_socket():
        message = f"no rootless Podman service at {SOCKET} (run: sudo bash scripts/start-podman.sh)"
        if os.environ.get("DOCKYARD_REQUIRE_PODMAN"):
            pytest.fail(message)
        pytest.skip(message)
    client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=300)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def user(user_python: Path, podman: docker.DockerClient) -> Iterator[UserRunner]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-podman-tests-"))
    base.chmod(0o755)
    yield UserRunner(user_python, base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def minimal(user: UserRunner) -> UserRunner:
    """minimal:cpu built in the account's Podman (a no-op when a previous run built it) and its kernel installed."""
    res = user.dockyard("build", "minimal:cpu", "--no-kernels")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    res = user.dockyard(
        "kernels", "install", "minimal:cpu", "minimal:cuda", "--include-unbuilt", "--prefix", str(user.jupyter)
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return user


def _kernel_containers(podman: docker.DockerClient) -> list[str]:
    return [c.name for c in podman.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})]


@pytest.fixture
def new_images(podman: docker.DockerClient) -> Iterator[None]:
    """Removes the images a test builds in the account's Podman (its stage images too), pass or fail."""
    before = {i.id for i in podman.images.list(all=True)}
    yield
    for image in podman.images.list(all=True):
        if image.id not in before:
            podman.images.remove(image.id, force=True)


def test_doctor_names_the_engine_and_its_mode(minimal: UserRunner) -> None:
    res = minimal.dockyard("doctor")
    out = res.stdout
    assert re.search(r"docker engine\s+.*Podman 4\.\d+\.\d+ \(rootless, cgroup v\d\)", out), out
    assert re.search(r"pass\s+storage driver\s+overlay", out), out
    assert re.search(r"pass\s+catatonit", out), out
    assert re.search(rf"pass\s+subuid\s+{TEST_USER}", out), out
    assert re.search(r"(warn|info)\s+limits", out), out  # cgroup v1 rootless: memory/CPU limits cannot apply
    assert "drops them" in out  # GPU requests are not claimed to work


def test_build_shows_steps_then_a_second_build_is_a_noop(minimal: UserRunner, podman, new_images, tmp_path) -> None:
    envs = minimal.home / f"envs-{uuid.uuid4().hex[:8]}"
    envs.mkdir()
    spec = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: podtest")
    spec = spec.replace(
        'python: "3.11"\n', f'python: "3.11"\nenv: {{TEST_RUN_NONCE: "{uuid.uuid4().hex}"}}\n'
    )  # a fresh tag: a real build
    assert "TEST_RUN_NONCE" in spec
    (envs / "podtest.yaml").write_text(spec)
    copy_locks("minimal", envs, as_name="podtest")
    os.chown(envs, TEST_UID, TEST_UID)
    first = minimal.dockyard("build", "podtest:cpu", "--no-kernels", DOCKYARD_ENVS_PATH=str(envs))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "built dockyard/podtest:cpu-" in first.stdout
    steps = [(int(n), int(t)) for n, t in _STEP.findall(first.stdout)]
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1)), first.stdout  # one count over all stages
    assert {t for _, t in steps} == {len(steps)}
    tag = re.search(r"built (dockyard/podtest:cpu-[0-9a-f]+)", first.stdout).group(1)
    image = podman.images.get(tag)
    assert "docker.io/dockyard/podtest:cpu" in image.tags or "localhost/dockyard/podtest:cpu" in image.tags
    second = minimal.dockyard("build", "podtest:cpu", "--no-kernels", DOCKYARD_ENVS_PATH=str(envs))
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"up to date {tag}" in second.stdout
    assert podman.images.get(tag).id == image.id
    again = minimal.dockyard("build", "minimal:cpu", "--no-kernels")
    assert "up to date dockyard/minimal:cpu-" in again.stdout, again.stdout + again.stderr


def test_failed_build_names_its_step_and_leaves_nothing(minimal: UserRunner, podman, new_images) -> None:
    envs = minimal.home / f"envs-{uuid.uuid4().hex[:8]}"
    envs.mkdir()
    spec = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: podfail")
    (envs / "podfail.yaml").write_text(spec)
    copy_locks("minimal", envs, as_name="podfail")
    # A lock entry no index has (the resolver would refuse such a pin, so the lock is edited): pip's step fails.
    lock = envs / "locks" / "podfail-cpu.txt"
    lock.write_text(lock.read_text().replace("ipywidgets==8.1.9", "ipywidgets==0.0.0.424242"))
    os.chown(envs, TEST_UID, TEST_UID)
    containers_before = {c.id for c in podman.containers.list(all=True)}
    res = minimal.dockyard("build", "podfail:cpu", "--no-kernels", DOCKYARD_ENVS_PATH=str(envs))
    assert res.returncode == 1  # dockyard's exit status for a build that failed (2: a usage error)
    text = " ".join((res.stdout + res.stderr).split())
    assert "Building podfail:cpu failed at 'RUN python3 -c" in text, text[-3000:]
    assert "ipywidgets==0.0.0.424242" in text  # pip's own words, from the failing step
    assert "Traceback" not in text
    assert not [i for i in podman.images.list() if any("podfail" in t for t in i.tags)]
    assert {c.id for c in podman.containers.list(all=True)} == containers_before


def test_kernel_runs_writes_interrupts_restarts_and_leaves_nothing(minimal: UserRunner, podman) -> None:
    ws = minimal.work / "notebooks"
    ws.mkdir()
    os.chown(ws, TEST_UID, TEST_UID)
    res = minimal.run(str(REPO / "tests" / "podman_script.py"), "lifecycle", "dockyard-minimal-cpu", str(ws))
    assert res.returncode == 0, res.stderr[-4000:]
    report: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    assert "error" not in report, report
    assert report["kernel"] == {"uid": TEST_UID, "gid": TEST_UID, "cwd": str(ws)}
    written = ws / "from_kernel.txt"
    assert written.read_text() == "hi"
    assert (written.stat().st_uid, written.stat().st_gid) == (TEST_UID, TEST_UID)  # keep-id: the account's own
    assert report["interrupt"]["ename"] == "KeyboardInterrupt"
    assert report["child_finished"] == "False"  # the cell's child process got the interrupt too
    assert report["after_interrupt"] == "42"  # the kernel lived on
    assert report["after_restart"] == "False"  # a fresh kernel ...
    first, second = report["container_ids"]
    assert first != second  # ... in a fresh container
    assert _kernel_containers(podman) == []
    for cid in (first, second):
        with pytest.raises(docker.errors.NotFound):
            podman.containers.get(cid)


def test_required_gpu_fails_with_a_clear_message(minimal: UserRunner, podman) -> None:
    res = minimal.run(
        str(REPO / "tests" / "podman_script.py"),
        "start",
        "dockyard-minimal-cuda",
        str(minimal.work),
        DOCKYARD_GPU="required",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report.get("type") == "DockyardError", report
    message = report["error"]
    assert "minimal:cuda requires a GPU" in message
    assert "Podman's Docker API accepts GPU requests (--gpus and CDI) but drops them" in message
    assert "minimal:cpu" in message  # the fix names the CPU variant
    assert "\n" not in message.split("Fix:")[0]  # one paragraph
    assert _kernel_containers(podman) == []


def test_limits_that_cannot_apply_are_reported(minimal: UserRunner, podman) -> None:
    """Where the user's cgroups cannot apply them (rootless on cgroup v1, as on this CI), Podman would accept and
    ignore them; the kernel start log says so."""
    kernels = Path(minimal.env["JUPYTER_PATH"]) / "kernels"
    spec = json.loads((kernels / "dockyard-minimal-cpu" / "kernel.json").read_text())
    spec["metadata"]["kernel_provisioner"]["config"].update(memory="512m", cpus=1.5)
    limited = kernels / "dy-limited"
    limited.mkdir()
    (limited / "kernel.json").write_text(json.dumps(spec))
    try:
        res = minimal.run(str(REPO / "tests" / "podman_script.py"), "start", "dy-limited", str(minimal.work))
    finally:
        shutil.rmtree(limited)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"started": True}
    dropped = capabilities.detect(podman).unapplied_limits("512m", 1.5)
    if dropped:  # this CI: rootless on cgroup v1, no controllers at all
        assert f"runs without its {' and '.join(dropped)}" in res.stderr
        assert "cannot be limited" in res.stderr
    else:  # a host that delegates both controllers applies them: nothing to report
        assert "runs without its" not in res.stderr
    assert _kernel_containers(podman) == []


def test_kernel_conformance(minimal: UserRunner, podman) -> None:
    ws = minimal.work / "conformance"
    ws.mkdir()
    os.chown(ws, TEST_UID, TEST_UID)
    res = minimal.run(str(REPO / "tests" / "podman_conformance.py"), "-v", cwd=ws)
    assert res.returncode == 0, res.stderr[-6000:]
    ran = re.search(r"^Ran (\d+) tests?", res.stderr, re.MULTILINE)
    assert ran is not None, res.stderr[-3000:]
    assert int(ran.group(1)) >= 10
    assert "FAILED" not in res.stderr
    assert _kernel_containers(podman) == []
