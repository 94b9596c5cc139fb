"""The environment panel: `dockyard.panel()` in a notebook lists, builds and switches environments.

Three parts, because the kernel that shows the panel usually runs in a container and sees neither the
host's Docker engine, nor its kernelspecs, nor the JupyterLab page:

- server.py (+ environments.py, builds.py): a Jupyter server extension on the host, REST API under
  /dockyard/api/, with the engine and the specs;
- widget.py (+ widget.js, widget.css, facts.py): the anywidget the kernel shows; its front end calls the
  REST API with the page's credentials and asks for a switch with a DOM event. These files are also
  shipped into every image (images/context.kit_files), so they use only the standard library and anywidget;
- extension/ (TypeScript, built into labextension/ here): finds the notebook that holds the panel and
  calls sessionContext.changeKernel().

This module stays import-light for the same reason: images import it.
"""

from __future__ import annotations

SERVER_MODULE = "dockyard.frontends.panel.server"
LABEXTENSION = "dockyard-panel"  # extension/package.json "name"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": SERVER_MODULE}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    # For `jupyter labextension develop`; a wheel ships the same folder as shared data.
    return [{"src": "labextension", "dest": LABEXTENSION}]
