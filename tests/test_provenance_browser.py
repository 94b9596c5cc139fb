"""The panel's provenance box in a real browser (JupyterLab, headless Chromium): a notebook stamped with an
environment this machine does not have reads "missing", its one button builds exactly the stamp's content tag,
and the box then reads "matches". A throwaway copy of minimal under a unique name keeps "missing" true on a
shared engine; its images are removed afterwards. Screenshots go to test-artifacts/panel/."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from dockyard import specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.images.naming import image_repository
from dockyard.images.plan import make_plan
from dockyard.provenance import identity

from .helpers import REPO
from .test_panel_browser import (  # noqa: F401 (fixtures)
    PANEL_CELL,
    browser,
    lab_factory,
    notebook,
    open_notebook,
    page,
    run_panel,
    shot,
)

pytestmark = [pytest.mark.engine, pytest.mark.browser]


def test_a_missing_environment_is_built_exactly_from_the_panel(
    tmp_envs,
    lab_factory,  # noqa: F811 (the browser tests' fixtures, imported)
    page,  # noqa: F811
    built,
    docker_client,
) -> None:
    built("minimal:cpu")  # its layers make the throwaway build quick
    name = f"provpanel-{uuid.uuid4().hex[:8]}"
    (tmp_envs / f"{name}.yaml").write_text(
        (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", f"name: {name}")
    )
    (tmp_envs / "locks").mkdir()
    shutil.copy(REPO / "envs" / "locks" / "minimal-cpu.txt", tmp_envs / "locks" / f"{name}-cpu.txt")
    spec, variant = specs.resolve(f"{name}:cpu")
    stamp = identity.from_plan(make_plan(spec, variant, load_settings().build))
    assert stamp is not None
    lab = lab_factory()
    path = notebook(lab, "stamped.ipynb", "python3", [PANEL_CELL])  # a host kernel shows the panel
    nb = json.loads((lab.root / path).read_text())
    nb["metadata"]["dockyard"] = stamp.to_json()
    (lab.root / path).write_text(json.dumps(nb))
    try:
        open_notebook(page, lab, path)
        run_panel(page)
        box = page.locator('.dockyard-provenance[data-state="missing"]')
        box.wait_for(timeout=60_000)
        assert stamp.content_tag in box.inner_text()
        assert "gives exactly" in box.inner_text()
        shot(page, "provenance-missing.png")
        box.locator("button.dockyard-build-exact").click()
        page.wait_for_selector('.dockyard-provenance[data-state="matches"]', timeout=300_000)
        shot(page, "provenance-matches.png")
        assert find_image(docker_client, stamp.content_tag) is not None
    finally:
        for image in docker_client.images.list(name=image_repository(name)):
            for tag in image.tags:
                docker_client.images.remove(tag, noprune=False)
