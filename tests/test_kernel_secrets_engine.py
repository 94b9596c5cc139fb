"""Kernel secrets on the real engine: the kernel reads them (files on a private tmpfs, a variable in its own
process), and a grep for each value finds it nowhere else: not in `docker inspect`, the image (history, config,
every layer), the container's log or file system changes, the kernelspec, a notebook run that printed nothing,
the Jupyter server's log or dockyard's log. A kernel of another environment gets neither the files nor the
server variable a secret comes from."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dockyard.errors import DockyardError
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import (
    REPO,
    assert_one_paragraph,
    copy_locks,
    install_kernelspecs,
    kernel,
    remove_leftovers,
    run,
    start_jupyter,
    stop_jupyter,
    write_kernelspec,
)
from .test_secrets_engine import _holds

pytestmark = pytest.mark.engine

FILE_VALUE = "hf_fileSecret_9c1e7d"  # unique values: found anywhere, they came from this test
ENV_VALUE = "envSecret_51ab02f"
SECRETS = (
    "secrets:\n"
    "  - {name: hf_token, from_file: $DY_TEST_SECRET_DIR/hf_token, env: HF_TOKEN}\n"
    "  - {name: api_key, from_env: DY_TEST_API_KEY}\n"
    "  - {name: not_there, from_env: DY_TEST_NOT_SET}\n"
)


@pytest.fixture
def secret_env(tmp_envs, tmp_path, monkeypatch, built) -> Iterator[Path]:
    """minimal with three secrets (two present), another environment without any, kernelspecs for both."""
    built("minimal:cpu")
    copy_locks("minimal", tmp_envs)
    (tmp_envs / "minimal.yaml").write_text((REPO / "envs" / "minimal.yaml").read_text() + SECRETS)
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir(mode=0o700)
    token = secret_dir / "hf_token"
    token.write_text(FILE_VALUE + "\n")
    token.chmod(0o600)
    monkeypatch.setenv("DY_TEST_SECRET_DIR", str(secret_dir))
    monkeypatch.setenv("DY_TEST_API_KEY", ENV_VALUE)
    monkeypatch.delenv("DY_TEST_NOT_SET", raising=False)
    root = tmp_path / "jupyter"
    write_kernelspec(root, "dy-secrets", {"env": "minimal", "variant": "cpu"})
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return root


def _ours(docker_client) -> set[str]:
    return {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL_KERNEL_ID})}


def test_the_kernel_reads_its_secrets_and_nothing_else_holds_them(secret_env, tmp_path, docker_client, caplog):
    ws = tmp_path / "ws"
    ws.mkdir()
    code = (
        "import os, json, stat\n"
        "d = '/run/secrets'\n"
        "def mode(p): s = os.stat(p); return [oct(stat.S_IMODE(s.st_mode)), s.st_uid]\n"
        "st = {n: mode(f'{d}/{n}') for n in os.listdir(d)}\n"
        "print(json.dumps({'files': {n: open(f'{d}/{n}').read() for n in os.listdir(d) if not n.startswith('.')},\n"
        "  'HF_TOKEN': os.environ.get('HF_TOKEN'), 'api_env': os.environ.get('DY_TEST_API_KEY'),\n"
        "  'dir': mode(d), 'modes': st}))"
    )
    with kernel("dy-secrets", ws) as (km, kc):
        content, out = run(kc, code)
        assert content["status"] == "ok", content
        seen = json.loads(out)
        cid = km.provisioner.container_id
        attrs = docker_client.api.inspect_container(cid)
        logs = docker_client.api.logs(cid).decode()
        changes = json.dumps(docker_client.api.diff(cid))
        image = docker_client.images.get(attrs["Config"]["Image"])
    assert seen["files"] == {"hf_token": FILE_VALUE + "\n", "api_key": ENV_VALUE}
    assert seen["HF_TOKEN"] == FILE_VALUE  # set in the kernel's own process, the line end dropped
    assert seen["api_env"] is None  # the server variable a secret comes from is not copied into the container
    assert seen["dir"] == ["0o700", os.getuid()]
    assert dict(seen["modes"].items()) == {n: ["0o400", os.getuid()] for n in ("hf_token", "api_key", ".ready")}
    for value in (FILE_VALUE, ENV_VALUE):
        assert value not in json.dumps(attrs), "docker inspect holds a secret"
        assert value not in logs
        assert value not in changes
        assert not _holds(image, value.encode()), "the image holds a secret"
        assert not any(value in p.read_text() for p in secret_env.rglob("*.json")), "the kernelspec holds a secret"
        assert value not in caplog.text, "dockyard's log holds a secret"
    assert "secret not_there is missing" in caplog.text  # named with its fix, never a value
    assert "DY_TEST_NOT_SET" in caplog.text


def test_a_restart_reads_the_values_again(secret_env, tmp_path, monkeypatch):
    """A value is read at each start: a rotated token reaches the restarted kernel (a new container, a new tmpfs)."""
    with kernel("dy-secrets", tmp_path) as (km, kc):
        assert run(kc, "print(open('/run/secrets/api_key').read())")[1].strip() == ENV_VALUE
        monkeypatch.setenv("DY_TEST_API_KEY", ENV_VALUE + "-rotated")
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)
        out = run(kc, "import os; print(open('/run/secrets/api_key').read(), os.environ['HF_TOKEN'])")[1]
        assert out.split() == [ENV_VALUE + "-rotated", FILE_VALUE]


def test_a_notebook_run_keeps_no_value(secret_env, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\ntoken = open('/run/secrets/hf_token').read()\nassert token")]
    NotebookClient(nb, kernel_name="dy-secrets", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    assert nb.cells[0].outputs == []
    assert FILE_VALUE not in text
    assert ENV_VALUE not in text


def test_another_environments_kernel_gets_neither(secret_env, tmp_envs, tmp_path, built, docker_client):
    copy_locks("minimal", tmp_envs, as_name="othermin")
    text = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", "name: othermin", 1)
    (tmp_envs / "othermin.yaml").write_text(text)
    built("othermin:cpu")
    write_kernelspec(secret_env, "dy-other", {"env": "othermin", "variant": "cpu"})
    with kernel("dy-other", tmp_path) as (km, kc):
        _, out = run(kc, "import os; print(os.path.exists('/run/secrets'), os.environ.get('DY_TEST_API_KEY'))")
        attrs = docker_client.api.inspect_container(km.provisioner.container_id)
    assert out.split() == ["False", "None"]
    assert ENV_VALUE not in json.dumps(attrs)


def test_a_missing_required_secret_starts_nothing(secret_env, tmp_envs, tmp_path, docker_client):
    spec = tmp_envs / "minimal.yaml"
    spec.write_text(
        spec.read_text().replace("from_env: DY_TEST_NOT_SET}", "from_env: DY_TEST_NOT_SET, required: true}")
    )
    before = _ours(docker_client)
    with pytest.raises(DockyardError) as caught, kernel("dy-secrets", tmp_path):
        pass
    assert_one_paragraph(str(caught.value), "minimal.yaml", "not_there", "DY_TEST_NOT_SET")
    assert _ours(docker_client) == before


def test_the_server_log_holds_no_value(secret_env, tmp_path, docker_client):
    prefix = install_kernelspecs(tmp_path / "prefix")
    srv = start_jupyter("server", prefix, tmp_path / "server", JUPYTER_PATH=f"{prefix}{os.pathsep}{secret_env}")
    try:
        r = srv.new_session("dy-secrets")
        assert r.status_code == 201, f"{r.text}\n{srv.log_tail()}"
        kernel_id = r.json()["kernel"]["id"]
        out = srv.execute(kernel_id, "import os; print(len(os.environ['HF_TOKEN']), os.listdir('/run/secrets'))")
        assert out.startswith(f"{len(FILE_VALUE)} ")
    finally:
        stop_jupyter(srv)
        leftovers = remove_leftovers(docker_client, srv.proc.pid, wait=10)
    assert not leftovers
    log = srv.log.read_text()
    assert "secret not_there is missing" in log
    assert FILE_VALUE not in log
    assert ENV_VALUE not in log
    grep = subprocess.run(["grep", "-rl", FILE_VALUE, str(tmp_path / "server")], capture_output=True, text=True)
    assert grep.stdout == "", f"a server file holds the secret: {grep.stdout}"
