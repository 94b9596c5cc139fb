"""Build benchmarks for `minimal:cpu`, each printed as a ratio to a baseline measured in the same run.

- no-op build: `dockyard build` on an unchanged spec vs `docker image inspect` of the same tag
  (the least any tool must do to know the image exists).
- full build: `dockyard build --rebuild` (no layer cache) vs `docker build --no-cache` of the very
  same rendered context, so the ratio is dockyard's own overhead.

Run: python bench/build_bench.py [--runs N]  (needs a Docker engine and the site settings that
`dockyard build` needs here, e.g. those in tests/conftest.py SITE_ENV).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], stdin_path: str | None = None) -> float:
    with open(stdin_path or "/dev/null", "rb") as stdin:
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def median_of(runs: int, cmd: list[str], stdin_path: str | None = None) -> float:
    return statistics.median(timed(cmd, stdin_path) for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per no-op measurement (median)")
    ap.add_argument("--full-runs", type=int, default=1, help="runs per full build (median)")
    ap.add_argument("--ref", default="minimal:cpu")
    args = ap.parse_args()

    from dockyard import specs as spec
    from dockyard.config import load_settings
    from dockyard.images.plan import make_plan

    dockyard = [sys.executable, "-m", "dockyard"]
    subprocess.run([*dockyard, "build", args.ref], check=True)  # make sure it exists
    name, variant = spec.parse_ref(args.ref)
    s = spec.load(name)
    plan = make_plan(s, s.variant(variant), load_settings().build)

    noop = median_of(args.runs, [*dockyard, "build", args.ref])
    inspect = median_of(args.runs, ["docker", "image", "inspect", plan.tag])
    print(f"no-op build   dockyard {noop:6.2f}s   docker image inspect {inspect:6.2f}s   ratio {noop / inspect:5.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        ctx = f"{tmp}/context.tar"
        with open(ctx, "wb") as f:
            plan.write_context(f)
        full = median_of(args.full_runs, [*dockyard, "build", args.ref, "--rebuild"])
        baseline = median_of(
            args.full_runs, ["docker", "build", "--no-cache", "-t", "dockyard-bench/baseline:1", "-"], ctx
        )
        subprocess.run(["docker", "image", "rm", "dockyard-bench/baseline:1"], stdout=subprocess.DEVNULL, check=False)
    print(
        f"full build    dockyard {full:6.2f}s   docker build --no-cache {baseline:6.2f}s   ratio "
        f"{full / baseline:5.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
