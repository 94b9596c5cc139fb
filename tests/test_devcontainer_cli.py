"""The generated dev containers through the real dev containers CLI (what VS Code's "Reopen in Container" runs).

`devcontainer up` runs as the unprivileged account dockyard-test (uid 1234) on a copy of the repo it owns:
as root, updateRemoteUserUID is skipped and every ownership check passes trivially. That user gets its own
venv (Debian's /usr/bin/python3, `pip install -e` of the copy), because initializeCommand runs
`dockyard build` on the host as whoever opens the folder; the image itself is pre-built by the `built`
fixture, so that build is the no-op it is for a user who already built the kernel.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.frontends import devcontainer
from dockyard.images.lockfile import installed_pins, load_lock, lock_pins
from dockyard.images.render import VENV

from .helpers import REPO, SITE_ENV, TEST_USER

pytestmark = pytest.mark.engine

TEST_UID = int(os.environ.get("DOCKYARD_TEST_UID", "1234"))
CONFIGS = sorted(p.parent.name for p in (REPO / devcontainer.DIRNAME).glob(f"*/{devcontainer.CONFIG_NAME}"))
# Copying the whole checkout would drag caches and the CLI along; the copy only needs what a clone has.
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".tools",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
    "*.egg-info",
    "node_modules",
)


def _need(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def devcontainer_cli() -> str:
    """Path of the pinned @devcontainers/cli (installed into .tools/ by scripts/install-test-tools.sh)."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-test-tools.sh")], capture_output=True, text=True, timeout=600
    )
    _need(proc.returncode == 0, f"scripts/install-test-tools.sh failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


class Workspace:
    """A repo copy owned by the test user, and a way to run commands as that user with the site settings."""

    def __init__(self, root: Path, cli: str, bin_dir: Path) -> None:
        self.root = root
        self.cli = cli
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("PIP_", "DOCKER_")) or k.lower() in ("http_proxy", "https_proxy", "no_proxy")
        }
        env |= {k: os.environ[k] for k in SITE_ENV}
        env |= {
            "HOME": str(Path("~" + TEST_USER).expanduser()) if os.geteuid() == 0 else os.environ["HOME"],
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "DOCKYARD_CONFIG": str(root / "tests" / "data" / "no-config.yaml"),
        }
        self.env = env

    def run(self, *argv: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", TEST_USER, "--"] if os.geteuid() == 0 else []
        cmd = [*prefix, "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[:4])} ... exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- "
                f"stderr\n{proc.stderr[-4000:]}"
            )
        return proc

    def config(self, folder: str) -> str:
        return str(self.root / devcontainer.DIRNAME / folder / devcontainer.CONFIG_NAME)

    def dc(self, action: str, folder: str, *argv: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return self.run(
            self.cli,
            action,
            "--workspace-folder",
            str(self.root),
            "--config",
            self.config(folder),
            *argv,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def workspace(devcontainer_cli) -> Iterator[Workspace]:
    if os.geteuid() == 0:
        try:
            pw_uid = int(subprocess.run(["id", "-u", TEST_USER], capture_output=True, text=True, check=True).stdout)
        except subprocess.CalledProcessError:
            pw_uid = -1
        _need(pw_uid == TEST_UID, f"no test account {TEST_USER} with uid {TEST_UID} (run scripts/make-test-user.sh)")
    # Under /tmp, not pytest's tmp_path: that one sits in root's mode-700 directory.
    root = Path(tempfile.mkdtemp(prefix="dockyard-devcontainer-"))
    try:
        shutil.copytree(REPO, root, ignore=_NOT_COPIED, dirs_exist_ok=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{TEST_UID}:{TEST_UID}", str(root)], check=True)
            root.chmod(0o755)
            bin_dir = root / ".venv" / "bin"
            ws = Workspace(root, devcontainer_cli, bin_dir)
            # The test user cannot use root's Python (/root is mode 700): give it its own dockyard.
            ws.run("/usr/bin/python3", "-m", "venv", str(root / ".venv"))
            ws.run(str(bin_dir / "pip"), "install", "-q", "-e", str(root))
        else:
            ws = Workspace(root, devcontainer_cli, Path(shutil.which("dockyard") or "dockyard").parent)
        yield ws
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def remove_devcontainers(docker_client) -> Iterator[list[str]]:
    """Yields a list to append workspace folders to; removes their dev containers and derived vsc-* images."""
    folders: list[str] = []
    yield folders
    for folder in folders:
        for c in docker_client.containers.list(all=True, filters={"label": f"devcontainer.local_folder={folder}"}):
            image = c.image
            c.remove(force=True)
            for tag in image.tags:
                if tag.startswith("vsc-"):  # the CLI's UID-update image, built on top of ours
                    docker_client.images.remove(tag, force=True)


@pytest.mark.parametrize("folder", CONFIGS)
def test_read_configuration_accepts_every_generated_config(devcontainer_cli, folder):
    config = REPO / devcontainer.DIRNAME / folder / devcontainer.CONFIG_NAME
    proc = subprocess.run(
        [devcontainer_cli, "read-configuration", "--workspace-folder", str(REPO), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["configuration"]
    assert got["image"].startswith("dockyard/")
    assert got["remoteUser"] == "dockyard"


def _notebooks(root: Path, env: str) -> list[str]:
    """The example notebooks that apply to env (notebooks/*.ipynb, common/, <env>/)."""
    base = root / "notebooks"
    found = sorted(p for d in (base, base / "common", base / env) if d.is_dir() for p in d.glob("*.ipynb"))
    assert found, f"no example notebooks for {env} under {base}"
    return [str(p.relative_to(root)) for p in found]


def _freeze(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if "==" in line}


@pytest.mark.parametrize(
    "folder",
    ["minimal", "minimal-cuda", pytest.param("pytorch", marks=pytest.mark.slow)],
)
def test_devcontainer_up_as_unprivileged_user(
    folder, workspace, built, docker_client, containers, remove_devcontainers
):
    env, _, variant = folder.partition("-")
    ref = f"{env}:{variant or 'cpu'}"
    kernel = built(ref)  # the kernel's image; initializeCommand below must find it and not rebuild
    remove_devcontainers.append(str(workspace.root))

    up = workspace.dc("up", folder)
    result = json.loads(up.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "success", up.stdout
    assert f"up to date dockyard/{env}:" in up.stdout + up.stderr, "initializeCommand did not run 'dockyard build'"
    container = docker_client.containers.get(result["containerId"])

    # Same image: the dev container's image is the kernel image plus the CLI's UID-update layer(s) on top.
    kernel_image = docker_client.images.get(kernel.tag)
    assert docker_client.images.get(f"dockyard/{ref}").id == kernel_image.id
    layers = container.image.attrs["RootFS"]["Layers"]
    assert layers[: len(kernel_image.attrs["RootFS"]["Layers"])] == kernel_image.attrs["RootFS"]["Layers"]
    if "cuda" in folder:  # gpu optional: a GPU request exactly when the CLI's own rule (default "detect") says so
        cfg = devcontainer.config(*specs.resolve(ref), workspace.root)
        expected = devcontainer.cli_gpu_args(cfg, docker_client.info())
        assert bool(container.attrs["HostConfig"].get("DeviceRequests")) == bool(expected)

    # The remote user is mapped to the host user, so workspace files belong to them.
    assert workspace.dc("exec", folder, "id", "-u").stdout.split()[-1] == str(
        TEST_UID if os.geteuid() == 0 else os.getuid()
    )
    workspace.dc("exec", folder, "touch", "made-in-devcontainer.txt")
    made = (workspace.root / "made-in-devcontainer.txt").stat()
    assert (made.st_uid, made.st_gid) == ((TEST_UID, TEST_UID) if os.geteuid() == 0 else (os.getuid(), os.getgid()))
    assert container.attrs["HostConfig"]["ShmSize"] >= 2**30

    # Parity: the same packages at the same versions as in a container of the kernel image.
    freeze = [f"{VENV}/bin/python", "-m", "pip", "list", "--format=freeze"]
    in_devcontainer = _freeze(workspace.dc("exec", folder, *freeze).stdout)
    assert in_devcontainer == _freeze(containers.run_and_wait(kernel.tag, freeze))
    assert in_devcontainer
    # ... and exactly the lock's packages.
    lock = load_lock(*specs.resolve(ref))
    assert installed_pins("\n".join(in_devcontainer), lock) == lock_pins(lock)

    # The example notebooks run inside the dev container, on the env's interpreter. nbval is not part of the
    # image: it goes into a throwaway venv, and the env's Python is registered as the kernel it drives.
    nbval = importlib.metadata.version("nbval")
    script = (
        "set -e; python -m venv /tmp/nbval-venv; "
        f"/tmp/nbval-venv/bin/pip install -q nbval=={nbval}; "
        f"{VENV}/bin/python -m ipykernel install --user --name dockyard-env >/dev/null; "
        "/tmp/nbval-venv/bin/python -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --nbval "
        "--nbval-kernel-name dockyard-env " + " ".join(_notebooks(workspace.root, env))
    )
    run = workspace.dc("exec", folder, "bash", "-c", script)
    assert " passed" in run.stdout, run.stdout
    assert " failed" not in run.stdout, run.stdout
