"""Data mounts on the real engine, as an unprivileged user (CI runs as root, which hides UID bugs): what a kernel
writes into a read-write mount, a named cache or a created folder is the user's on the host; a read-only mount
refuses writes; each refused mount is one paragraph and no container is ever created for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import (
    KERNEL_SCRIPT,
    REPO,
    SITE_ENV,
    TEST_UID,
    assert_one_paragraph,
    copy_locks,
    gone,
    kernel,
    write_kernelspec,
)

pytestmark = pytest.mark.engine


@pytest.fixture
def user_base(built) -> Iterator[Path]:
    """A folder the unprivileged user owns (pytest's tmp dirs are closed to it), removed afterwards."""
    built("minimal:cpu")
    base = Path(tempfile.mkdtemp(prefix="dockyard-data-mounts-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("pool", ["0", "1"], ids=["cold", "pooled"])
def test_mounts_behave_as_the_workspace_for_an_unprivileged_user(pool, user_base, user_python, docker_client):
    """Cold, and from the warm pool: a pooled container has exactly the mounts a cold one would."""
    home, envs, ws, data, ro, jp = (user_base / n for n in ("home", "envs", "work", "data", "ro", "jupyter"))
    for d in (home, envs, ws, data, ro, jp, user_base / "runtime"):
        d.mkdir()
    (ro / "in.txt").write_text("dataset")
    copy_locks("minimal", envs)
    (envs / "minimal.yaml").write_text(
        (REPO / "envs" / "minimal.yaml").read_text()
        + "mounts:\n"
        + "  - {source: $DATA_ROOT/data, target: /data}\n"
        + f"  - {{source: {ro}, target: /ro, read_only: true}}\n"
        + "  - {cache: hf, target: /cache/huggingface}\n"
        + "  - {source: $DATA_ROOT/home/scratch/run1, create: true}\n"
    )
    write_kernelspec(jp, "dy-data", {"env": "minimal", "variant": "cpu"})
    subprocess.run(["chown", "-R", f"{TEST_UID}:{TEST_UID}", str(user_base)], check=True)
    (ro / "in.txt").chmod(0o644)
    code = (
        "import json, os\n"
        "open('/data/out.txt', 'w').write('from the kernel')\n"
        "open('/cache/huggingface/model.bin', 'w').write('weights')\n"
        f"open('{home}/scratch/run1/log.txt', 'w').write('step 1')\n"
        "try:\n    open('/ro/new.txt', 'w'); ro = 'written'\nexcept OSError as e:\n    ro = e.strerror\n"
        "print(json.dumps({'ro': ro, 'read': open('/ro/in.txt').read(), 'uid': os.getuid()}))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),  # runuser sets the account's own HOME: the cache goes by XDG_CACHE_HOME
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DATA_ROOT": str(user_base),
        "JUPYTER_PATH": str(jp),
        "JUPYTER_RUNTIME_DIR": str(user_base / "runtime"),
        "DOCKYARD_ENVS_PATH": str(envs),
        "DOCKYARD_CONFIG": os.environ["DOCKYARD_CONFIG"],
        "DOCKYARD_POOL_SIZE": pool,
        **{k: os.environ.get(k, v) for k, v in SITE_ENV.items()},
    }
    runuser = shutil.which("runuser") or "runuser"
    cmd = [runuser, "-u", "dockyard-test", "--", str(user_python), str(KERNEL_SCRIPT), "run", "dy-data", str(ws), code]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["status"] == "ok", report
    assert report["pooled"] is (pool == "1")
    seen = json.loads(report["stdout"])
    assert seen == {"ro": "Read-only file system", "read": "dataset", "uid": TEST_UID}
    cache = home / ".cache" / "dockyard" / "caches" / "minimal" / "hf"
    for path, text in (
        (data / "out.txt", "from the kernel"),
        (cache / "model.bin", "weights"),
        (home / "scratch" / "run1" / "log.txt", "step 1"),
    ):
        assert path.read_text() == text
        assert (path.stat().st_uid, path.stat().st_gid) == (TEST_UID, TEST_UID), path
    assert cache.stat().st_uid == TEST_UID
    assert not (ro / "new.txt").exists()
    assert gone(docker_client, report["container_id"])


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        ("{source: /var/run, target: /engine}", ["/var/run", "system directory"]),
        ("{source: /, target: /host}", ["system directory"]),
        ("{source: ~/.ssh, target: /keys, create: true}", [".ssh"]),
        ("{source: /nonexistent/dy-data, target: /data}", ["does not exist", "create: true"]),
        ("{source: $DY_UNSET_ROOT/x, target: /data}", ["DY_UNSET_ROOT", "does not set"]),
    ],
)
def test_a_refused_mount_is_one_paragraph_and_starts_nothing(
    mount, expected, tmp_envs, tmp_path, monkeypatch, docker_client, built
):
    built("minimal:cpu")
    monkeypatch.delenv("DY_UNSET_ROOT", raising=False)
    copy_locks("minimal", tmp_envs)
    (tmp_envs / "minimal.yaml").write_text((REPO / "envs" / "minimal.yaml").read_text() + f"mounts:\n  - {mount}\n")
    write_kernelspec(tmp_path / "jupyter", "dy-refused", {"env": "minimal", "variant": "cpu"})
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    before = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})}
    with pytest.raises(DockyardError) as caught, kernel("dy-refused", tmp_path):
        pass
    assert_one_paragraph(str(caught.value), "minimal.yaml", *expected)
    after = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})}
    assert after == before


def test_the_cli_refuses_a_bad_mount_spec_with_exit_2(tmp_envs):
    copy_locks("minimal", tmp_envs)
    (tmp_envs / "minimal.yaml").write_text(
        (REPO / "envs" / "minimal.yaml").read_text() + "mounts:\n  - {source: /srv/x, target: /opt/dockyard}\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "dockyard", "kernels", "install", "minimal", "--prefix", str(tmp_envs / "p")],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert res.returncode == 2, res.stderr
    assert_one_paragraph(res.stderr.strip().splitlines()[-1], "minimal.yaml", "/opt/dockyard")
