"""Shared fixtures. Engine tests build real images and start real containers; every container
a test starts carries the label below (or a dockyard label) and is removed at the end, pass or fail."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from dockyard.labels import LABEL_BUILD_LOCK, LABEL_KERNEL_ID

from .helpers import REPO, SITE_ENV, TEST_LABEL, TEST_USER, UPSTREAM_BASE, TrackedContainers


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dockyard")
    group.addoption("--base-image", default=None, help=f"local image standing in for {UPSTREAM_BASE}")
    group.addoption("--wheelhouse", default=None, help="wheel directory images install from (the local torch wheel)")


@pytest.fixture(scope="session", autouse=True)
def site_settings(pytestconfig: pytest.Config) -> Iterator[dict[str, str]]:
    """The test site's settings as the DOCKYARD_* variables users set, for this process and every
    subprocess (CLI, Jupyter servers, kernels); a user's own config file stays out. Set for the session
    and restored after it, never at import time."""
    values = dict(SITE_ENV)
    if base := pytestconfig.getoption("base_image"):
        values["DOCKYARD_BASE_OVERRIDES"] = f"{UPSTREAM_BASE}={base}"
    if wheelhouse := pytestconfig.getoption("wheelhouse"):
        values["DOCKYARD_WHEELHOUSE"] = wheelhouse
    values["DOCKYARD_CONFIG"] = str(REPO / "tests" / "data" / "no-config.yaml")
    # No warm pool unless a test asks for one (test_pool.py): pooled containers would outlive the kernels other
    # tests count, and fill on every start.
    values["DOCKYARD_POOL_SIZE"] = "0"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            if key not in os.environ:  # a developer's explicit setting wins
                mp.setenv(key, value)
        yield {key: os.environ[key] for key in values}


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


@pytest.fixture
def containers(docker_client) -> Iterator[TrackedContainers]:
    tracker = TrackedContainers(docker_client)
    yield tracker
    tracker.remove_all()


def _could_be_ours(container: Container) -> bool:
    """A container a dockyard build or test may have made: from an intermediate build layer (an image id),
    a dockyard image or the local base. Anything else on the engine is someone else's and never touched."""
    image = (container.attrs.get("Config") or {}).get("Image", "")
    return bool(re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image)) or image.startswith(("dockyard/", "dockyard-local/"))


@pytest.fixture
def no_new_containers(docker_client):
    """Asserts that the test leaves no container behind (and that it starts none it keeps)."""
    before = {c.id for c in docker_client.containers.list(all=True)}
    yield
    # Containers that other fixtures track and remove themselves do not count here, nor do build locks
    # (held by other builds on this engine while they run).
    tracked = (TEST_LABEL, LABEL_KERNEL_ID, "devcontainer.local_folder", LABEL_BUILD_LOCK)
    after = docker_client.containers.list(all=True)
    leftover = [
        c for c in after if c.id not in before and not any(k in c.labels for k in tracked) and _could_be_ours(c)
    ]
    for container in leftover:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    assert not leftover, f"test left {len(leftover)} container(s) behind: {[c.name for c in leftover]}"


@pytest.fixture
def tmp_envs(tmp_path, monkeypatch) -> Path:
    """An empty spec directory searched before the repo's envs/."""
    d = tmp_path / "envs"
    d.mkdir()
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(d))
    return d


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
        install = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            str(REPO),
            "nbval",
            "jupyter_kernel_test",
        ]
        pip = subprocess.run(install, capture_output=True, text=True, timeout=600)
        assert pip.returncode == 0, pip.stderr[-3000:]
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
        (venv / ".complete").write_text("ok")
    return venv / "bin" / "python"


@pytest.fixture
def jupyter_prefix(tmp_path, monkeypatch) -> Path:
    """A prefix whose share/jupyter/kernels is the only kernel directory dockyard's CLI and kernel installs see in
    this process: Jupyter always searches sys.prefix too, and a test must never touch the machine's own."""
    from jupyter_client.kernelspec import KernelSpecManager

    from dockyard.cli import kernels_cmd
    from dockyard.kernel import install

    prefix = tmp_path / "prefix"
    kernels = prefix / "share" / "jupyter" / "kernels"
    for module in (kernels_cmd, install):
        monkeypatch.setattr(
            module,
            "KernelSpecManager",
            lambda: KernelSpecManager(kernel_dirs=[str(kernels)], data_dir=str(tmp_path / "data")),
        )
    return prefix
