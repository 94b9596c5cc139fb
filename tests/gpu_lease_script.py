"""One process taking GPU leases on the real engine, for tests/test_gpu_leases.py.

    python gpu_lease_script.py SETUP CHOICE KERNEL_ID OUT [--wait S] [--until FILE] [--start-at T]

Takes the choice's leases of the recorded inventory SETUP (tests/data/gpu/smi/SETUP-L.txt), writes
{"devices": [...]} or {"error": "..."} to OUT (atomically), then holds them until FILE exists (or at once
releases them without --until) and exits. --start-at: a shared epoch second to begin at, so many processes race.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import docker

from dockyard.errors import DockyardError
from dockyard.gpu import ledger
from dockyard.gpu.choice import parse
from dockyard.gpu.devices import parse_list
from dockyard.kernel.reaper import owner_id

IMAGE = os.environ.get("DOCKYARD_TEST_BASE", "dockyard-local/python:3.11-bookworm")
SMI = Path(__file__).with_name("data") / "gpu" / "smi"


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("setup", "choice", "kernel_id", "out"):
        p.add_argument(name)
    p.add_argument("--wait", type=float, default=0.0)
    p.add_argument("--until")
    p.add_argument("--start-at", type=float, default=0.0)
    a = p.parse_args()
    client = docker.from_env()
    devices = parse_list((SMI / f"{a.setup}-L.txt").read_text())
    holder = ledger.Holder(
        a.kernel_id, f"dockyard-test-{a.kernel_id}", f"{a.kernel_id}.ipynb", "tester", "minimal:cuda", owner_id()
    )
    while time.time() < a.start_at:
        time.sleep(0.005)
    try:
        held = ledger.take(client, IMAGE, devices, parse(a.choice, "test"), holder, wait=a.wait)
        result: dict[str, object] = {"devices": [lease.device for lease in held], "at": time.time()}
    except DockyardError as exc:
        held, result = [], {"error": exc.text}
    tmp = Path(a.out + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(a.out)
    while a.until and held and not os.path.exists(a.until):
        time.sleep(0.05)
    ledger.release(client, held)


if __name__ == "__main__":
    main()
