"""Warm pool benchmark: ready time, and ready + the first `import torch`, pooled vs cold vs a local ipykernel.

Three kernels, measured in the same run and interleaved, medians over --runs:
- local:  the host's own ipykernel (python3 kernelspec): the baseline.
- cold:   dockyard's pytorch:cpu container kernel with no pool (DOCKYARD_POOL_SIZE=0): today's start.
- pooled: the same kernelspec, claiming a container of the warm pool (filled, and ready, before the start).

"ready" is start_kernel() until the kernel's first kernel_info reply (a client's first answer). jupyter_client's
wait_for_ready() adds a fixed 0.2 s of waiting for IOPub to go quiet on top; it is printed too, for comparison.
"+ import torch" is until the reply of a first cell `import torch` (the local kernel: where the host has torch).
Also printed: the memory an idle pooled container holds (the engine's stats, page cache excluded).

Run: python bench/pool_bench.py [--runs 5] [--ref pytorch:cpu]  (needs a Docker engine, the image built, and
the site settings `dockyard build` needs here, e.g. those in tests/helpers.py SITE_ENV).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import KernelManager


def measure(kernel: str, cwd: str, import_code: str | None) -> tuple[float, float, float | None]:
    """(start → first kernel_info reply, start → wait_for_ready() returned, start → `import torch` replied)."""
    km = KernelManager(kernel_name=kernel)
    start = time.perf_counter()
    km.start_kernel(cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    try:
        msg_id = kc.kernel_info()  # queued by ZeroMQ until the kernel binds: one request is enough
        while kc.get_shell_msg(timeout=120)["parent_header"].get("msg_id") != msg_id:
            pass
        ready = time.perf_counter() - start
        kc.wait_for_ready(timeout=120)
        settled = time.perf_counter() - start
        imported = None
        if import_code is not None:
            t0 = time.perf_counter()
            reply = kc.execute_interactive(import_code, timeout=120, output_hook=lambda m: None)
            assert reply["content"]["status"] == "ok", reply["content"]
            imported = ready + time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return ready, settled, imported


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per kernel (median)")
    ap.add_argument("--ref", default="pytorch:cpu", help="environment of the container kernels")
    ap.add_argument("--module", default="torch", help="the first import measured")
    args = ap.parse_args()

    os.environ["DOCKYARD_POOL_SIZE"] = "1"
    from dockyard import engine, specs
    from dockyard.cli import main as dockyard_main
    from dockyard.config import load_settings
    from dockyard.kernel.kernelspec import kernel_name
    from dockyard.kernel.pool import pooled as pool
    from dockyard.kernel.pool.fill import fill_for
    from dockyard.kernel.pool.keeper import PoolKeeper

    s, v = specs.resolve(args.ref)
    name = kernel_name(s, v)
    client = engine.client()
    keeper = PoolKeeper.instance()
    code = f"import {args.module}"
    local_code = code if importlib.util.find_spec(args.module) else None
    with tempfile.TemporaryDirectory(prefix="dockyard-pool-bench-") as tmp:
        prefix = Path(tmp) / "prefix"
        with open(os.devnull, "w") as quiet:
            sys.stdout, real_stdout = quiet, sys.stdout
            try:
                installed = dockyard_main(["kernels", "install", args.ref, "--prefix", str(prefix)])
            finally:
                sys.stdout = real_stdout
        if installed != 0:
            print(f"{args.ref} is not built; run: dockyard build {args.ref}", file=sys.stderr)
            return 2
        os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
        os.environ["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        work = Path(tmp) / "work"
        work.mkdir()
        options = load_settings().kernels.pool
        results: dict[str, list[tuple[float, float, float | None]]] = {"local": [], "cold": [], "pooled": []}
        memory: list[int] = []
        try:
            measure("python3", str(work), None)  # warm-up: imports and page cache
            for run in range(args.runs):
                # Not timed: the pool ready, and the keeper idle, before any kernel of this round starts.
                if not fill_for(name, work, 1, options) and not any(p.state == "ready" for p in keeper.mine()):
                    print(f"the pool did not fill: {keeper.last_error}", file=sys.stderr)
                    return 1
                ready = [p for p in keeper.mine() if p.state == "ready"]
                if (used := pool.idle_memory(client, ready[0].id)) is not None:
                    memory.append(used)
                for label in results:
                    os.environ["DOCKYARD_POOL_SIZE"] = "0" if label == "cold" else "1"
                    kernel = "python3" if label == "local" else name
                    results[label].append(measure(kernel, str(work), local_code if label == "local" else code))
                    r, w, i = results[label][-1]
                    shown = f"{i:6.3f} s" if i is not None else "   n/a"
                    print(
                        f"run {run + 1}/{args.runs} {label:<7} ready {r:6.3f} s  wait_for_ready {w:6.3f} s  "
                        f"+ {code}: {shown}",
                        flush=True,
                    )
        finally:
            keeper.close()

    print(f"\nmedians of {args.runs} run(s), {args.ref}; ratio = kernel / local ipykernel (same run)")
    print(f"{'kernel':<9}{'ready':>10}{'ratio':>8}{'wait_for_ready':>16}{'ratio':>8}{f'+ {code}':>22}")
    med = {k: [statistics.median(x[i] for x in v) if all(x[i] is not None for x in v) else None for i in range(3)]
           for k, v in results.items()}  # fmt: skip
    base = med["local"]
    for k, (r, w, i) in med.items():
        assert r is not None
        assert w is not None
        assert base[0] is not None
        assert base[1] is not None
        shown = f"{i:>20.3f} s" if i is not None else f"{'n/a':>22}"
        print(f"{k:<9}{r:>8.3f} s{r / base[0]:>7.2f}x{w:>14.3f} s{w / base[1]:>7.2f}x{shown}")
    pooled_ready, _, pooled_import = med["pooled"]
    assert pooled_ready is not None
    assert base[0] is not None
    print(
        f"\ntargets: pooled ready ≤ 0.25× local: {pooled_ready / base[0]:.2f}×  "
        f"({'met' if pooled_ready <= 0.25 * base[0] else 'NOT met'}); pooled ready + {code} ≤ 0.15 s: "
        + (f"{pooled_import:.3f} s ({'met' if pooled_import <= 0.15 else 'NOT met'})" if pooled_import else "n/a")
    )
    if memory:
        print(
            f"idle pooled {args.ref} container: {statistics.median(memory) / 2**20:.0f} MiB (median of {len(memory)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
