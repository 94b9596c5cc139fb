"""What `dockyard gpus` and the panel's /dockyard/api/gpus show: each device, who holds it, what it uses. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .devices import Device


def overview(
    devices: Sequence[Device], leases: Sequence[Mapping[str, Any]], memory_used: Mapping[str, int | None]
) -> list[dict[str, Any]]:
    """One row per device: its facts, its holders (gpu/ledger.describe_all), each with the GPU memory its kernel
    uses in bytes where the resource collector measured it (memory_used by kernel id; None: not measured).

    Leases of devices this engine's probe did not list (a probe from before a MIG change) get rows of their own.
    """
    rows: list[dict[str, Any]] = []
    known = {d.uuid for d in devices}
    for d in devices:
        held = [_holder(lease, memory_used) for lease in leases if lease["device"] == d.uuid]
        rows.append({**d.to_json(), "state": _state(held), "holders": held})
    for uuid in sorted({str(lease["device"]) for lease in leases} - known):
        held = [_holder(lease, memory_used) for lease in leases if lease["device"] == uuid]
        rows.append(
            {"index": "?", "uuid": uuid, "name": "(not in the last probe)", "state": _state(held), "holders": held}
        )
    return rows


def _holder(lease: Mapping[str, Any], memory_used: Mapping[str, int | None]) -> dict[str, Any]:
    return {**lease, "gpu_memory_used": memory_used.get(str(lease["kernel_id"]))}


def _state(held: list[dict[str, Any]]) -> str:
    if not held:
        return "free"
    return "shared" if all(h["mode"] == "shared" for h in held) else "exclusive"
