"""Models of the consumers of dockyard's generated files, for tests: how each one reads a value back.

The Dockerfile parser's line and quote rules, jupyter_client's kernelspec env substitution (its own code), the Dev
Containers tooling's `${...}` substitution, Compose interpolation, and the checked-in Kubernetes launcher.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def instructions(text: str) -> list[str]:
    """The Dockerfile parser's view: comments and blank lines dropped, `\\`-continued lines joined."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + "\n"
            continue
        out.append(pending + line)
        pending = ""
    assert not pending
    return out


def env_assignments(instruction: str) -> dict[str, str]:
    """ENV k="v" ... as the builder's lexer reads double quotes: `\\` escapes only `"`, `$` and `\\`."""
    out: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\$]|\\["$\\]|\\.)*)"', instruction):
        assert "$" not in re.sub(r"\\.", "", m.group(2)), "an unescaped $ would be expanded by the builder"
        out[m.group(1)] = re.sub(r'\\(["$\\])', r"\1", m.group(2))
    return out


def jupyter_client_env(kernel_env: dict[str, str], environ: dict[str, str]) -> dict[str, str]:
    """What jupyter_client's KernelProvisionerBase.pre_launch makes of a kernelspec's env."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    provisioner = LocalProvisioner(kernel_id="k", kernel_spec=KernelSpec(env=kernel_env), parent=None)
    out: dict[str, str] = provisioner._KernelProvisionerBase__apply_env_substitutions(environ)  # type: ignore[attr-defined]
    return out


DEVCONTAINER_VARIABLE = re.compile(r"\$\{(.*?)\}")  # @devcontainers/cli variableSubstitution.ts


def strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in (k, *strings(v))]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return []


COMPOSE_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)|\{(?P<braced>[^}]*)\}|())")


def interpolate(value: str, ours: frozenset[str] = frozenset()) -> str:
    """Compose's interpolation (docker-compose 1.29 / v2): `$$` is a literal `$`; any other `$` expands. Only
    variables dockyard itself writes (`ours`) may expand; a value's own `$` must never."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = (m.group("named") or m.group("braced") or "").split(":")[0]
        assert name in ours, f"Compose would expand {m.group()!r}"
        return m.group()

    return COMPOSE_VARIABLE.sub(one, value)


@functools.lru_cache(maxsize=1)
def launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dockyard_launch_kubernetes", REPO / "k8s/launcher/launch_kubernetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubelet(value: str, env: dict[str, str]) -> str:
    """The kubelet's expansion of a container's env value, command or args (Kubernetes' forked Go expansion):
    `$$` is `$`, `$(NAME)` is NAME's value when defined (else kept), any other `$` stays."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            if value[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if value[i + 1] == "(" and (end := value.find(")", i + 2)) != -1:
                out.append(env.get(value[i + 2 : end], value[i : end + 1]))
                i = end + 1
                continue
        out.append(value[i])
        i += 1
    return "".join(out)
