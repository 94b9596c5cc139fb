"""Jinja for templates that run elsewhere (the Kubernetes pod template runs inside the gateway at every launch).

No value is ever written into template text: a template is fixed text shipped with dockyard, and values reach it
as data (render(..., values)), where `{{`, `{#` or `{%` in a value are just characters. The environment is
sandboxed: even a template that echoed attacker-chosen data could not reach `__globals__` or call unsafe methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return ImmutableSandboxedEnvironment(
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # the template escapes each value for YAML itself (tojson); HTML escaping would garble
        undefined=jinja2.StrictUndefined,
    )


def render_string(template: str, values: Mapping[str, Any]) -> str:
    return environment(jinja2.DictLoader({"t": template})).get_template("t").render(**values)
