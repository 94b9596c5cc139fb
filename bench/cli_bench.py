"""CLI start-up benchmarks, each printed as a ratio to a baseline measured in the same run (medians):

- `dockyard --version` vs `python -c pass` (goal: at most 0.15 s; what the CLI costs before any work);
- `dockyard env list` (a command without the engine) vs `python -c pass`;
- a no-op `dockyard build REF` (its tag exists) vs `docker image inspect` of that tag (goal: at most 0.25 s).

Run: python bench/cli_bench.py [--ref minimal:cpu] [--runs 15]  (the no-op build needs the engine, the image
built, and the site settings `dockyard build` needs here, e.g. tests/helpers.py SITE_ENV). Both run as an
installed user runs them: the `dockyard` console script next to this Python, else `python -m dockyard`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOALS = {"--version": 0.15, "no-op build": 0.25}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return elapsed


def median_of(runs: int, cmd: list[str]) -> float:
    timed(cmd)  # warm the file cache once
    return statistics.median(timed(cmd) for _ in range(runs))


def dockyard_command() -> list[str]:
    script = Path(sys.executable).with_name("dockyard")
    if script.exists():
        return [str(script)]
    found = shutil.which("dockyard")
    return [found] if found else [sys.executable, "-m", "dockyard"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per measurement (median)")
    ap.add_argument("--ref", default="minimal:cpu", help="the environment variant of the no-op build")
    ap.add_argument("--no-engine", action="store_true", help="skip the no-op build (no engine here)")
    args = ap.parse_args()

    dockyard = dockyard_command()
    rows: list[tuple[str, float, str, float]] = []
    python = median_of(args.runs, [sys.executable, "-c", "pass"])
    rows.append(("--version", median_of(args.runs, [*dockyard, "--version"]), "python -c pass", python))
    rows.append(("env list", median_of(args.runs, [*dockyard, "env", "list"]), "python -c pass", python))
    if not args.no_engine:
        from dockyard import specs
        from dockyard.config import load_settings
        from dockyard.images.plan import make_plan

        s, v = specs.resolve(args.ref)
        tag = make_plan(s, v, load_settings().build).tag
        build = [*dockyard, "build", args.ref, "--no-kernels"]
        timed(build)  # builds it if needed: then every measured run is a no-op
        inspect = median_of(args.runs, ["docker", "image", "inspect", tag])
        rows.append(("no-op build", median_of(args.runs, build), "docker image inspect", inspect))

    print(f"medians of {args.runs} runs; {' '.join(dockyard)}")
    print(f"{'command':<13}{'time':>9}   {'baseline':<22}{'time':>9}{'ratio':>8}   goal")
    for name, t, base_name, base in rows:
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"≤ {goal:.2f} s: {'met' if t <= goal else 'NOT met'}"
        print(f"{name:<13}{t:>7.3f} s   {base_name:<22}{base:>7.3f} s{t / base:>7.2f}x   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
