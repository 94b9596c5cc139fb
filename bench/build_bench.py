"""Build benchmarks of locked environments, each printed as a ratio to a baseline measured in the same run.

For each environment (default `minimal:cpu`; add `--ref pytorch:cpu`) and each installer of the lock in the
build stage (pip, uv):
- cold build: no layer cache at all (`--rebuild`), vs `docker build --no-cache` of the very same rendered
  context with pip (the baseline: dockyard's own overhead plus the installer's difference);
- warm build: the system layers cached, the Python stage run again (what a relock costs: the bench
  appends a comment to a copy of the lock, so only the install step and what follows run);
- no-op build: `dockyard build` of an existing tag vs `docker image inspect` of it;
- the image size.

Run: python bench/build_bench.py [--ref minimal:cpu --ref pytorch:cpu] [--runs N]  (needs a Docker engine
and the site settings `dockyard build` needs here, e.g. tests/conftest.py SITE_ENV). It removes the images it
made, never others.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALLERS = ("pip", "uv")


def timed(cmd: list[str], stdin_path: str | None = None) -> float:
    with open(stdin_path or "/dev/null", "rb") as stdin:
        start = time.perf_counter()
        done = subprocess.run(cmd, check=False, stdin=stdin, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return elapsed


def build_retrying(build, *args, **kwargs):  # type: ignore[no-untyped-def]
    """On a shared engine another user's clean-up may kill a build step's container (exit 137): once more."""
    from dockyard.errors import BuildError

    try:
        return build(*args, **kwargs)
    except BuildError as exc:
        if "non-zero code: 137" not in exc.text:
            raise
        print("  (a build step was killed from outside: building again)", flush=True)
        return build(*args, **kwargs)


def median_of(runs: int, cmd: list[str], stdin_path: str | None = None) -> float:
    return statistics.median(timed(cmd, stdin_path) for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per no-op measurement (median)")
    ap.add_argument("--ref", action="append", help="environment variant (repeatable; default minimal:cpu)")
    args = ap.parse_args()

    import docker

    from dockyard import specs as spec
    from dockyard.config import load_settings
    from dockyard.images.build import build
    from dockyard.images.lockfile import lock_path
    from dockyard.images.plan import make_plan

    client = docker.from_env(timeout=3600)
    options = load_settings().build
    made: list[str] = []
    dockyard = [sys.executable, "-m", "dockyard"]
    try:
        for ref in args.ref or ["minimal:cpu"]:
            name, variant_name = spec.parse_ref(ref)
            s = spec.load(name)
            v = s.variant(variant_name)
            results: dict[str, dict[str, float]] = {}
            for installer in INSTALLERS:
                plan = make_plan(s, v, options, installer=installer)
                cold = build_retrying(build, client, plan, options, rebuild=True)
                made.append(plan.tag)
                # Warm: a copy of the spec whose lock differs by a comment: new tag, system layers cached.
                with tempfile.TemporaryDirectory() as tmp:
                    envs = Path(tmp)
                    shutil.copy(s.path, envs / s.path.name)
                    (envs / "locks").mkdir()
                    lock = lock_path(s, v)
                    (envs / "locks" / lock.name).write_text(lock.read_text() + f"# bench {time.time_ns()}\n")
                    warm_spec = spec.load_file(envs / s.path.name)
                    warm_plan = make_plan(warm_spec, warm_spec.variant(v.name), options, installer=installer)
                    warm = build_retrying(build, client, warm_plan, options)
                    made.append(warm_plan.tag)
                results[installer] = {"cold": cold.seconds, "warm": warm.seconds, "size": cold.size / 1e9}
                print(f"  {ref} {installer}: cold {cold.seconds:.1f}s, warm {warm.seconds:.1f}s", flush=True)
                if installer == "pip":
                    with tempfile.TemporaryDirectory() as tmp:
                        ctx = f"{tmp}/context.tar"
                        with open(ctx, "wb") as f:
                            plan.write_context(f)
                        baseline = timed(["docker", "build", "--no-cache", "-t", "dockyard-bench/baseline:1", "-"], ctx)
                    rm = ["docker", "image", "rm", "dockyard-bench/baseline:1"]
                    subprocess.run(rm, capture_output=True, check=False)
            # No-op: the default installer's image exists now (built above or before).
            subprocess.run([*dockyard, "build", ref, "--no-kernels"], check=True, capture_output=True)
            default_tag = make_plan(s, v, options).tag
            noop = median_of(args.runs, [*dockyard, "build", ref, "--no-kernels"])
            inspect = median_of(args.runs, ["docker", "image", "inspect", default_tag])
            pip, uv = results["pip"], results["uv"]
            print(f"== {ref}")
            for installer, r in results.items():
                print(
                    f"cold build ({installer:3}) {r['cold']:7.1f}s   docker build --no-cache {baseline:7.1f}s   ratio "
                    f"{r['cold'] / baseline:5.2f}x   image {r['size']:.2f} GB"
                )
                print(f"warm build ({installer:3}) {r['warm']:7.1f}s   (system layers cached, Python stage rerun)")
            print(f"uv / pip     cold {uv['cold'] / pip['cold']:5.2f}x   warm {uv['warm'] / pip['warm']:5.2f}x")
            print(
                f"no-op build  dockyard {noop:6.2f}s   docker image inspect {inspect:6.2f}s   "
                f"ratio {noop / inspect:5.2f}x"
            )
            sys.stdout.flush()
    finally:
        default_tags = {make_plan(s2, v2, options).tag for s2 in spec.load_all() for v2 in s2.variants.values()}
        for tag in made:
            if tag not in default_tags:  # the default installer's cold build is the environment's real image
                subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
