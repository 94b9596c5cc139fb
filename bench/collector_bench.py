"""Collector benchmark: what the kernel figures cost a Jupyter server, as a ratio against the same server
without them, for N idle dockyard kernels (default 8).

One process plays the server: jupyter_server's AsyncMappingKernelManager (the class `jupyter server` runs)
starts N minimal:cpu kernels, then the process's own CPU time is measured over --seconds of idle:
- baseline: the kernels idle, nobody looks (what the server pays anyway: restarter polls, iopub watching);
- collector: the same, with kernel/collector.py's Collector asked every 2 s as the panel asks it.
Printed: each window's CPU as % of one core, the collector's share (the difference) and the ratio. The goal
is under 1 % of one core for 8 idle kernels on a 2-core machine.

Run: python bench/collector_bench.py [--kernels 8] [--seconds 30]  (needs a Docker engine and minimal:cpu
built for the site settings; uses tests/helpers.py SITE_ENV unless DOCKYARD_* are set). Removes its kernels.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import SITE_ENV, install_kernelspecs  # noqa: E402


async def _window(seconds: float, collector=None) -> float:  # type: ignore[no-untyped-def]
    """% of one core this process used over `seconds`, asking the collector every 2 s if given."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        if collector is not None:
            await collector.latest()
        await asyncio.sleep(2.0)
    return 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)


async def run(kernels: int, seconds: float, root: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from dockyard import engine
    from dockyard.kernel.collector import Collector, Sampler
    from dockyard.kernel.reaper import owner_id

    jupyter_path = install_kernelspecs(root / "prefix")
    km = AsyncMappingKernelManager(
        root_dir=str(root), kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
    )
    km.connection_dir = str(root)
    try:
        for i in range(kernels):
            await km.start_kernel(kernel_name="dockyard-minimal-cpu", path="")
            print(f"  kernel {i + 1}/{kernels} started", flush=True)
        await asyncio.sleep(5)  # let start-up settle
        collector = Collector(Sampler(engine.client()), owner_id())
        rows = await collector.latest()
        print(f"the collector sees {len(rows)} kernel container(s)", flush=True)
        collector.stop()
        base = await _window(seconds)
        with_collector = await _window(seconds, collector)
        collector.stop()
        share = with_collector - base
        print(f"baseline (no collector): {base:.2f} % of one core")
        print(f"with the collector:      {with_collector:.2f} % of one core")
        print(f"the collector's share:   {share:.2f} % of one core for {len(rows)} idle kernels (goal < 1 %)")
        print(f"ratio with/without:      {with_collector / base:.2f}" if base > 0 else "ratio: baseline is 0")
    finally:
        for kid in km.list_kernel_ids():
            await km.shutdown_kernel(kid, now=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    for name, value in SITE_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("DOCKYARD_CONFIG", str(REPO / "tests" / "data" / "no-config.yaml"))  # as the tests
    os.environ.setdefault("DOCKYARD_POOL_SIZE", "0")
    os.environ.setdefault(
        "DOCKYARD_AUTO_BUILD", "1"
    )  # the first kernel builds minimal:cpu if needed  # no warm containers: only the kernels are measured
    with tempfile.TemporaryDirectory(prefix="dockyard-collector-bench-") as tmp:
        asyncio.run(run(args.kernels, args.seconds, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
