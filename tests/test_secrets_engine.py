"""Index credentials never reach an image: a build asked to use `user:token@` stops before the engine sees
anything, and no dockyard image on the engine (history, config or any layer) holds the token."""

from __future__ import annotations

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
