"""dockyard: containerised deep-learning environments as Jupyter kernels and dev containers.

Also shipped into every image (as the kit's copy), so it imports nothing at the top: `import dockyard`
must work in a kernel that has only the standard library and anywidget.
"""

from typing import Any

__version__ = "0.1.0"


def panel() -> Any:
    """The environment panel: `import dockyard; dockyard.panel()` in any notebook."""
    from .frontends.panel.widget import panel as make

    return make()
