"""The environment panel end to end, in a real browser: JupyterLab on 127.0.0.1 (token auth) with the panel's
server extension and labextension, headless Debian Chromium through Playwright, real container kernels.

- Switch: a notebook on minimal:cpu runs `dockyard.panel()`, Switch to pytorch:cpu, and the next cell runs
  in pytorch's container; a second notebook open beside it (and focused) keeps its kernel.
- Build: the panel's Build shows the build's steps live and the image afterwards.
- Messages: without the labextension the panel still lists environments and says how to switch; without
  the server extension it says how to enable it.

Screenshots are kept in test-artifacts/panel/ (git-ignored), pass or fail.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dockyard import specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.images.build_mutex import tag_lock
from dockyard.images.plan import make_plan
from dockyard.labels import LABEL_KERNEL_ID

from .helpers import (
    LABEXTENSION,
    REPO,
    JupyterProc,
    copy_spec,
    install_kernelspecs,
    remove_leftovers,
    restamp_locks,
    start_jupyter,
    stop_jupyter,
)

pytestmark = [pytest.mark.engine, pytest.mark.browser]

CHROMIUM = os.environ.get("DOCKYARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "panel"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
# No news or update checks: they would reach the internet.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}
}
PANEL_CELL = "import dockyard; dockyard.panel()"
CURRENT = "window.jupyterapp.shell.currentWidget"


def _lab(
    tmp: Path, *, labextension: bool = True, server_extension: bool = True, **env: str
) -> tuple[JupyterProc, Path]:
    if labextension:
        assert (LABEXTENSION / "package.json").is_file(), (
            f"the panel's labextension (checked in) is missing from {LABEXTENSION}: git checkout it, or rebuild it "
            "with bash scripts/build-labextension.sh"
        )
    jupyter_path = install_kernelspecs(tmp / "prefix")
    if labextension:  # where the wheel puts it: PREFIX/share/jupyter/labextensions/dockyard-panel
        (jupyter_path / "labextensions").mkdir()
        (jupyter_path / "labextensions" / "dockyard-panel").symlink_to(LABEXTENSION)
    else:
        # An installed dockyard (pip install -e . in CI) puts the labextension into sys.prefix, which every
        # JupyterLab reads: disable it as a user would ('jupyter labextension disable'), in this lab's config dir.
        labconfig = tmp / "lab" / "jupyter" / "config" / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {"dockyard-panel": True}}))
    for name, values in LAB_SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(values))
    args = [
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={tmp / 'settings'}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
    ]
    if not server_extension:
        args.append("--ServerApp.jpserver_extensions={'dockyard.frontends.panel': False}")
    return start_jupyter("lab", jupyter_path, tmp / "lab", *args, **env), jupyter_path


@pytest.fixture
def lab_factory(tmp_path, docker_client) -> Iterator:
    started: list[JupyterProc] = []

    def start(**kwargs) -> JupyterProc:
        lab, _ = _lab(tmp_path / f"lab{len(started)}", **kwargs)
        started.append(lab)
        return lab

    yield start
    leftovers: list[str] = []
    for lab in started:
        stop_jupyter(lab)
        leftovers += remove_leftovers(docker_client, lab.proc.pid, wait=15)
    assert not leftovers, f"kernel containers outlived JupyterLab: {leftovers}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (scripts/install-test-tools.sh)"
    )
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request) -> Iterator:
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(90_000)  # a loaded 2-core machine (kernels, builds and Chromium share it)

    def only_local(route) -> None:  # tests talk to 127.0.0.1 only
        return route.continue_() if urlparse(route.request.url).hostname == "127.0.0.1" else route.abort()

    page.route("**/*", only_local)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"))
    context.close()


def notebook(lab: JupyterProc, name: str, kernel: str, cells: list[str]) -> str:
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None} for c in cells
        ],
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / name).write_text(json.dumps(nb))
    return name


def wait_idle(page, widget: str = CURRENT, timeout: float = 120_000) -> None:
    page.wait_for_function(
        f"() => {widget}?.sessionContext?.session?.kernel?.status === 'idle'", timeout=timeout, polling=250
    )


def open_notebook(page, lab: JupyterProc, path: str) -> None:
    # One reload is allowed: on a loaded 2-core machine JupyterLab's first page load can lose a stylesheet
    # request ("Error Loading Theme") and stop there; a person would reload too.
    for attempt in (1, 2):
        page.goto(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")
        try:
            page.wait_for_function(
                f"() => window.jupyterapp?.shell?.currentWidget?.context?.path === {json.dumps(path)}",
                timeout=60_000,
            )
            break
        except Exception:
            if attempt == 2:
                raise
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready; }")
    wait_idle(page)


def run_panel(page, widget: str = CURRENT) -> None:
    """Runs the notebook's first cell (the panel) in `widget` and waits for the environment list."""
    page.evaluate(
        f"""async () => {{
        const nb = {widget};
        nb.content.activeCellIndex = 0;
        window.jupyterapp.shell.activateById(nb.id);
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }}"""
    )
    page.wait_for_selector(".dockyard-panel .dockyard-table", timeout=120_000)


def run_cell(page, code: str, timeout: float = 120_000, wait: bool = True) -> str:
    """Appends a cell to the current notebook, runs it, returns its text output (with wait)."""
    page.evaluate(
        f"""async () => {{
        const nb = {CURRENT};
        const n = nb.content.model.cells.length;
        nb.content.model.sharedModel.insertCell(n, {{cell_type: 'code', source: {json.dumps(code)}}});
        nb.content.activeCellIndex = n;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }}"""
    )
    last = ".jp-Notebook .jp-CodeCell:last-child .jp-OutputArea-output"
    if not wait:
        return ""
    page.wait_for_selector(last, timeout=timeout)
    return page.inner_text(last)


def sessions(lab: JupyterProc) -> dict[str, dict]:
    return {s["path"]: s["kernel"] for s in lab.api("GET", "/api/sessions").json()}


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


@pytest.mark.slow
def test_switch_moves_only_the_notebook_holding_the_panel(lab_factory, page, built, docker_client) -> None:
    built("minimal:cpu")
    pytorch = built("pytorch:cpu")
    lab = lab_factory()
    notebook(lab, "a.ipynb", "dockyard-minimal-cpu", [PANEL_CELL])
    notebook(lab, "b.ipynb", "dockyard-minimal-cpu", ["import os; print(os.environ['DOCKYARD_ENV'])"])
    open_notebook(page, lab, "a.ipynb")
    run_panel(page)
    # The second notebook beside the first, and focused: a switch must follow the panel, not the focus.
    page.evaluate(
        "async () => { await window.jupyterapp.commands.execute('docmanager:open', "
        "{path: 'b.ipynb', options: {mode: 'split-right'}}); }"
    )
    page.wait_for_function(f"() => {CURRENT}?.context?.path === 'b.ipynb'", timeout=60_000)
    wait_idle(page)
    before = sessions(lab)
    assert before["a.ipynb"]["name"] == before["b.ipynb"]["name"] == "dockyard-minimal-cpu"

    panel = page.locator(".dockyard-panel")
    assert panel.locator(".dockyard-no-labextension").count() == 0
    assert panel.locator(".dockyard-facts").get_attribute("data-env") == "minimal:cpu"
    assert "this notebook" in panel.locator('tr[data-ref="minimal:cpu"]').inner_text()
    pytorch_row = panel.locator('tr[data-ref="pytorch:cpu"]')
    assert "built" in pytorch_row.locator(".dockyard-image").inner_text()
    shot(page, "switch-before.png")

    pytorch_row.locator("button.dockyard-switch").click()
    page.wait_for_selector(".dockyard-notice.dockyard-ok", timeout=180_000)
    assert "now runs on PyTorch 2.13.0 (CPU, container)" in panel.locator(".dockyard-notice").inner_text()
    # Refreshed from the new kernel itself (the labextension evaluates the facts there).
    page.wait_for_selector('.dockyard-facts[data-env="pytorch:cpu"]', timeout=60_000)
    assert "torch: 2.13.0" in panel.locator(".dockyard-facts").inner_text()
    assert "this notebook" in pytorch_row.inner_text()
    shot(page, "switch-after.png")

    after = sessions(lab)
    assert after["a.ipynb"]["name"] == "dockyard-pytorch-cpu"
    assert (after["b.ipynb"]["id"], after["b.ipynb"]["name"]) == (before["b.ipynb"]["id"], "dockyard-minimal-cpu")
    [container] = docker_client.containers.list(filters={"label": f"{LABEL_KERNEL_ID}={after['a.ipynb']['id']}"})
    assert pytorch.tag in container.image.tags

    page.evaluate(
        "() => { const a = window.jupyterapp.shell.widgets('main')"
        ".find(w => w.context?.path === 'a.ipynb'); window.jupyterapp.shell.activateById(a.id); }"
    )
    page.wait_for_function(f"() => {CURRENT}?.context?.path === 'a.ipynb'")
    out = run_cell(
        page, "import os, torch; print(os.environ['DOCKYARD_ENV'], torch.__version__, torch.ones(2).sum().item())"
    )
    assert out.split() == ["pytorch", "2.13.0+cpu", "2.0"]
    shot(page, "switch-first-cell.png")


def test_build_from_the_panel_shows_its_steps(tmp_envs, lab_factory, page, built, docker_client) -> None:
    original = built("minimal:cpu")
    path = copy_spec("minimal", tmp_envs)  # a variable changes only the image's last layers: a quick real build
    path.write_text(path.read_text() + f'env:\n  TEST_RUN_NONCE: "{time.time_ns()}"\n')
    spec, variant = specs.resolve("minimal:cpu")
    plan = make_plan(spec, variant, load_settings().build)
    lab = lab_factory()
    # A host kernel shows the panel here (this lab's minimal:cpu image is the one being built).
    notebook(lab, "build.ipynb", "python3", [PANEL_CELL])
    try:
        open_notebook(page, lab, "build.ipynb")
        run_panel(page)
        row = page.locator('.dockyard-panel tr[data-ref="minimal:cpu"]')
        assert page.locator(".dockyard-no-labextension").count() == 0  # this lab has it
        assert row.locator(".dockyard-image").inner_text() == "outdated"
        assert "minimal:cpu" in page.locator(".dockyard-panel .dockyard-missing").inner_text()
        assert "dockyard build minimal:cpu" in row.locator(".dockyard-image").get_attribute("title")
        # Record every progress text the panel shows, however briefly.
        page.evaluate(
            """() => { window.__steps = []; new MutationObserver(() => {
                for (const s of document.querySelectorAll('.dockyard-step')) {
                    if (window.__steps.at(-1) !== s.textContent) window.__steps.push(s.textContent);
                } }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
        )
        with tag_lock(
            docker_client, plan.tag, plan.base, lambda _line: None
        ):  # hold the build at its start for a steady screenshot
            row.locator("button.dockyard-build").click()
            page.wait_for_selector(".dockyard-progress .dockyard-last:has-text('waiting for another build')")
            shot(page, "build-progress.png")
        page.wait_for_selector(".dockyard-notice.dockyard-ok", timeout=300_000)
        shot(page, "build-done.png")
        steps = [s for s in page.evaluate("() => window.__steps") if s.startswith("step ")]
        numbers = [int(s.split()[1].split("/")[0]) for s in steps]
        assert numbers, "the panel showed no build step"
        assert numbers == sorted(numbers)
        assert len(numbers) >= 5
        assert f"({plan.tag})" in page.locator(".dockyard-notice").inner_text()
        page.wait_for_function(
            """() => document.querySelector('.dockyard-panel tr[data-ref="minimal:cpu"] .dockyard-image')
                ?.textContent.startsWith('built')"""
        )
        assert find_image(docker_client, plan.tag) is not None
    finally:
        docker_client.images.get(original.image_id).tag(plan.alias)
        if find_image(docker_client, plan.tag):
            docker_client.images.remove(plan.tag)


def test_without_the_labextension_the_panel_lists_and_says_how_to_switch(lab_factory, page, built) -> None:
    built("minimal:cpu")
    lab = lab_factory(labextension=False)
    notebook(lab, "plain.ipynb", "python3", [PANEL_CELL])
    open_notebook(page, lab, "plain.ipynb")
    run_panel(page)
    panel = page.locator(".dockyard-panel")
    assert "labextension is not active" in panel.locator(".dockyard-no-labextension").inner_text()
    row = panel.locator('tr[data-ref="minimal:cpu"]')
    row.locator("button.dockyard-switch").click()
    notice = panel.locator(".dockyard-notice").inner_text()
    assert 'pick "Python 3.11 minimal (CPU, container)"' in notice
    assert sessions(lab)["plain.ipynb"]["name"] == "python3"
    shot(page, "no-labextension.png")


def test_without_the_server_extension_the_panel_says_how_to_enable_it(lab_factory, page) -> None:
    lab = lab_factory(server_extension=False)
    notebook(lab, "plain.ipynb", "python3", ["print('first cell')"])
    open_notebook(page, lab, "plain.ipynb")
    # Opened from the command palette's command: it adds the panel cell below and runs it.
    page.evaluate("async () => { await window.jupyterapp.commands.execute('dockyard:open-panel'); }")
    fatal = page.wait_for_selector(".dockyard-panel .dockyard-fatal", timeout=120_000).inner_text()
    assert "server extension is not enabled" in fatal
    assert "jupyter server extension enable dockyard.frontends.panel" in fatal
    sources = page.evaluate(f"() => {CURRENT}.content.model.sharedModel.cells.map(c => c.getSource())")
    assert sources == ["print('first cell')", PANEL_CELL]
    shot(page, "no-server-extension.png")


def test_a_failing_build_shows_its_step_and_a_stopped_engine_is_said(
    tmp_envs, lab_factory, page, built, tmp_path
) -> None:
    built("minimal:cpu")
    path = copy_spec("minimal", tmp_envs)  # the base has Python 3.11: the image's own check fails at once
    path.write_text(
        path.read_text().replace('python: "3.11"', 'python: "3.12"').replace('version: "3.11"', 'version: "3.12"')
    )
    restamp_locks(path)
    lab = lab_factory()
    notebook(lab, "fail.ipynb", "python3", [PANEL_CELL])
    open_notebook(page, lab, "fail.ipynb")
    run_panel(page)
    page.locator('.dockyard-panel tr[data-ref="minimal:cpu"] button.dockyard-build').click()
    failed = page.wait_for_selector('.dockyard-build-failed[data-ref="minimal:cpu"]', timeout=180_000).inner_text()
    assert "Failed step: RUN python3 -c 'import sys; v = sys.version_info" in failed
    assert "base image has Python 3.11 but the spec asks for 3.12" in failed
    assert "\x1b" not in failed  # the build's terminal colours are stripped
    shot(page, "build-failed.png")

    down = lab_factory(DOCKER_HOST=f"unix://{tmp_path / 'no-daemon.sock'}")
    notebook(down, "down.ipynb", "python3", [PANEL_CELL])
    open_notebook(page, down, "down.ipynb")
    run_panel(page)
    message = page.locator(".dockyard-panel .dockyard-engine").inner_text()
    assert "Cannot reach the Docker engine" in message
    assert "Fix:" in message
    assert page.locator(".dockyard-panel button.dockyard-build").first.is_disabled()
    shot(page, "engine-down.png")


def test_the_panel_shows_this_kernels_figures_live_warns_of_the_cull_and_an_oom_says_why(
    tmp_path, page, built, docker_client
) -> None:
    """What the kernel uses, refreshed while the panel is shown; the culler's warning; a cell past the kernel's
    256m limit gets kernel/death.py's paragraph in its output, and the kernel restarts."""
    built("minimal:cpu")
    lab, jupyter_path = _lab(tmp_path / "lab", DOCKYARD_CULL_IDLE_TIMEOUT="300", DOCKYARD_CULL_CONNECTED="1")
    try:
        spec = json.loads((jupyter_path / "kernels" / "dockyard-minimal-cpu" / "kernel.json").read_text())
        spec["metadata"]["kernel_provisioner"]["config"]["memory"] = "256m"
        (jupyter_path / "kernels" / "minimal-256m").mkdir()
        (jupyter_path / "kernels" / "minimal-256m" / "kernel.json").write_text(json.dumps(spec))
        notebook(lab, "usage.ipynb", "minimal-256m", [PANEL_CELL])
        open_notebook(page, lab, "usage.ipynb")
        run_panel(page)
        usage = page.locator(".dockyard-panel .dockyard-usage")
        usage.wait_for(timeout=30_000)
        assert "/ 256 MiB" in usage.inner_text()
        assert "no GPU" in usage.inner_text()
        warning = page.locator(".dockyard-panel .dockyard-cull")
        warning.wait_for(timeout=30_000)
        assert "will be shut down in" in warning.inner_text()

        held = "held = bytearray(150 << 20); held[::4096] = b'1' * len(held[::4096]); print('held')"
        assert run_cell(page, held).strip() == "held"
        start = time.monotonic()
        page.wait_for_function(
            "() => parseFloat(document.querySelector('.dockyard-usage-mem').innerText.split('memory')[1]) >= 150",
            timeout=15_000,
            polling=200,
        )
        print(f"the panel showed the new allocation {time.monotonic() - start:.1f} s after the cell ended")
        shot(page, "usage-figures.png")

        hog = "x = [bytearray(64 << 20) for _ in range(64)]\nfor b in x: b[::4096] = b'1' * len(b[::4096])"
        run_cell(page, hog, wait=False)
        # Under the dying cell, even when the kernel dies before its iopub "busy" left the container
        # (kernel/death_notice.py follows the requests sent on the shell channel).
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')]
                .filter(c => c.querySelector('.jp-InputArea').innerText.includes('bytearray(64 << 20)'))
                .some(c => [...c.querySelectorAll('.jp-OutputArea-output')]
                    .some(e => e.innerText.includes('out of memory at 256 MiB')))""",
            timeout=60_000,
            polling=200,
        )
        shot(page, "usage-oom.png")
        wait_idle(page)  # restarted
        assert run_cell(page, "print(6 * 7)").strip() == "42"
    finally:
        stop_jupyter(lab)
        leftovers = remove_leftovers(docker_client, lab.proc.pid, wait=15)
        assert not leftovers, (
            f"kernel containers outlived JupyterLab (exit {lab.proc.returncode}): {leftovers}\n{lab.log_tail()}"
        )
