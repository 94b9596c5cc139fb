"""The panel's kernel side without an engine: the kit files that go into every image import only the
standard library, anywidget and traitlets (an image has nothing else of dockyard's), and the widget and
its facts work in a host kernel."""

from __future__ import annotations

import ast
import json
import platform
import subprocess
import sys

from dockyard import paths
from dockyard.frontends.panel import facts
from dockyard.images.context import KIT_MODULES

ALLOWED = set(sys.stdlib_module_names) | {"anywidget", "traitlets", "__future__"}


def test_kit_modules_import_only_the_standard_library_and_anywidget() -> None:
    for rel in KIT_MODULES:
        if not rel.endswith(".py"):
            assert (paths.PACKAGE_DIR / rel).is_file(), rel
            continue
        tree = ast.parse((paths.PACKAGE_DIR / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom):  # relative: must stay inside the shipped files
                target = f"frontends/panel/{node.module}.py" if node.module else rel
                assert node.level == 1, f"{rel}: relative import outside the kit"
                assert target in KIT_MODULES or rel == "__init__.py", f"{rel} imports {node.module}, not in the kit"
                continue
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{rel} imports {name}: images do not have it"


def test_facts_of_a_host_kernel() -> None:
    got = facts.kernel_facts()
    assert got["environment"] is None
    assert got["kernel_name"] is None
    assert got["in_container"] is False
    assert got["python"] == platform.python_version()
    assert got["devices"][0] == "cpu"
    assert json.loads(repr(facts.Facts())) == got | {"devices": got["devices"]}


def test_panel_is_an_anywidget_with_this_kernels_facts() -> None:
    # In a fresh interpreter: `import dockyard` must stay cheap (no docker, no jupyter_server).
    code = (
        "import sys, anywidget, dockyard; w = dockyard.panel(); "
        "print(isinstance(w, anywidget.AnyWidget), w.facts['python'], 'docker' in sys.modules, "
        "'jupyter_server' in sys.modules, w.facts_expression.startswith('__import__'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", platform.python_version(), "False", "False", "True"]
