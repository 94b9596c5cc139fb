"""The panel's kernel side without an engine: the kit files that go into every image import only the
standard library, anywidget and traitlets (an image has nothing else of dockyard's), and the widget and
its facts work in a host kernel."""

from __future__ import annotations

import ast
import json
import platform
import subprocess
import sys

import docker.errors

from dockyard import paths, specs
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


class _Images:
    """An engine that has exactly the images named in `built` (by content tag)."""

    def __init__(self, built: set[str]) -> None:
        self.built = built

    def get(self, ref: str) -> object:
        if ref in self.built:
            return type("Image", (), {"attrs": {"Size": 1}, "id": ref})()
        raise docker.errors.ImageNotFound(ref)


def _rows(built: set[str], installed: set[str]) -> dict[str, dict]:
    from dockyard.config import load_settings
    from dockyard.frontends.panel import environments

    settings = load_settings()
    client = type("Engine", (), {"images": _Images(built)})()
    pairs = [(s, v) for s in specs.load_all() for v in s.variants.values() if v.gpu == "none"]
    return {v.ref: environments._one(s, v, settings, client, None, installed, {}) for s, v in pairs}  # type: ignore[arg-type]


def test_unbuilt_environments_get_one_true_piece_of_advice_each():
    """A fresh install: nothing built, no kernelspec. Each row says once that Build is the step (which brings
    the kernel); none advises 'dockyard kernels install', which skips unbuilt images."""
    rows = _rows(built=set(), installed=set())
    assert len(rows) >= 4
    for ref, row in rows.items():
        assert row["image"]["status"] == "not built"
        assert len(row["problems"]) == 1, row["problems"]
        [advice] = row["problems"]
        assert "press Build" in advice
        assert f"dockyard build {ref}" in advice
        assert "kernels install" not in advice
        assert "reload" not in advice


def test_a_built_image_without_its_kernelspec_names_the_command_for_it():
    from dockyard.config import load_settings
    from dockyard.images.plan import make_plan

    spec, variant = specs.resolve("minimal")
    tag = make_plan(spec, variant, load_settings().build).tag
    row = _rows(built={tag}, installed=set())["minimal:cpu"]
    assert row["image"]["status"] == "built"
    [advice] = row["problems"]
    assert "dockyard kernels install minimal:cpu" in advice
    assert _rows(built={tag}, installed={"dockyard-minimal-cpu"})["minimal:cpu"]["problems"] == []
