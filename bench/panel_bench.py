"""Switch benchmark: from the user's first action to the first cell's result in the new environment,
the panel's Switch against JupyterLab's own Kernel menu (Kernel → Change Kernel… → pick → Select), for the
same switch (minimal:cpu → pytorch:cpu) in the same JupyterLab, interleaved, medians over --runs.

- panel: click Switch on the pytorch:cpu row, wait for the panel's "now runs on" note, run the cell.
- menu:  open Kernel → Change Kernel…, pick "PyTorch 2.13.0 (CPU, container)", Select, wait for the
  kernel to be idle on pytorch, run the cell.
The cell is `import torch; print(torch.__version__)`. The panel also refreshes its kernel facts in the
new kernel (which imports torch there), so its cell may find torch imported already: that is what a user
sees, so it counts.

Run: python bench/panel_bench.py [--runs 3]  (needs a Docker engine, minimal:cpu and pytorch:cpu built
for the site settings; like the tests it uses tests/helpers.py SITE_ENV unless DOCKYARD_* are set, the
labextension built, Playwright and /usr/bin/chromium). Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import REPO as _REPO  # noqa: E402
from tests.helpers import SITE_ENV, remove_leftovers, stop_jupyter  # noqa: E402

PYTORCH = "PyTorch 2.13.0 (CPU, container)"
CELL = "import torch; print(torch.__version__)"


def switch_with_panel(page) -> float:
    from tests.test_panel_browser import run_panel

    run_panel(page)
    start = time.perf_counter()
    page.locator('.dockyard-panel tr[data-ref="pytorch:cpu"] button.dockyard-switch').click()
    page.wait_for_selector(".dockyard-notice.dockyard-ok", timeout=180_000)
    return start


def switch_with_menu(page) -> float:
    start = time.perf_counter()
    page.locator('.lm-MenuBar-itemLabel:text-is("Kernel")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Change Kernel…")').click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option(label=PYTORCH)
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_function(
        "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;"
        " return k?.name === 'dockyard-pytorch-cpu' && k.status === 'idle'; }",
        timeout=180_000,
        polling=50,
    )
    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for key, value in SITE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DOCKYARD_CONFIG", str(_REPO / "tests" / "data" / "no-config.yaml"))

    import docker
    from playwright.sync_api import sync_playwright

    from tests.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, PANEL_CELL, _lab, notebook, open_notebook, run_cell

    client = docker.from_env()
    times: dict[str, list[float]] = {"panel": [], "menu": []}
    with tempfile.TemporaryDirectory(prefix="dockyard-panel-bench-") as tmp:
        lab, _ = _lab(Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.route("**/*", lambda r: r.continue_() if "//127.0.0.1" in r.request.url else r.abort())
                for i in range(args.runs):
                    for method in ("panel", "menu"):
                        name = notebook(lab, f"{method}{i}.ipynb", "dockyard-minimal-cpu", [PANEL_CELL])
                        open_notebook(page, lab, name)
                        start = (switch_with_panel if method == "panel" else switch_with_menu)(page)
                        switched = time.perf_counter() - start
                        out = run_cell(page, CELL, timeout=180_000)
                        elapsed = time.perf_counter() - start
                        assert out.strip().startswith("2.13.0"), out
                        times[method].append(elapsed)
                        print(f"run {i + 1} {method:5s} {elapsed:6.2f} s (switched after {switched:5.2f} s)")
                        for session in lab.api("GET", "/api/sessions").json():  # one kernel container at a time
                            lab.api("DELETE", f"/api/sessions/{session['id']}")
                browser.close()
        finally:
            stop_jupyter(lab)
            left = remove_leftovers(client, lab.proc.pid, wait=15)
    panel, menu = statistics.median(times["panel"]), statistics.median(times["menu"])
    print(f"\nclick → first result in pytorch:cpu, median of {args.runs}:")
    print(f"  panel Switch        {panel:6.2f} s")
    print(f"  Kernel menu         {menu:6.2f} s")
    print(f"  ratio panel / menu  {panel / menu:6.2f}")
    if left:
        print(f"kernel containers left (removed): {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
