"""Writes the constructed `nvidia-smi -L` and `nvidia-smi -q` answers in this folder (see README.md).

Constructed, not captured: no GPU machine was available. The layouts follow nvidia-smi 580's own output
(`-L`: one line per GPU, MIG devices indented under their GPU; `-q`: the NVSMI LOG, trimmed to the sections
dockyard reads plus their neighbours). UUIDs are made from a hash so the files are reproducible:
`python tests/data/gpu/smi/make.py` rewrites them byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).parent
DRIVER, CUDA = "580.95.05", "13.0"


def uuid(prefix: str, seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{prefix}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# (setup, [(name, memory MiB, bus id, [(MIG profile, memory MiB), ...] or None)])
SETUPS = {
    "1gpu": [("NVIDIA GeForce RTX 4090", 24564, "00000000:01:00.0", None)],
    "4gpu": [("NVIDIA RTX A6000", 49140, f"00000000:{b:02X}:00.0", None) for b in (0x1B, 0x1C, 0x3D, 0x3E)],
    "8gpu": [
        ("NVIDIA H100 80GB HBM3", 81559, f"00000000:{b:02X}:00.0", None)
        for b in (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
    ],
    "mig": [
        ("NVIDIA A100-SXM4-40GB", 40960, "00000000:07:00.0", [("3g.20gb", 19968), ("2g.10gb", 9856), ("1g.5gb", 4864)]),
        ("NVIDIA A100-SXM4-40GB", 40960, "00000000:0F:00.0", None),
    ],
}


def listing(setup: str) -> str:
    lines = []
    for i, (name, _mem, _bus, migs) in enumerate(SETUPS[setup]):
        lines.append(f"GPU {i}: {name} (UUID: {uuid('GPU', f'{setup}/{i}')})")
        for j, (profile, _m) in enumerate(migs or []):
            lines.append(f"  MIG {profile:<11} Device {j:>2}: (UUID: {uuid('MIG', f'{setup}/{i}/{j}')})")
    return "\n".join(lines) + "\n"


def query(setup: str) -> str:
    gpus = SETUPS[setup]
    out = [
        "",
        "==============NVSMI LOG==============",
        "",
        f"{'Timestamp':<42}: Sat Dec  5 14:02:11 2026",
        f"{'Driver Version':<42}: {DRIVER}",
        f"{'CUDA Version':<42}: {CUDA}",
        "",
        f"{'Attached GPUs':<42}: {len(gpus)}",
    ]
    for i, (name, mem, bus, migs) in enumerate(gpus):
        mig = "Enabled" if migs else "Disabled"
        reserved = 566 if mem > 30000 else 361
        out += [
            f"GPU {bus}",
            f"    {'Product Name':<38}: {name}",
            f"    {'Product Brand':<38}: NVIDIA",
            f"    {'Display Mode':<38}: Disabled",
            f"    {'Persistence Mode':<38}: Enabled",
            "    MIG Mode",
            f"        {'Current':<34}: {mig}",
            f"        {'Pending':<34}: {mig}",
        ]
        if migs:
            out.append("    MIG Devices")
            for j, (_profile, m) in enumerate(migs):
                out += [
                    "        MIG Device",
                    f"            {'GPU Instance ID':<30}: {j + 1}",
                    f"            {'Compute Instance ID':<30}: 0",
                    "            FB Memory Usage",
                    f"                {'Total':<26}: {m} MiB",
                    f"                {'Reserved':<26}: 0 MiB",
                    f"                {'Used':<26}: 13 MiB",
                    f"                {'Free':<26}: {m - 13} MiB",
                ]
        out += [
            f"    {'Serial Number':<38}: 13240210{i:05d}",
            f"    {'GPU UUID':<38}: {uuid('GPU', f'{setup}/{i}')}",
            f"    {'Minor Number':<38}: {i}",
            "    PCI",
            f"        {'Bus Id':<34}: {bus}",
            "    FB Memory Usage",
            f"        {'Total':<34}: {mem} MiB",
            f"        {'Reserved':<34}: {reserved} MiB",
            f"        {'Used':<34}: 0 MiB",
            f"        {'Free':<34}: {mem - reserved} MiB",
            "    BAR1 Memory Usage",
            f"        {'Total':<34}: 65536 MiB",
            f"        {'Used':<34}: 1 MiB",
            f"        {'Free':<34}: 65535 MiB",
            f"    {'Compute Mode':<38}: Default",
            f"    {'Processes':<38}: None",
            "",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for setup in SETUPS:
        (HERE / f"{setup}-L.txt").write_text(listing(setup))
        (HERE / f"{setup}-q.txt").write_text(query(setup))
