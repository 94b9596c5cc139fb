"""The panel's kernel table: the collector's figures (kernel/collector.py) joined with what the Jupyter server
knows of each kernel (its notebook, busy or idle, since when, open connections). Pure but for the join's
inputs, which the handler gathers."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from ...kernel.collector import KernelRow


def table(
    rows: Iterable[KernelRow],
    notebooks: Mapping[str, str],
    kernels: Mapping[str, Mapping[str, Any]],
    *,
    taken_at: float,
    interval: float,
) -> dict[str, Any]:
    """{"kernels": [...], "taken_at": unix time, "interval": s}. notebooks: kernel id → path;
    kernels: kernel id → the server's model of it (execution_state, last_activity, connections)."""
    out = []
    for row in rows:
        model = kernels.get(row.kernel_id) or {}
        last = model.get("last_activity")
        out.append({
            **row.as_json(),
            "notebook": notebooks.get(row.kernel_id, "(pool)" if row.pooled else ""),
            "execution_state": model.get("execution_state", ""),
            "idle_since": last.isoformat() if isinstance(last, datetime.datetime) else last,
            "connections": model.get("connections", 0),
            "cull_in": model.get("cull_in"),  # seconds until the culler shuts it down; None: it will not
        })  # fmt: skip
    out.sort(key=lambda k: (k["notebook"] == "" or k["pooled"], k["notebook"], k["kernel_id"]))
    return {"kernels": out, "taken_at": taken_at, "interval": interval}
