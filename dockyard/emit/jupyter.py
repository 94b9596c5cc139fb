"""kernel.json values.

jupyter_client fills `${NAME}` and `$NAME` in a kernelspec's env values from the server's environment
(KernelProvisionerBase.pre_launch → string.Template(value).safe_substitute(os.environ)), so a spec value
`${JUPYTER_TOKEN}` would hand the server's token to the kernel. string.Template's escape for `$` is `$$`, which
safe_substitute turns back into one `$`: the kernel gets exactly the spec's value. argv and display names are
not substituted (dockyard's argv is fixed; `{connection_file}` is jupyter_client's, never a value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def env_value(value: str) -> str:
    return value.replace("$", "$$")


def env(values: Mapping[str, str]) -> dict[str, str]:
    return {k: env_value(v) for k, v in sorted(values.items())}


def dumps(data: Any, **kwargs: Any) -> str:
    """The JSON text (json.dumps escapes quotes, backslashes and every control character)."""
    return json.dumps(data, indent=2, **kwargs) + "\n"
