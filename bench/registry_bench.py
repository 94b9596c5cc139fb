"""Time to a ready kernel on a machine without the environment's image: pull from a registry vs build, as a ratio
measured in one run (docs/registry.md).

For each environment (default `minimal:cpu`; add `--ref pytorch:cpu`), a throwaway copy of its spec (its own name
and a nonce, so the content tag is new and the images are the bench's own):
- build: `build --rebuild` (no layer cache at all), then a kernel started and ready;
- push it to a registry on 127.0.0.1 (scripts/start-registry.sh: TLS, htpasswd);
- pull: every image of the copy removed, `dockyard pull`, then a kernel started and ready.
The base image stays on the machine in both cases (a fresh machine would fetch it either way), so the figures
compare what dockyard adds: its build against its pull.

Run as root (it writes /etc/docker/certs.d/127.0.0.1:PORT/ca.crt and removes it again), with the site settings a
build needs here (tests/conftest.py SITE_ENV):  python bench/registry_bench.py [--ref minimal:cpu --ref pytorch:cpu]
It removes the images, registry and files it made, never others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import SITE_ENV  # noqa: E402  (the site settings the tests build with)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(scratch: Path):  # type: ignore[no-untyped-def]
    port, user, password = free_port(), "bench", uuid.uuid4().hex
    host = f"127.0.0.1:{port}"
    certs_d = Path("/etc/docker/certs.d")
    trust, made_certs_d = certs_d / host, not certs_d.exists()
    started = subprocess.run(
        ["bash", str(REPO / "scripts/start-registry.sh"), str(scratch / "registry"), str(port), user, password],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started.stdout.strip())
    try:
        trust.mkdir(parents=True)
        shutil.copy(scratch / "registry" / "ca.crt", trust / "ca.crt")
        config = scratch / "docker-config"
        subprocess.run(
            ["docker", "--config", str(config), "login", "-u", user, "--password-stdin", host],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        )
        os.environ.update(
            DOCKYARD_REGISTRY=host,
            DOCKYARD_REGISTRY_CA_CERT=str(scratch / "registry" / "ca.crt"),
            DOCKER_CONFIG=str(config),
        )
        yield host
    finally:
        os.kill(pid, signal.SIGTERM)
        shutil.rmtree(trust, ignore_errors=True)
        if made_certs_d:
            with contextlib.suppress(OSError):
                certs_d.rmdir()


def copy_env(ref: str, envs: Path) -> str:
    name, _, variant = ref.partition(":")
    copy = f"bench{name}"
    spec = (REPO / "envs" / f"{name}.yaml").read_text().replace(f"name: {name}", f"name: {copy}", 1)
    spec = spec.replace('python: "3.11"\n', f'python: "3.11"\nenv: {{BENCH_NONCE: "{uuid.uuid4().hex}"}}\n', 1)
    (envs / f"{copy}.yaml").write_text(spec)
    (envs / "locks").mkdir(exist_ok=True)
    for lock in (REPO / "envs" / "locks").glob(f"{name}-*.txt"):
        shutil.copy(lock, envs / "locks" / lock.name.replace(f"{name}-", f"{copy}-", 1))
    return f"{copy}:{variant or 'cpu'}"


def ready_kernel_seconds(ref: str, jupyter: Path, work: Path) -> float:
    """A kernel of ref started through dockyard's provisioner and ready (kernel_info answered)."""
    from jupyter_client import KernelManager

    name, _, variant = ref.partition(":")
    spec_dir = jupyter / "kernels" / f"bench-{name}-{variant}"
    spec_dir.mkdir(parents=True, exist_ok=True)
    provisioner = {"provisioner_name": "dockyard-docker-provisioner", "config": {"env": name, "variant": variant}}
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": ref,
                "language": "python",
                "metadata": {"kernel_provisioner": provisioner},
            }
        )
    )
    start = time.perf_counter()
    km = KernelManager(kernel_name=spec_dir.name)
    km.start_kernel(cwd=str(work))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        return time.perf_counter() - start
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def remove_images(client, env: str) -> None:  # type: ignore[no-untyped-def]
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"dockyard/{env}:"):
                with contextlib.suppress(Exception):
                    client.images.remove(tag)


def bench(ref: str, envs: Path, jupyter: Path, work: Path) -> tuple[float, float]:
    from dockyard import engine, specs
    from dockyard.config import load_settings
    from dockyard.images.build import build
    from dockyard.images.plan import make_plan
    from dockyard.registry import transfer

    copy = copy_env(ref, envs)
    spec, variant = specs.resolve(copy)
    settings = load_settings()
    plan = make_plan(spec, variant, settings.build)
    client = engine.client(timeout=3600)
    try:
        start = time.perf_counter()
        build(client, plan, settings.build, rebuild=True)  # no layer cache: what a machine without the image does
        built = time.perf_counter() - start + ready_kernel_seconds(copy, jupyter, work)
        transfer.push(client, plan, settings.registry)
        remove_images(client, spec.name)
        start = time.perf_counter()
        transfer.pull(client, plan, settings.registry)
        pulled = time.perf_counter() - start + ready_kernel_seconds(copy, jupyter, work)
        return built, pulled
    finally:
        remove_images(client, spec.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", help="environment (default minimal:cpu; repeatable)")
    args = parser.parse_args()
    for key, value in SITE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["DOCKYARD_POOL_SIZE"] = "0"  # a cold start each time, not a warm container
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-registry-bench-"))
    try:
        envs, jupyter, work = scratch / "envs", scratch / "jupyter", scratch / "work"
        for d in (envs, jupyter, work):
            d.mkdir()
        os.environ.update(
            DOCKYARD_ENVS_PATH=str(envs), JUPYTER_PATH=str(jupyter), JUPYTER_RUNTIME_DIR=str(scratch / "runtime")
        )
        with registry(scratch) as host:
            print(f"registry: https://{host} (TLS, htpasswd)")
            print("time to a ready kernel without the image   build (no cache)   pull   pull/build")
            for ref in args.ref or ["minimal:cpu"]:
                built, pulled = bench(ref, envs, jupyter, work)
                print(f"  {ref:<40} {built:>10.1f} s   {pulled:>6.1f} s   {pulled / built:.2f}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
