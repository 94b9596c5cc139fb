"""Retake the README screenshots: docs/images/launcher.png, notebook.png, panel.png and panel-switched.png.

Starts a private JupyterLab on 127.0.0.1 (free port, random token, a temporary copy of notebooks/ with
outputs cleared, temporary settings and workspaces), drives headless Chromium through Playwright, then
stops JupyterLab and checks that no dockyard kernel container is left.

- launcher.png: the JupyterLab launcher with the "(..., container)" kernels and their logos.
- notebook.png: notebooks/pytorch/training.ipynb run top to bottom on "PyTorch 2.13.0 (CPU, container)".
- panel.png, panel-switched.png: notebooks/panel/environment-panel.ipynb on minimal:cpu with the environment
  panel, then after its Switch to pytorch:cpu and the next cell run there (needs the panel's server extension
  and labextension, which `pip install` brings; images minimal:cpu and pytorch:cpu built).

Prerequisites (once): `bash scripts/lab.sh [--local-base] --no-lab` (images built, kernelspecs installed
into .venv), and run this with that venv's Python and the same dockyard settings (config file / DOCKYARD_*
variables, XDG_CONFIG_HOME) so the kernels resolve the images you built. Python packages:
`.venv/bin/pip install playwright pillow`; the browser is the system Chromium (no `playwright install`):

    .venv/bin/python scripts/screenshots.py [--chromium /usr/bin/chromium] [--out docs/images]

Only 127.0.0.1 is contacted: every other request from the browser is aborted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "pytorch/training.ipynb"
PANEL_NOTEBOOK = "panel/environment-panel.ipynb"
KERNEL_DISPLAY = "PyTorch 2.13.0 (CPU, container)"
KERNEL_LABEL = "org.dockyard.kernel-id"
KERNEL_STATUS = "window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status"
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# JupyterLab settings for a quiet, offline UI: no news or update checks (they would reach the internet).
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(dest: Path) -> None:
    """notebooks/ → dest, with outputs and execution counts cleared (the screenshot shows this run's)."""
    shutil.copytree(REPO / "notebooks", dest)
    for path in dest.rglob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        path.write_text(json.dumps(nb, indent=1) + "\n")


def api(base: str, token: str, path: str, method: str = "GET") -> object:
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def kernel_containers(kernel_id: str) -> list[str]:
    cmd = ["docker", "ps", "-a", "-q", "--filter", f"label={KERNEL_LABEL}={kernel_id}"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()


def save_png(png: bytes, path: Path) -> None:
    """Write a screenshot as a 256-colour PNG (UI screenshots lose nothing visible, and stay small)."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size // 1024} KB)")


def shoot(page, base: str, token: str, out: Path) -> None:
    def only_local(route):
        return route.continue_() if urlparse(route.request.url).hostname == "127.0.0.1" else route.abort()

    page.route("**/*", only_local)

    # (a) the launcher
    page.goto(f"{base}/lab?reset&token={token}")
    page.wait_for_selector(f'.jp-LauncherCard[title="{KERNEL_DISPLAY}"] img', timeout=60_000)
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover highlight
    time.sleep(1)
    save_png(page.screenshot(), out / "launcher.png")

    # (b) the PyTorch notebook, run top to bottom in its container kernel
    page.goto(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_selector(f'.jp-NotebookPanel-toolbar :text("{KERNEL_DISPLAY}")', timeout=60_000)
    # Run all only once the container kernel is up (requests sent while it starts may be dropped).
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready; }")
    page.wait_for_function(f"() => {KERNEL_STATUS} === 'idle'", timeout=120_000, polling=500)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    done = f"""() => {{
        const cells = [...window.jupyterapp.shell.currentWidget.content.model.cells].filter(c => c.type === 'code');
        return cells.every(c => c.executionCount) && {KERNEL_STATUS} === 'idle';
    }}"""
    page.wait_for_function(done, timeout=180_000, polling=500)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")  # (the temporary copy)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:enter-command-mode')")
    # Show the training run: the bottom of the accuracy cell (the sixth cell) at the bottom of the notebook area.
    page.evaluate("() => document.querySelectorAll('.jp-Notebook .jp-Cell')[5].scrollIntoView({block: 'end'})")
    page.mouse.move(0, VIEWPORT["height"] - 1)
    time.sleep(1)
    save_png(page.screenshot(), out / "notebook.png")


def shoot_panel(page, base: str, token: str, out: Path) -> None:
    """The environment panel before and after its Switch (minimal:cpu → pytorch:cpu)."""
    page.goto(f"{base}/lab/tree/{PANEL_NOTEBOOK}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready; }")
    page.wait_for_function(f"() => {KERNEL_STATUS} === 'idle'", timeout=120_000, polling=500)
    run = """async (index) => { const nb = window.jupyterapp.shell.currentWidget;
        nb.content.activeCellIndex = index; await window.jupyterapp.commands.execute('notebook:run-cell'); }"""
    page.evaluate(run, 1)
    page.wait_for_selector(".dockyard-panel .dockyard-table", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:enter-command-mode')")
    page.mouse.move(0, VIEWPORT["height"] - 1)
    time.sleep(1)
    save_png(page.screenshot(), out / "panel.png")
    page.locator('.dockyard-panel tr[data-ref="pytorch:cpu"] button.dockyard-switch').click()
    page.wait_for_selector(".dockyard-notice.dockyard-ok", timeout=180_000)
    page.evaluate(run, 3)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell:last-child .jp-OutputArea-output", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:enter-command-mode')")
    page.evaluate("() => document.querySelector('.jp-Notebook .jp-CodeCell:last-child').scrollIntoView({block: 'end'})")
    page.mouse.move(0, VIEWPORT["height"] - 1)
    time.sleep(1)
    save_png(page.screenshot(), out / "panel-switched.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chromium", default="/usr/bin/chromium", help="the Chromium executable (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "images", help="output folder (default: docs/images)"
    )
    parser.add_argument(
        "--only", choices=["kernels", "panel"], default=None, help="only the kernel shots or only the panel shots"
    )
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dockyard-shots-") as tmp:
        tmp = Path(tmp)
        copy_notebooks(tmp / "notebooks")
        for name, values in SETTINGS.items():
            (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "settings" / name).write_text(json.dumps(values))
        log = open(tmp / "lab.log", "w")  # noqa: SIM115  (the server writes it until the finally below)
        lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                *(["--allow-root"] if os.geteuid() == 0 else []),
                f"--IdentityProvider.token={token}",
                "--notebook-dir",
                str(tmp / "notebooks"),
                "--LabApp.expose_app_in_browser=True",
                f"--LabApp.user_settings_dir={tmp / 'settings'}",
                f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ok, kernel_ids = False, []
        try:
            for _ in range(120):
                try:
                    api(base, token, "/api/status")
                    break
                except OSError:
                    if lab.poll() is not None:
                        raise RuntimeError("JupyterLab exited") from None
                    time.sleep(0.5)
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(
                    str(tmp / "chromium"),
                    executable_path=args.chromium,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport=VIEWPORT,
                    device_scale_factor=1,
                )
                try:
                    page = context.new_page()
                    try:
                        if args.only != "panel":
                            shoot(page, base, token, args.out)
                        if args.only != "kernels":
                            shoot_panel(page, base, token, args.out)
                        ok = True
                    except Exception:
                        failed = Path(tempfile.gettempdir()) / "dockyard-screenshots-failed.png"
                        page.screenshot(path=str(failed))
                        print(f"failed; the page is in {failed}", file=sys.stderr)
                        raise
                finally:
                    context.close()
        finally:
            try:  # shut the kernels down (their containers go with them), then the server
                kernel_ids = [kernel["id"] for kernel in api(base, token, "/api/kernels")]
                for kernel_id in kernel_ids:
                    api(base, token, f"/api/kernels/{kernel_id}", method="DELETE")
                api(base, token, "/api/shutdown", method="POST")
                lab.wait(timeout=60)
            except Exception:
                os.killpg(lab.pid, signal.SIGTERM)
                lab.wait(timeout=60)
            log.close()
            if not ok:
                print((tmp / "lab.log").read_text()[-4000:], file=sys.stderr)
    time.sleep(2)
    left = [c for kernel_id in kernel_ids for c in kernel_containers(kernel_id)]
    if left:
        print(f"dockyard kernel containers left: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
