#!/usr/bin/env python3
"""Prove the GPU path end to end on a machine with an NVIDIA GPU (CI has none; see docs/gpu.md).

    python3 scripts/gpu-check.py                  # every cuda variant, the dev container, gpu: off
    python3 scripts/gpu-check.py pytorch:cuda     # just some variants
    python3 scripts/gpu-check.py --no-build       # use the images you built already

For each cuda variant: build it (with your site settings), start its kernel through jupyter_client and the
dockyard provisioner, and make the framework compute on the GPU (a matmul placed on the device, checked
against the CPU). For the first PyTorch variant, the kernel figures (docs/resources.md) must show the GPU memory
a kernel holds, and Jupyter's culler with dockyard's GPU timeout must shut down the kernel holding GPU memory
and keep one that holds none. Then the same kernel with DOCKYARD_GPU=off must see no GPU at all, and the
minimal-cuda dev container, started with the devcontainers CLI and the gpuAvailability doctor recommends,
must see the GPU. Leases (docs/gpu.md, Choosing and sharing): with DOCKYARD_GPUS=any-free, N kernels on an N-device
machine run at once and each sees exactly one device in `nvidia-smi -L`, all different; kernel N+1 is refused
with the paragraph naming the holders.
Every container it starts is removed. Exit code 0 only when every check passed; paste the output into the
issue when you report a result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dockyard import engine, gpu, specs  # noqa: E402
from dockyard.errors import DockyardError  # noqa: E402
from dockyard.frontends import devcontainer  # noqa: E402
from dockyard.kernel import kernelspec  # noqa: E402

# Code run inside each kernel: prints one JSON line {"gpu": name or null, "ok": bool, "detail": ...}.
PROBES = {
    "pytorch": """
import json, torch
ok = torch.cuda.is_available()
out = {"gpu": torch.cuda.get_device_name(0) if ok else None, "cuda": torch.version.cuda}
if ok:
    a = torch.randn(512, 512); b = torch.randn(512, 512)
    g = (a.cuda() @ b.cuda())
    out["device"] = str(g.device); out["ok"] = bool(torch.allclose(g.cpu(), a @ b, atol=1e-3))
else:
    out["ok"] = False
print(json.dumps(out))
""",
    "tensorflow": """
import json, numpy as np, tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
out = {"gpu": gpus[0].name if gpus else None}
if gpus:
    a = np.random.rand(512, 512).astype("float32"); b = np.random.rand(512, 512).astype("float32")
    with tf.device("/GPU:0"):
        g = tf.matmul(a, b)
    out["device"] = g.device; out["ok"] = "GPU" in g.device and bool(np.allclose(g.numpy(), a @ b, atol=1e-2))
else:
    out["ok"] = False
print(json.dumps(out))
""",
    "jax": """
import json, jax, jax.numpy as jnp, numpy as np
devs = [d for d in jax.devices() if d.platform == "gpu"]
out = {"gpu": str(devs[0]) if devs else None}
if devs:
    a = np.random.rand(512, 512).astype("float32"); b = np.random.rand(512, 512).astype("float32")
    g = jax.device_put(a, devs[0]) @ jax.device_put(b, devs[0])
    out["device"] = str(list(g.devices())[0]); out["ok"] = bool(np.allclose(np.asarray(g), a @ b, atol=1e-2))
else:
    out["ok"] = False
print(json.dumps(out))
""",
    "python": """
import json, subprocess, shutil
smi = shutil.which("nvidia-smi")
r = subprocess.run([smi, "-L"], capture_output=True, text=True) if smi else None
out = {"gpu": r.stdout.strip() if r and r.returncode == 0 else None}
out["ok"] = out["gpu"] is not None
print(json.dumps(out))
""",
}
# With gpu: off, nothing NVIDIA may be visible: no device nodes, no injected nvidia-smi.
HIDDEN = """
import glob, json, shutil
print(json.dumps({"devices": glob.glob("/dev/nvidia*"), "smi": shutil.which("nvidia-smi")}))
"""

# Holds about 1 GiB of GPU memory in the kernel until it ends.
HOLD_GPU = "import torch; held = torch.ones(1 << 28, device='cuda'); torch.cuda.synchronize(); print('held')"

results: list[tuple[str, bool, str]] = []


def record(what: str, ok: bool, detail: str) -> None:
    results.append((what, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}", flush=True)


def run_in_kernel(kernel_name: str, code: str, jupyter_path: Path, cwd: Path, env: dict[str, str]) -> str:
    """Start the kernel as Jupyter would, run code, return its stdout; the kernel (and container) is shut down."""
    from jupyter_client import KernelManager

    with _environment(jupyter_path, env):
        return _run(KernelManager(kernel_name=kernel_name), code, cwd)


@contextlib.contextmanager
def _environment(jupyter_path: Path, env: dict[str, str]) -> Iterator[None]:
    """JUPYTER_PATH and env set for the block (kernel starts read them), as they were afterwards."""
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", *env)}
    os.environ["JUPYTER_PATH"] = str(jupyter_path)
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(km: Any, code: str, cwd: Path) -> str:
    try:
        km.start_kernel(cwd=str(cwd))
        kc = km.client()
        kc.start_channels()
        out: list[str] = []
        try:
            reply = kc.execute_interactive(
                code,
                timeout=600,
                output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
            )
            if reply["content"]["status"] != "ok":
                return json.dumps({"ok": False, "error": reply["content"].get("evalue", "error")})
        finally:
            kc.stop_channels()
        return "".join(out).strip().splitlines()[-1] if "".join(out).strip() else "{}"
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


async def _figures_and_cull(kernel_name: str, jupyter_path: Path, root: Path) -> None:
    """Kernel figures of a kernel holding GPU memory, then the GPU-aware cull: it goes, an idle twin stays."""
    import asyncio

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from dockyard.config import CullOptions
    from dockyard.kernel import culling, figures
    from dockyard.kernel.collector import Sampler

    sampler = Sampler(engine.client())

    async def holds_gpu(kid: str) -> bool:
        rows = await asyncio.to_thread(sampler.read)
        return any(r.kernel_id == kid and figures.holds_gpu_memory(r.figures.gpu) for r in rows)

    from dockyard.kernel import collector

    collector.GPU_EVERY = 0.0  # read nvidia-smi on every pass here
    km = AsyncMappingKernelManager(
        root_dir=str(root), kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
    )
    culling.install(km, CullOptions(idle_timeout=3600, gpu_idle_timeout=5), holds_gpu, km.log)
    try:
        holder = await km.start_kernel(kernel_name=kernel_name, path="")
        idle = await km.start_kernel(kernel_name=kernel_name, path="")
        kc = km.get_kernel(holder).client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=120)
        reply = await kc.execute_interactive(HOLD_GPU, timeout=300)
        kc.stop_channels()
        rows = {r.kernel_id: r for r in await asyncio.to_thread(sampler.read)}
        g = rows[holder].figures.gpu if holder in rows else None
        record(
            "kernel figures show the GPU memory a kernel holds",
            reply["content"]["status"] == "ok" and g is not None and (g.memory_used or 0) >= 512 << 20,
            json.dumps(rows[holder].as_json()) if holder in rows else "the collector does not see the kernel",
        )
        other = rows[idle].figures.gpu if idle in rows else None
        record("an idle GPU kernel holds no GPU memory", not figures.holds_gpu_memory(other), str(other))
        await asyncio.sleep(7)  # past the GPU timeout (5 s), far from the idle one (3600 s)
        await km.cull_kernels()
        left = set(km.list_kernel_ids())
        record("GPU-aware cull: the kernel holding GPU memory is shut down", holder not in left, str(left))
        record("GPU-aware cull: the kernel holding none stays", idle in left, str(left))
    finally:
        for kid in km.list_kernel_ids():
            await km.shutdown_kernel(kid, now=True)


SMI_LIST = """
import json, subprocess
r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
print(json.dumps({"lines": [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]}))
"""


def _stdout_of(km: object, code: str) -> str:
    """The last line a running kernel prints for code."""
    kc = km.client()  # type: ignore[attr-defined]
    kc.start_channels()
    out: list[str] = []
    try:
        kc.execute_interactive(
            code,
            timeout=120,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
    finally:
        kc.stop_channels()
    return "".join(out).strip().splitlines()[-1]


def check_leases(kernel_name: str, jupyter_path: Path, cwd: Path, verdict: gpu.Verdict) -> None:
    """N kernels with any-free on N devices: each sees one device, all distinct; kernel N+1 is refused."""
    from jupyter_client import KernelManager

    n = len(verdict.devices)
    if n == 0:
        record("leases", False, "the probe listed no devices (nvidia-smi -L)")
        return
    env = {"DOCKYARD_GPUS": "any-free", "DOCKYARD_GPU_WAIT": "0", "DOCKYARD_POOL_SIZE": "0"}
    managers: list[KernelManager] = []
    with _environment(jupyter_path, env), contextlib.ExitStack() as stack:
        stack.callback(_shut_down, managers)
        _lease_checks(kernel_name, cwd, n, managers)


def _shut_down(managers: list[Any]) -> None:
    for km in managers:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def _lease_checks(kernel_name: str, cwd: Path, n: int, managers: list[Any]) -> None:
    from jupyter_client import KernelManager

    try:
        seen: list[list[str]] = []
        for _ in range(n):
            km = KernelManager(kernel_name=kernel_name)
            managers.append(km)
            km.start_kernel(cwd=str(cwd))
        for km in managers:  # all N run at once while each looks
            seen.append(json.loads(_stdout_of(km, SMI_LIST))["lines"])
        one_each = all(len(lines) == 1 for lines in seen)
        distinct = len({lines[0] for lines in seen if lines}) == n
        record(f"{n} kernels, any-free: one distinct device each", one_each and distinct, json.dumps(seen))
        extra = KernelManager(kernel_name=kernel_name)
        try:
            extra.start_kernel(cwd=str(cwd))
            record(f"kernel {n + 1} refused", False, "it started")
        except DockyardError as exc:
            record(f"kernel {n + 1} refused", "is held by" in exc.text, exc.text)
        finally:
            if extra.has_kernel:
                extra.shutdown_kernel(now=True)
    except DockyardError as exc:
        record("leases", False, exc.text)


def check_devcontainer(verdict: gpu.Verdict) -> None:
    cli = shutil.which("devcontainer") or str(REPO / ".tools" / "node_modules" / ".bin" / "devcontainer")
    if not Path(cli).exists():
        record("dev container", False, "devcontainer CLI not found (npm install -g @devcontainers/cli)")
        return
    setting, why = devcontainer.gpu_availability_for(verdict)
    config = REPO / ".devcontainer" / "minimal-cuda" / "devcontainer.json"
    label = f"org.dockyard.gpu-check={uuid.uuid4().hex[:12]}"
    base = ["--workspace-folder", str(REPO), "--config", str(config), "--id-label", label]
    try:
        up = subprocess.run(
            [cli, "up", *base, "--gpu-availability", setting], capture_output=True, text=True, timeout=1800
        )
        if up.returncode != 0:
            record("dev container", False, f"devcontainer up failed: {up.stdout[-500:]} {up.stderr[-500:]}")
            return
        smi = subprocess.run([cli, "exec", *base, "nvidia-smi", "-L"], capture_output=True, text=True, timeout=120)
        record(
            f"dev container (gpuAvailability {setting})",
            smi.returncode == 0 and "GPU" in smi.stdout,
            smi.stdout.strip() or smi.stderr.strip() or why,
        )
    finally:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
        for cid in ids.stdout.split():
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("refs", nargs="*", help="cuda variants to check (default: all)")
    ap.add_argument("--no-build", action="store_true", help="do not build; use existing images")
    ap.add_argument("--no-devcontainer", action="store_true", help="skip the dev container check")
    ap.add_argument(
        "--without-gpu",
        action="store_true",
        help="go on when the engine has no GPU (exercises this script on a GPU-less machine: the GPU checks fail)",
    )
    args = ap.parse_args()

    client = engine.client()
    info = client.info()
    verdict = gpu.assess(client, info, fresh=True)
    record("engine verdict", verdict.usable, f"{verdict.reason} [{verdict.engine}]")
    if not verdict.usable and not args.without_gpu:
        print(f"fix: {verdict.fix}")
        return 1
    pairs = specs.expand(args.refs) if args.refs else [(s, v) for s in specs.load_all() for v in s.variants.values()]
    pairs = [(s, v) for s, v in pairs if v.gpu != "none"]
    with tempfile.TemporaryDirectory(prefix="dockyard-gpu-check-") as tmp:
        jupyter_path = Path(tmp) / "jupyter"
        off_checked = False
        figures_checked = False
        leases_checked = False
        for s, v in pairs:
            if v.cuda is not None:
                problems = gpu.check(v.cuda, verdict.gpus, v.ref)
                record(f"{v.ref} needs", not problems, "; ".join(p for p, _ in problems) or v.cuda.describe())
            if not args.no_build:
                b = subprocess.run([sys.executable, "-m", "dockyard", "build", v.ref], cwd=REPO)
                if b.returncode != 0:
                    record(v.ref, False, "build failed")
                    continue
            kernelspec.write_dir(s, v, jupyter_path / "kernels")
            name = kernelspec.kernel_name(s, v)
            try:
                out = run_in_kernel(name, PROBES.get(s.framework, PROBES["python"]), jupyter_path, Path(tmp), {})
            except DockyardError as exc:
                record(f"{v.ref} kernel start", False, exc.text)
                continue
            data = json.loads(out or "{}")
            record(f"{v.ref} computes on the GPU", bool(data.get("ok")), out)
            if s.framework == "pytorch" and not figures_checked:
                figures_checked = True
                import asyncio

                asyncio.run(_figures_and_cull(name, jupyter_path, Path(tmp)))
            if not leases_checked:  # once: leases do not depend on the framework
                leases_checked = True
                check_leases(name, jupyter_path, Path(tmp), verdict)
            if not off_checked:  # once is enough: gpu: off is the same rule for every variant
                off_checked = True
                off = json.loads(run_in_kernel(name, HIDDEN, jupyter_path, Path(tmp), {"DOCKYARD_GPU": "off"}))
                record(f"{v.ref} with gpu: off sees no GPU", not off["devices"] and not off["smi"], json.dumps(off))
    if not args.no_devcontainer:
        check_devcontainer(verdict)
    failed = [w for w, ok, _ in results if not ok]
    print(
        f"\n{len(results) - len(failed)}/{len(results)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
