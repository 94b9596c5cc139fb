"""Provenance for real (issue 26): a notebook run and saved through a Jupyter server on one clone gets its
stamp from the server's pre-save hook (and keeps its bytes on a second save); copied alone to a second clone at
the same commit with no image, the panel's API says "missing", builds exactly the stamp's content tag, and nbval
passes in it; a changed lock then reads "drifted" with the package that moved and the commit of the old lock.

The environment is a throwaway copy of minimal under a unique name, so "no image" is true on a shared engine;
every image of it is removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.engine import find_image
from dockyard.images.build import build
from dockyard.images.lockfile import lock_digest
from dockyard.images.naming import image_repository
from dockyard.images.plan import make_plan
from dockyard.provenance.stamp import errors

from .helpers import REPO, install_kernelspecs, remove_mounting, run_and_clean, start_jupyter, stop_jupyter

pytestmark = pytest.mark.engine

API = "/dockyard/api"
CODE = "print(6 * 7)"


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _origin(tmp: Path, name: str) -> Path:
    origin = tmp / "origin"
    (origin / "envs" / "locks").mkdir(parents=True)
    text = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", f"name: {name}")
    (origin / "envs" / f"{name}.yaml").write_text(text)
    for variant in ("cpu", "cuda"):
        shutil.copy(
            REPO / "envs" / "locks" / f"minimal-{variant}.txt", origin / "envs" / "locks" / f"{name}-{variant}.txt"
        )
    _git(origin, "init", "-q")
    _git(origin, "add", ".")
    _git(origin, "commit", "-qm", "the environment")
    return origin


def _notebook(outputs: list) -> dict:
    cell = {"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {}, "source": CODE, "outputs": outputs}
    kernelspec = {"name": "", "display_name": "", "language": "python"}
    return {"cells": [cell], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}


def _follow(server, build_id: str) -> list[dict]:
    events = []
    with server.api("GET", f"{API}/builds/{build_id}/events", stream=True, timeout=900) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def _remove_images(docker_client, name: str) -> None:
    for image in docker_client.images.list(name=image_repository(name)):
        for tag in image.tags:
            docker_client.images.remove(tag, noprune=False)


def test_a_notebook_reproduces_on_a_second_clone_and_drift_is_seen(
    tmp_path, monkeypatch, docker_client, settings, built
) -> None:
    built("minimal:cpu")  # its layers make the throwaway builds quick
    name = f"provtest-{uuid.uuid4().hex[:8]}"
    ref, kernel = f"{name}:cpu", f"dockyard-{name}-cpu"
    origin = _origin(tmp_path, name)
    clone_a, clone_b = tmp_path / "a", tmp_path / "b"
    _git(tmp_path, "clone", "-q", str(origin), str(clone_a))
    _git(tmp_path, "clone", "-q", str(origin), str(clone_b))
    servers = []
    try:
        # --- clone A: build, run, save through the server: the pre-save hook stamps
        monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(clone_a / "envs"))
        spec, variant = specs.resolve(ref)
        plan = make_plan(spec, variant, settings.build)
        tag = build(docker_client, plan, settings.build).tag
        jupyter_path = install_kernelspecs(tmp_path / "kernels")
        server_a = start_jupyter("server", jupyter_path, tmp_path / "server-a")
        servers.append(server_a)
        r = server_a.new_session(kernel, "run.ipynb")
        assert r.status_code == 201, r.text
        assert server_a.execute(r.json()["kernel"]["id"], CODE, timeout=120) == "42\n"
        nb = _notebook([{"output_type": "stream", "name": "stdout", "text": "42\n"}])
        nb["metadata"]["kernelspec"].update(name=kernel, display_name=kernel)
        put = {"type": "notebook", "format": "json", "content": nb}
        assert server_a.api("PUT", "/api/contents/run.ipynb", json=put).status_code in (200, 201)
        saved = server_a.root / "run.ipynb"
        first = saved.read_bytes()
        stamp = json.loads(first)["metadata"]["dockyard"]
        assert errors(stamp) == []
        assert stamp["content_tag"] == tag
        assert stamp["lock_sha256"] == lock_digest((clone_a / "envs" / "locks" / f"{name}-cpu.txt").read_text())
        assert stamp["framework"] == {"name": "python", "version": "3.11"}
        assert "gpu" not in stamp  # a CPU kernel: no driver recorded
        assert server_a.api("PUT", "/api/contents/run.ipynb", json=put).status_code in (200, 201)
        assert saved.read_bytes() == first  # no churn while the environment stays the same
        answer = server_a.api("GET", f"{API}/provenance", params={"path": str(saved)}).json()
        assert answer["state"] == "matches", answer
        stop_jupyter(server_a)

        # --- clone B, same commit, no image: only the notebook travels
        _remove_images(docker_client, name)
        assert find_image(docker_client, tag) is None
        monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(clone_b / "envs"))
        server_b = start_jupyter("server", jupyter_path, tmp_path / "server-b")
        servers.append(server_b)
        shutil.copy(saved, server_b.root / "run.ipynb")
        answer = server_b.api("GET", f"{API}/provenance", params={"path": "run.ipynb"}).json()
        assert answer["state"] == "missing", answer
        assert answer["exact_build"] is True
        assert answer["current_tag"] == tag
        wrong = server_b.api("POST", f"{API}/builds", json={"ref": ref, "tag": tag[:-1] + "0"})
        assert wrong.status_code == 409, wrong.text
        started = server_b.api("POST", f"{API}/builds", json={"ref": ref, "tag": tag})
        assert started.status_code == 202, started.text
        events = _follow(server_b, started.json()["id"])
        assert events[-1]["type"] == "succeeded", events[-3:]
        assert events[-1]["tag"] == tag
        assert find_image(docker_client, tag) is not None
        assert server_b.api("GET", f"{API}/provenance", params={"path": "run.ipynb"}).json()["state"] == "matches"

        # nbval in the rebuilt environment, on the copied notebook
        env = {**os.environ, "JUPYTER_PATH": str(jupyter_path)}
        cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", kernel, "-p", "no:cacheprovider"]
        cmd += ["-q", "--nbval-kernel-startup-timeout", "120", "run.ipynb"]
        code, out, leftovers = run_and_clean(
            cmd,
            timeout=300,
            clean=lambda _pid: remove_mounting(docker_client, server_b.root),
            cwd=server_b.root,
            env=env,
        )
        assert code == 0, out[-4000:]
        assert "1 passed" in out
        assert not leftovers

        # --- clone B relocks: the stamp now reads "drifted", with the package and the commit of its lock
        lock = clone_b / "envs" / "locks" / f"{name}-cpu.txt"
        lock.write_text(lock.read_text().replace("anywidget==0.11.0", "anywidget==0.11.1"))
        _remove_images(docker_client, name)  # "matches" looks at the engine first
        answer = server_b.api("GET", f"{API}/provenance", params={"path": "run.ipynb"}).json()
        assert answer["state"] == "drifted", answer
        changed = answer["packages"]["changed"]
        assert [(c["name"], c["old"], c["new"]) for c in changed] == [("anywidget", "0.11.0", "0.11.1")]
        assert answer["lock_commit"] == _git(origin, "rev-parse", "HEAD")
    finally:
        for server in servers:
            stop_jupyter(server)
        time.sleep(0.5)
        _remove_images(docker_client, name)
