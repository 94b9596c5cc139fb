"""Index credentials never reach an image: a build asked to use `user:token@` stops before the engine sees
anything, and no dockyard image on the engine (history, config or any layer) holds the token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dockyard.labels import LABEL_ENV

from .helpers import REPO, SITE_ENV

pytestmark = pytest.mark.engine

TOKEN = "dockyardSecretToken7f3a"  # unique: found anywhere in an image, it came from this test


def _holds(image, token: bytes) -> list[str]:  # type: ignore[no-untyped-def]
    """Where token occurs in an image: its history, its config, or a layer (streamed, never held in memory)."""
    found = [f"history: {h.get('CreatedBy', '')[:80]}" for h in image.history() if token.decode() in str(h)]
    if token.decode() in str(image.attrs):
        found.append("image config")
    tail = b""
    for chunk in image.save(named=False):  # the image tarball: every layer and the config
        if token in tail + chunk:
            found.append("a layer")
            break
        tail = chunk[-len(token) :]
    return found


def test_a_credentialed_index_is_refused_and_no_image_holds_it(built, docker_client) -> None:
    image = docker_client.images.get(built("minimal:cpu").tag)
    before = {i.id for i in docker_client.images.list(all=True)}
    url = f"https://builder:{TOKEN}@127.0.0.1:9/simple"
    for variable in ("DOCKYARD_PIP_INDEX_URL", "DOCKYARD_PIP_EXTRA_INDEX_URLS"):
        env = {**os.environ, **SITE_ENV, variable: url}
        done = subprocess.run(
            [sys.executable, "-m", "dockyard", "build", "minimal:cpu"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0
        assert "carries credentials" in done.stderr
        assert "Traceback" not in done.stderr
        assert TOKEN not in done.stdout + done.stderr  # the message masks it too
    assert {i.id for i in docker_client.images.list(all=True)} == before  # nothing was built
    for candidate in docker_client.images.list(filters={"label": f"{LABEL_ENV}=minimal"}):
        assert not _holds(candidate, TOKEN.encode()), candidate.tags
    # The check itself finds what is there: the image's own environment name is in its config and layers.
    assert _holds(image, b"DOCKYARD_ENV")


def test_kernel_env_reaches_the_container_literally(built, tmp_path, monkeypatch) -> None:
    """kernel.json as `kernels generate` writes it: jupyter_client's ${VAR} substitution fills in nothing from the
    server's environment (its token stays out of the container), and `$` in a value arrives as written."""
    from dataclasses import replace

    from jupyter_client.manager import KernelManager

    from dockyard import specs
    from dockyard.kernel import kernelspec

    built("minimal:cpu")
    spec = specs.load("minimal")
    values = {"TOKEN_COPY": "${JUPYTER_TOKEN}", "PRICE": "$5 and $$ and $HOME", "TEMPLATE": "{{ 7*7 }} {#"}
    spec = replace(spec, kernel={**spec.kernel, "env": values})
    kernelspec.write_dir(spec, spec.variants["cpu"], tmp_path / "jupyter" / "kernels")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    km = KernelManager(kernel_name=kernelspec.kernel_name(spec, spec.variants["cpu"]))
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=90)
        out: list[str] = []
        code = f"import os, json; print(json.dumps({{k: os.environ.get(k) for k in {sorted(values)!r}}}))"
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok"
        assert json.loads("".join(out)) == values
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
