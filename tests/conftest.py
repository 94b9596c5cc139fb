"""Shared fixtures. Engine tests build real images and start real containers; every container
a test starts carries the label below (or a dockyard label) and is removed at the end, pass or fail."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
for key, value in SITE_ENV.items():
    os.environ.setdefault(key, value)
# Keep the tests away from the user's own config file.
os.environ.setdefault("DOCKYARD_CONFIG", str(REPO / "tests" / "data" / "no-config.yaml"))


def _engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CI") or _engine_available():
        return  # in CI a missing engine must fail loudly, not skip
    skip = pytest.mark.skip(reason="no Docker engine (start dockerd: scripts/start-dockerd.sh)")
    for item in items:
        if "engine" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_client():
    from dockyard import engine

    return engine.client(timeout=600)


@pytest.fixture(scope="session")
def settings():
    from dockyard.config import load_settings

    return load_settings()


_built: dict[str, object] = {}


@pytest.fixture(scope="session")
def built(docker_client, settings):
    """built('minimal:cpu') → BuildResult; each image is built (or found) once per session."""
    from dockyard import specs as spec
    from dockyard.images.build import build
    from dockyard.images.plan import make_plan

    def _build(ref: str):
        if ref not in _built:
            name, variant = spec.parse_ref(ref)
            s = spec.load(name)
            plan = make_plan(s, s.variant(variant), settings.build)
            _built[ref] = build(docker_client, plan, settings.build)
        return _built[ref]

    return _build


class ContainerTracker:
    """Runs containers for a test and removes every one of them afterwards."""

    def __init__(self, client) -> None:
        self.client = client
        self.containers: list = []

    def run(self, image: str, command, **kwargs):
        kwargs.setdefault("labels", {})[TEST_LABEL] = "1"
        c = self.client.containers.run(image, command, detach=True, **kwargs)
        self.containers.append(c)
        return c

    def output(self, image: str, command, **kwargs) -> tuple[int, str]:
        c = self.run(image, command, **kwargs)
        status = c.wait(timeout=300)
        return status["StatusCode"], c.logs().decode()

    def remove_all(self) -> None:
        for c in self.containers:
            with contextlib.suppress(Exception):
                c.remove(force=True)


@pytest.fixture
def containers(docker_client) -> Iterator[ContainerTracker]:
    tracker = ContainerTracker(docker_client)
    yield tracker
    tracker.remove_all()


@pytest.fixture
def no_new_containers(docker_client):
    """Asserts that the test leaves no container behind (and that it starts none it keeps)."""
    before = {c.id for c in docker_client.containers.list(all=True)}
    yield
    # Containers that other fixtures track and remove themselves do not count here.
    # Build locks (org.dockyard.build-lock) are other builds' (of other sessions on this engine), never a leftover.
    tracked = (TEST_LABEL, "org.dockyard.kernel-id", "devcontainer.local_folder", "org.dockyard.build-lock")
    after = {c.id for c in docker_client.containers.list(all=True) if not any(k in c.labels for k in tracked)}
    leftover = after - before
    for cid in leftover:
        docker_client.containers.get(cid).remove(force=True)
    assert not leftover, f"test left {len(leftover)} container(s) behind"


@pytest.fixture
def tmp_envs(tmp_path, monkeypatch) -> Path:
    """An empty spec directory searched before the repo's envs/."""
    d = tmp_path / "envs"
    d.mkdir()
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(d))
    return d


def assert_same_files(fresh: Path, committed: Path, command: str) -> None:
    """A freshly generated tree equals the checked-in one, byte for byte (else: run `command`)."""

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    new, old = files(fresh), files(committed)
    assert sorted(new) == sorted(old), f"run '{command}' and commit {committed.name}/"
    for rel, data in new.items():
        assert old[rel] == data, f"{committed.name}/{rel} is outdated: run '{command}'"


def copy_spec(name: str, dest: Path) -> Path:
    target = dest / f"{name}.yaml"
    shutil.copy(REPO / "envs" / f"{name}.yaml", target)
    return target


@pytest.fixture(scope="session")
def user_python() -> Path:
    """Python with dockyard (editable) and nbval that the unprivileged account TEST_USER can run.

    CI runs as root, which hides UID bugs, so some tests run as TEST_USER through runuser. Root's
    Python may live where that account cannot read (/root), hence a venv from Debian's python3 in
    the temp dir; cached across runs per checkout and pyproject.
    """
    if os.getuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root (runuser) to run as the unprivileged test user")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no {TEST_USER} account (scripts/make-test-user.sh)")
    key = hashlib.sha256(str(REPO).encode() + (REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"dockyard-user-venv-{key}"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(REPO), "nbval"]
        pip = subprocess.run(install, capture_output=True, text=True, timeout=600)
        assert pip.returncode == 0, pip.stderr[-3000:]
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
        (venv / ".complete").write_text("ok")
    return venv / "bin" / "python"
