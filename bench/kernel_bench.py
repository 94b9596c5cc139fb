"""Kernel benchmarks: start-to-ready time and 500 tiny round trips, as ratios to a local ipykernel.

Three kernels, measured in the same run and interleaved (so drift hits all alike), medians over --runs:
- local:    the host's own ipykernel (python3 kernelspec): the baseline.
- dockyard: dockyard-minimal-cpu, the container kernel through DockerProvisioner.
- docker-run: a dockernel-style kernelspec on the same image, argv
  `docker run --rm --network host -v {connection_file}:/conn.json IMAGE python -m ipykernel_launcher -f /conn.json`
  (what a plain "kernel = docker run" costs, without dockyard's mounts, user mapping and clean-up).

Run: python bench/kernel_bench.py [--runs 3] [--executions 500]  (needs a Docker engine, minimal:cpu
built, and the site settings `dockyard build` needs here, e.g. those in tests/conftest.py SITE_ENV).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import KernelManager

BENCH_LABEL = "org.dockyard.bench"


def _docker_run_spec(image: str) -> dict:
    return {
        "argv": ["docker", "run", "--rm", "--init", "--network", "host", "--label", f"{BENCH_LABEL}=1",
                 "-v", "{connection_file}:/conn.json:ro", image,
                 "python", "-m", "ipykernel_launcher", "-f", "/conn.json"],
        "display_name": "docker run (bench)",
        "language": "python",
    }  # fmt: skip


def measure(kernel: str, executions: int, cwd: str) -> tuple[float, float]:
    """(seconds from start_kernel to kernel_info reply, seconds for `executions` execute round trips)."""
    km = KernelManager(kernel_name=kernel)
    start = time.perf_counter()
    km.start_kernel(
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # kernels' banners would drown the table
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        ready = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(executions):
            msg_id = kc.execute("pass", store_history=False)
            while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg_id:
                pass
        loop = time.perf_counter() - start
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return ready, loop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per kernel (median)")
    ap.add_argument("--executions", type=int, default=500, help="tiny executions per run")
    ap.add_argument("--ref", default="minimal:cpu", help="environment whose image all container kernels use")
    args = ap.parse_args()

    from dockyard import engine, specs
    from dockyard.cli import main as dockyard_main
    from dockyard.config import load_settings
    from dockyard.engine import find_image
    from dockyard.images.plan import make_plan
    from dockyard.kernel.kernelspec import kernel_name

    name, variant = specs.parse_ref(args.ref)
    s = specs.load(name)
    v = s.variant(variant)
    plan = make_plan(s, v, load_settings().build)
    client = engine.client()
    if find_image(client, plan.tag) is None:
        print(f"{plan.tag} is not built; run: dockyard build {args.ref}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="dockyard-kernel-bench-") as tmp:
        prefix = Path(tmp) / "prefix"
        with open(os.devnull, "w") as quiet:
            sys.stdout, real_stdout = quiet, sys.stdout
            try:
                dockyard_main(["kernels", "install", args.ref, "--prefix", str(prefix)])
            finally:
                sys.stdout = real_stdout
        spec_dir = prefix / "share" / "jupyter" / "kernels" / "bench-docker-run"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps(_docker_run_spec(plan.tag)))
        os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
        os.environ["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        work = Path(tmp) / "work"
        work.mkdir()

        kernels = {"local": "python3", "dockyard": kernel_name(s, v), "docker-run": "bench-docker-run"}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in kernels}
        try:
            measure("python3", 20, str(work))  # warm-up: imports and page cache
            for run in range(args.runs):
                for label, kernel in kernels.items():
                    results[label].append(measure(kernel, args.executions, str(work)))
                    ready, loop = results[label][-1]
                    print(
                        f"run {run + 1}/{args.runs} {label:<10} ready {ready:6.2f} s   {args.executions} round trips "
                        f"{loop:6.2f} s",
                        flush=True,
                    )
        finally:
            # dockernel-style kernels leave containers when their `docker run` client is killed: clean up.
            for c in client.containers.list(all=True, filters={"label": BENCH_LABEL}):
                c.remove(force=True)

    ready = {k: statistics.median(r for r, _ in runs) for k, runs in results.items()}
    loop = {k: statistics.median(x for _, x in runs) for k, runs in results.items()}
    print(f"\nmedians of {args.runs} run(s), image {plan.tag}; ratio = kernel / local ipykernel")
    print(
        f"{'kernel':<12}{'start→ready':>14}{'ratio':>8}{f'{args.executions} exec RTT':>18}{'per exec':>11}{'ratio':>8}"
    )
    for k in kernels:
        per_exec_ms = loop[k] / args.executions * 1e3
        print(
            f"{k:<12}{ready[k]:>12.2f} s{ready[k] / ready['local']:>7.2f}x{loop[k]:>16.2f} s{per_exec_ms:>8.2f} "
            f"ms{loop[k] / loop['local']:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
