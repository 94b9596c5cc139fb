"""Which GPUs an engine has, one by one: `nvidia-smi -L` (index, UUID, MIG devices) and `nvidia-smi -q` (memory).

Both are read inside a container that got the GPUs (gpu/probe.py), never on the machine running dockyard:
with a remote engine that machine has none of them. Pure text parsing, no I/O.
A GPU split into MIG devices is leased by its MIG devices, not as a whole: each has its own UUID, and
`device_ids` / CDI names accept those UUIDs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_GPU_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[0-9a-fA-F-]+)\)\s*$")
_MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[0-9a-fA-F-]+)\)\s*$")


@dataclass(frozen=True)
class Device:
    """One leasable unit: a whole GPU, or one MIG device of a GPU in MIG mode."""

    index: str  # "2" for a GPU, "0:1" (GPU:MIG device) for a MIG device, as nvidia-smi and nvidia-ctk number them
    uuid: str  # GPU-… or MIG-…
    name: str  # the card, or the MIG profile with its card ("MIG 3g.20gb on NVIDIA A100-SXM4-40GB")
    memory_mib: int | None = None

    @property
    def mig(self) -> bool:
        return self.uuid.startswith("MIG-")

    def matches(self, wanted: str) -> bool:
        """Whether a user's device id (index, "0:1", or UUID, any case) names this device."""
        return wanted.lower() in (self.index, self.uuid.lower())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        return cls(**data)


def parse_list(text: str, memory: dict[str, int] | None = None) -> list[Device]:
    """The leasable devices in `nvidia-smi -L` output (lines of other commands are skipped).

    memory: MiB per GPU UUID (from parse_memory), for whole GPUs. A GPU with MIG devices yields those instead.
    """
    memory = memory or {}
    gpus: list[tuple[Device, list[Device]]] = []
    for line in text.splitlines():
        if m := _GPU_LINE.match(line):
            gpu = Device(index=m.group(1), uuid=m.group(3), name=m.group(2), memory_mib=memory.get(m.group(3)))
            gpus.append((gpu, []))
        elif (m := _MIG_LINE.match(line)) and gpus:
            gpu, migs = gpus[-1]
            migs.append(
                Device(index=f"{gpu.index}:{m.group(2)}", uuid=m.group(3), name=f"MIG {m.group(1)} on {gpu.name}")
            )
    return [d for gpu, migs in gpus for d in (migs or [gpu])]


def parse_memory(text: str) -> dict[str, int]:
    """MiB of framebuffer per GPU UUID from `nvidia-smi -q` (the GPU's own 'FB Memory Usage', not its MIG devices')."""
    out: dict[str, int] = {}
    uuid = None
    in_fb = False
    for line in text.splitlines():
        if line.startswith("GPU "):
            uuid, in_fb = None, False
        elif m := re.match(r"^    GPU UUID\s+: (\S+)", line):
            uuid = m.group(1)
        elif line == "    FB Memory Usage":
            in_fb = True
        elif in_fb and (m := re.match(r"^        Total\s+: (\d+) MiB", line)):
            in_fb = False
            if uuid:
                out[uuid] = int(m.group(1))
    return out


def find(devices: list[Device], wanted: str) -> Device | None:
    return next((d for d in devices if d.matches(wanted)), None)
