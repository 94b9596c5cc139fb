"""The panel widget: `dockyard.panel()`. An anywidget whose front end (widget.js) does the work in the
browser (REST calls to the server extension, the switch through the labextension); the Python side only
hands over this kernel's own facts. Shipped into every image with facts.py, widget.js and widget.css."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .facts import FACTS_EXPRESSION, kernel_facts

_HERE = Path(__file__).resolve().parent
_widget_class: Any = None


def _panel_class() -> Any:
    global _widget_class
    if _widget_class is not None:
        return _widget_class
    try:
        import anywidget
        import traitlets
    except ImportError as exc:
        raise ImportError(
            f"The dockyard panel needs anywidget in this kernel's environment ({exc}). Fix: add "
            "'anywidget==0.11.0' to the spec's python_packages and rebuild ('dockyard build ENV'), or run "
            "'%pip install anywidget' here for this session."
        ) from None

    class Panel(anywidget.AnyWidget):
        _esm = _HERE / "widget.js"
        _css = _HERE / "widget.css"
        facts = traitlets.Dict().tag(sync=True)
        facts_expression = traitlets.Unicode(FACTS_EXPRESSION).tag(sync=True)

    _widget_class = Panel
    return Panel


def panel() -> Any:
    """The environment panel for the notebook that shows it: environments, Build, Switch."""
    return _panel_class()(facts=kernel_facts())
