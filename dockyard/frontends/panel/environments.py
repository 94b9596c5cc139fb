"""What the panel shows about every environment: spec summary, kernel, image state and size, GPU.

Runs on the Jupyter server's host (never in a kernel), in a worker thread: it talks to the engine.
"""

from __future__ import annotations

import os
from typing import Any

import docker

from ... import engine, gpu, specs
from ...config import Settings, load_settings
from ...errors import DockyardError
from ...images.inventory import image_state
from ...kernel import kernel_secrets
from ...kernel.kernelspec import display_name, kernel_name
from ...kernel.pool import pooled as pool
from ...kernel.pool.keeper import PoolKeeper


def snapshot(
    installed_kernels: set[str] | None, running_builds: dict[str, str], only: str | None = None
) -> dict[str, Any]:
    """Every environment variant (or only the ref `only`) with the facts the panel shows.

    installed_kernels: kernelspec names this Jupyter knows (None: unknown). running_builds: ref → build id.
    One broken spec or a stopped engine never hides the rest: each becomes a message in the answer.
    """
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings()
    except DockyardError as exc:
        problems.append(exc.text)
    client: docker.DockerClient | None = None
    verdict: gpu.Verdict | None = None
    engine_state: dict[str, Any] = {"ok": False, "host": engine.describe_host(), "gpu": None, "error": None}
    try:
        client = engine.client(timeout=10)
        # The verdict kernels use (cached; probed once with a built image when the engine offers GPUs).
        verdict = gpu.assess(client, client.info())
        engine_state.update(ok=True, gpu={"usable": verdict.usable, "reason": verdict.reason})
    except DockyardError as exc:
        engine_state["error"] = exc.text
    pairs, spec_errors = _variants(only)
    envs = [
        _one(spec, variant, settings, client, verdict, installed_kernels, running_builds) for spec, variant in pairs
    ]
    pool_state, by_ref = _pool(client, settings)
    for env in envs:
        env["pool"] = by_ref.get(env["ref"], {"ready": 0, "starting": 0, "claimed": 0})
    return {"engine": engine_state, "problems": problems + spec_errors, "environments": envs, "pool": pool_state}


def _pool(
    client: docker.DockerClient | None, settings: Settings | None
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The warm pool (kernel/pool/pooled.py): its settings, this server's keeper, and per environment how many of
    this user's pooled containers are ready, starting, or claimed (running kernels)."""
    keeper = PoolKeeper.instance()
    opts = settings.kernels.pool if settings is not None else None
    state: dict[str, Any] = {
        "size": opts.size if opts else None,
        "max_containers": opts.max_containers if opts else None,
        "max_memory": opts.max_memory if opts else None,
        **keeper.status(),
    }
    by_ref: dict[str, dict[str, int]] = {}
    if client is None:
        return state, by_ref
    try:
        listed = pool.listing(client)
    except Exception as exc:  # the pool's state must not hide the environments
        state["last_error"] = f"{type(exc).__name__}: {exc}"
        return state, by_ref
    for p in listed:
        if p.state in ("ready", "starting", "claimed") and pool.is_mine(p):
            counts = by_ref.setdefault(p.ref, {"ready": 0, "starting": 0, "claimed": 0})
            counts[p.state] += 1
    return state, by_ref


def _variants(only: str | None) -> tuple[list[tuple[specs.Spec, specs.Variant]], list[str]]:
    if only is not None:
        return [specs.resolve(only)], []  # a SpecError here is the caller's 404
    pairs: list[tuple[specs.Spec, specs.Variant]] = []
    errors: list[str] = []
    for path in specs.spec_files().values():
        try:
            spec = specs.load_file(path)
        except DockyardError as exc:
            errors.append(exc.text)
            continue
        pairs += [(spec, v) for v in spec.variants.values()]
    return pairs, errors


def _one(
    spec: specs.Spec,
    variant: specs.Variant,
    settings: Settings | None,
    client: docker.DockerClient | None,
    verdict: gpu.Verdict | None,
    installed_kernels: set[str] | None,
    running_builds: dict[str, str],
) -> dict[str, Any]:
    name = kernel_name(spec, variant)
    problems: list[str] = []
    image: dict[str, Any] = {"status": "unknown", "tag": None, "size": None}
    built: bool | None = None  # None: unknown (no engine or settings)
    if settings is not None and client is not None:
        try:
            state = image_state(client, spec, variant, settings.build)
            image = {"status": state.status, "tag": state.plan.tag, "size": _size(state.image)}
            built = state.built
            if not state.built:
                what = "is outdated (the spec or the site settings changed)" if state.older else "is not built"
                problems.append(
                    f"The image of {variant.ref} {what}. Fix: press Build (its kernel comes with it; Switch works "
                    f"then), or run 'dockyard build {variant.ref}'."
                )
        except DockyardError as exc:
            problems.append(exc.text)
    gpu_state = {"wants": variant.gpu, "available": None if verdict is None else verdict.usable}
    if client is not None and settings is not None:
        try:
            gpu.device_requests(variant.gpu, settings.kernels.gpu, verdict, variant.ref)
        except DockyardError as exc:  # GPU required (by the spec or the user) but the engine gives none
            problems.append(exc.text)
    installed = None if installed_kernels is None else name in installed_kernels
    if installed is False and built:
        # Only for a built image: an unbuilt one gets its kernelspec from Build (the message above says so),
        # and 'dockyard kernels install' skips unbuilt images, so advising it there was false.
        problems.append(
            f"The image of {variant.ref} is built but Jupyter has no kernelspec '{name}' for it. "
            f"Fix: run 'dockyard kernels install {variant.ref}', then press Refresh."
        )
    return {
        "ref": variant.ref,
        "env": spec.name,
        "variant": variant.name,
        "title": spec.display_name,
        "description": variant.description or spec.description,
        "framework": {"name": spec.framework, "version": spec.framework_version},
        "python": spec.python,
        "kernel": {"name": name, "display_name": display_name(spec, variant), "installed": installed},
        "image": image,
        "gpu": gpu_state,
        "build": running_builds.get(variant.ref),
        "data": data_facts(spec, problems),
        "problems": problems,
    }


def data_facts(spec: specs.Spec, problems: list[str]) -> dict[str, Any]:
    """What the environment's kernels mount and which secrets they get: names and sources, never a value; a missing
    secret is also a problem with its fix (docs/data-and-secrets.md)."""
    secrets = kernel_secrets.status(spec.secrets, os.environ)
    for row in secrets:
        if not row["present"]:
            need = "needs" if row["required"] else "would get"
            problems.append(f"Kernels of {spec.name} {need} secret {row['name']}, which is missing: {row['problem']}. "
                            f"Fix: {row['fix']}.")  # fmt: skip
    mounts = [{"what": m.label, "target": m.target, "read_only": m.read_only} for m in spec.mounts]
    return {"mounts": mounts, "secrets": secrets}


def _size(image: Any) -> int | None:
    if image is None:
        return None
    size = image.attrs.get("Size")
    return int(size) if isinstance(size, int) else None
