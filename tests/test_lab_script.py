"""The README's first command (scripts/lab.sh --local-base) stays true: on this registry-less machine it
creates its virtual environment, records the site settings, finds the images the suite built (same content
tags), installs the kernels whose images are built into that environment and starts JupyterLab, as root
and as an ordinary user in the docker group."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from packaging.utils import canonicalize_name

from dockyard.labels import LABEL_KERNEL_ID

from .helpers import (
    HOST_CA,
    LOCAL_BASE,
    REPO,
    TEST_USER,
    UPSTREAM_BASE,
    JupyterProc,
    free_port,
    owned_containers,
    remove_leftovers,
    remove_mounting,
)

pytestmark = pytest.mark.engine

SYS_PREFIX_KERNELS = Path(sys.prefix) / "share" / "jupyter" / "kernels"  # where lab.sh used to install them


def _dockyard_kernels(kernels: Path) -> set[str]:
    return {p.name for p in kernels.glob("dockyard-*")}


def _assert_all_built(docker_client, kernel_jsons: dict[str, dict]) -> None:
    """Every offered dockyard kernel can start: its image is built for the suite's site settings (which are
    the ones lab.sh records, see the root test)."""
    from dockyard import specs
    from dockyard.config import load_settings
    from dockyard.images.inventory import image_state

    build = load_settings().build
    for name, data in kernel_jsons.items():
        meta = data["metadata"]["dockyard"]
        s = specs.load(meta["env"])
        assert image_state(docker_client, s, s.variant(meta["variant"]), build).built, f"{name} is offered unbuilt"


@pytest.mark.slow  # finds (or builds) pytorch:cpu
def test_lab_script_sets_up_the_main_job(built, docker_client, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("lab.sh sets up the machine as root")
    tags = {ref: built(ref).tag for ref in ("minimal:cpu", "pytorch:cpu")}
    before = _dockyard_kernels(SYS_PREFIX_KERNELS)
    venv = tmp_path / "venv"  # the default is .venv in the checkout; keep the checkout as it is
    # A user's environment: none of the test suite's DOCKYARD_* settings, an empty config home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")  # root's own user kernels stay out of it
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "lab.sh"), "--local-base", "--no-lab", "--venv", str(venv)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    config = yaml.safe_load((tmp_path / "config" / "dockyard" / "config.yaml").read_text())
    assert config["base_overrides"] == {UPSTREAM_BASE: LOCAL_BASE}
    assert config["build"]["ca_certs"] == [HOST_CA]
    assert config["build"]["pull"] == "never"
    for tag in tags.values():  # the images the suite built: nothing was rebuilt
        assert f"up to date {tag}" in out, out[-5000:]
    # The venv's own jupyter sees the kernels (in its sys-prefix), and only ones that can start.
    listing = subprocess.run(
        [str(venv / "bin" / "jupyter"), "kernelspec", "list", "--json"], env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    found = {
        name: info["spec"]
        for name, info in json.loads(listing.stdout)["kernelspecs"].items()
        if name.startswith("dockyard-") and Path(info["resource_dir"]).is_relative_to(venv)
    }
    assert {"dockyard-minimal-cpu", "dockyard-pytorch-cpu"} <= set(found)
    _assert_all_built(docker_client, found)
    assert _dockyard_kernels(SYS_PREFIX_KERNELS) == before  # the host's Python is left alone


def _test_account() -> pwd.struct_passwd:
    if os.getuid() != 0:
        pytest.skip("needs root to run the command as the unprivileged test account")
    try:
        account = pwd.getpwnam(TEST_USER)
    except KeyError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no {TEST_USER} account (scripts/make-test-user.sh)")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no Debian python3")
    return account


def _user_env(home: Path, account: pwd.struct_passwd) -> dict[str, str]:
    """A login-like environment for the account: no root PATH (its pyenv is unreadable there), no DOCKYARD_*
    settings; what pip needs on this machine (CA bundle, wheelhouse, proxies) passes through."""
    env = {"HOME": str(home), "USER": account.pw_name, "LOGNAME": account.pw_name, "LANG": "C.UTF-8"}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    passed = ("PIP_", "SSL_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env |= {k: v for k, v in os.environ.items() if k.startswith(passed) or k.lower().endswith("_proxy")}
    return env


def _copy_checkout(dest: Path) -> None:
    """The repository as a user's own clone (the checkout here belongs to root): sources only."""
    skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", "node_modules", ".tools")
    shutil.copytree(REPO, dest, ignore=skip)


def _wait_for_server(server: JupyterProc, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"lab.sh exited with {proc.returncode}:\n{log.read_text()[-6000:]}"
        with contextlib.suppress(requests.ConnectionError):
            if server.api("GET", "/api/status").status_code == 200:
                return
        time.sleep(1)
    raise AssertionError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-6000:]}")


def _group_processes(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


def _pins(text: str) -> set[tuple[str, str]]:
    """(name, version) of each 'name==version' line of a lock or of `pip freeze`, names canonical."""
    found = set()
    for line in text.splitlines():
        name, sep, rest = line.partition("==")
        if sep and not line.startswith((" ", "#")):
            found.add((canonicalize_name(name.split("[")[0]), rest.split(";")[0].split()[0].strip(" \\")))
    return found


def _run_as(account: pwd.struct_passwd, cmd: list[str], *, groups: list[int], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, user=account.pw_uid, group=account.pw_gid, extra_groups=groups, capture_output=True, text=True,
        timeout=120, **kwargs,
    )  # fmt: skip


def test_lab_script_tells_an_ordinary_user_what_is_missing_before_installing_anything() -> None:
    """Not in the docker group, or a checkout the user may not write: one clear message at once, not after
    minutes of installs, and nothing created."""
    account = _test_account()
    base = Path(tempfile.mkdtemp(prefix="dockyard-lab-user-"))
    try:
        os.chmod(base, 0o755)
        repo = base / "dockyard"  # root's, read-only for the account
        _copy_checkout(repo)
        lab = ["bash", str(repo / "scripts" / "lab.sh"), "--local-base", "--no-lab"]
        env = _user_env(base, account)

        r = _run_as(account, lab, groups=[], env=env)  # the account without its docker group
        assert r.returncode == 1, r.stdout + r.stderr
        assert "may not use /var/run/docker.sock" in r.stderr, r.stderr
        assert "usermod -aG docker" in r.stderr, r.stderr

        docker_gid = grp.getgrnam("docker").gr_gid
        r = _run_as(account, lab, groups=[docker_gid], env=env)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"may not create {repo}/.venv" in r.stderr, r.stderr
        assert "--venv DIR" in r.stderr, r.stderr
        assert not (repo / ".venv").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_lab_script_as_an_unprivileged_user(built, docker_client) -> None:
    """The README's first command as a user in the docker group (not root): it makes its own venv from Debian's
    python3, installs the kernels where that user may write and the venv's JupyterLab looks, and JupyterLab
    runs a container kernel as that user. Then everything is shut down and nothing is left."""
    account = _test_account()
    built("minimal:cpu")
    base = Path(tempfile.mkdtemp(prefix="dockyard-lab-user-"))  # pytest's temp root is private to root
    os.chmod(base, 0o755)
    repo, home, log = base / "dockyard", base / "home", base / "lab.log"
    _copy_checkout(repo)
    home.mkdir()
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(base)], check=True)
    port, token = free_port(), uuid.uuid4().hex
    cmd = ["bash", "scripts/lab.sh", "--local-base", "--envs", "minimal:cpu", "--port", str(port),
           "--", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]  # fmt: skip
    groups = [g for g in os.getgrouplist(account.pw_name, account.pw_gid) if g != account.pw_gid]
    assert grp.getgrnam("docker").gr_gid in groups, f"{TEST_USER} is not in group docker"
    with log.open("w") as f:
        proc = subprocess.Popen(
            cmd, cwd=repo, env=_user_env(home, account), stdout=f, stderr=subprocess.STDOUT,
            user=account.pw_uid, group=account.pw_gid, extra_groups=groups, start_new_session=True,
        )  # fmt: skip
    server = JupyterProc(f"http://127.0.0.1:{port}", token, proc, repo / "notebooks", log)
    try:
        _wait_for_server(server, proc, log, timeout=600)
        out = log.read_text()
        assert "PIP_BREAK_SYSTEM_PACKAGES" not in out
        # Everything in the venv comes from the host lock, at the lock's version (nothing unpinned, no Node builder).
        frozen = subprocess.run(
            [str(repo / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        unlocked = _pins(frozen) - _pins((repo / "requirements" / "lab.txt").read_text())
        assert not unlocked, f"installed but not as requirements/lab.txt pins them: {sorted(unlocked)}"
        assert f"→ {repo}/.venv/share/jupyter/kernels/dockyard-minimal-cpu" in out, out[-4000:]
        # lab.sh exec'd the venv's JupyterLab, which runs as the account.
        assert Path(f"/proc/{proc.pid}").stat().st_uid == account.pw_uid
        assert f"{repo}/.venv/bin/".encode() in Path(f"/proc/{proc.pid}/cmdline").read_bytes()

        specs = server.api("GET", "/api/kernelspecs").json()["kernelspecs"]
        offered = {name: info["spec"] for name, info in specs.items() if name.startswith("dockyard-")}
        assert "dockyard-minimal-cpu" in offered, sorted(specs)
        _assert_all_built(docker_client, offered)

        r = server.new_session("dockyard-minimal-cpu", name="probe.ipynb")
        assert r.status_code == 201, f"{r.text}\n{log.read_text()[-4000:]}"
        session = r.json()
        kernel_id = session["kernel"]["id"]
        [container] = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"})
        assert container in owned_containers(docker_client, proc.pid)
        code = (
            "import json, os, sys; open('from-kernel.txt', 'w').write('hi'); "
            "print(json.dumps({'uid': os.getuid(), 'docker': os.path.exists('/.dockerenv'), "
            "'python': sys.executable, 'env': os.environ.get('DOCKYARD_ENV')}))"
        )
        seen = json.loads(server.execute(kernel_id, code))
        assert seen["uid"] == account.pw_uid
        assert seen["docker"], seen  # inside a container ...
        assert seen["env"] == "minimal", seen  # ... of the minimal image
        assert not seen["python"].startswith(str(repo)), seen  # not the host's venv
        assert (repo / "notebooks" / "from-kernel.txt").stat().st_uid == account.pw_uid

        proc.terminate()  # with the session still open, as a user stops JupyterLab: it shuts its kernels down
        proc.wait(timeout=60)
        assert remove_leftovers(docker_client, proc.pid, wait=15) == [], "kernel containers outlived JupyterLab"
        assert _group_processes(proc.pid) == [], "processes of the lab.sh run are still there"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        remove_leftovers(docker_client, proc.pid)
        remove_mounting(docker_client, base)
        shutil.rmtree(base, ignore_errors=True)
