"""An image, a build plan or a kernelspec → the stamp of its environment.

An image built by dockyard carries everything a stamp needs in its labels (images/plan.py), so stamping
never reads the checkout's lock, which may have moved on since the build. Images built before those labels
existed get theirs from the checkout, but only when the checkout's plan gives the image's content hash
(then its lock is provably the one inside).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import docker

from .. import gpu, specs
from ..config import BuildOptions
from ..engine import find_image
from ..errors import DockyardError
from ..images.lockfile import lock_digest
from ..images.plan import BuildPlan, make_plan
from ..labels import LABEL_CUDA_WHEELS, LABEL_ENV, LABEL_FRAMEWORK, LABEL_HASH, LABEL_LOCK_SHA256, LABEL_VARIANT
from .stamp import Stamp


def from_plan(plan: BuildPlan, *, gpu_driver: str = "", gpu_name: str = "") -> Stamp | None:
    """The stamp an image of this plan gets (None without a lock: such a plan never builds)."""
    if plan.lock is None:
        return None
    return Stamp(
        env=plan.spec.name,
        variant=plan.variant.name,
        content_hash=plan.content_hash,
        lock_sha256=lock_digest(plan.lock.text),
        framework=plan.spec.framework,
        framework_version=plan.spec.framework_version,
        cuda_wheels=plan.cuda_wheels,
        gpu_driver=gpu_driver,
        gpu_name=gpu_name,
    )


def from_labels(labels: Mapping[str, str], *, gpu_driver: str = "", gpu_name: str = "") -> Stamp | None:
    """The stamp from an image's labels; None for an image without them (not dockyard's, or built earlier)."""
    needed = (LABEL_ENV, LABEL_VARIANT, LABEL_HASH, LABEL_LOCK_SHA256, LABEL_FRAMEWORK)
    if any(not labels.get(k) for k in needed):
        return None
    framework, _, version = labels[LABEL_FRAMEWORK].partition("==")
    try:
        wheels = json.loads(labels.get(LABEL_CUDA_WHEELS) or "{}")
    except ValueError:
        wheels = {}
    return Stamp(
        env=labels[LABEL_ENV],
        variant=labels[LABEL_VARIANT],
        content_hash=labels[LABEL_HASH],
        lock_sha256=labels[LABEL_LOCK_SHA256],
        framework=framework,
        framework_version=version,
        cuda_wheels={str(k): str(v) for k, v in wheels.items()} if isinstance(wheels, dict) else {},
        gpu_driver=gpu_driver,
        gpu_name=gpu_name,
    )


def for_image(client: docker.DockerClient, tag: str, options: BuildOptions, *, with_gpu: bool = False) -> Stamp | None:
    """The stamp of a local image (None: no such image, or not provably one of dockyard's builds)."""
    image = find_image(client, tag)
    if image is None:
        return None
    driver, name = gpu_of(client) if with_gpu else ("", "")
    labels: dict[str, str] = image.labels or {}
    found = from_labels(labels, gpu_driver=driver, gpu_name=name)
    if found is not None or not labels.get(LABEL_ENV):
        return found
    try:  # an image built before the provenance labels: the checkout's lock, if it is provably that one
        spec, variant = specs.resolve(f"{labels[LABEL_ENV]}:{labels.get(LABEL_VARIANT, '')}")
    except DockyardError:
        return None
    plan = make_plan(spec, variant, options)
    if plan.content_hash != labels.get(LABEL_HASH):
        return None
    return from_plan(plan, gpu_driver=driver, gpu_name=name)


def gpu_of(client: docker.DockerClient) -> tuple[str, str]:
    """(driver, card) of the engine's first GPU, from the cached GPU verdict ("" when unknown)."""
    try:
        verdict = gpu.assess(client, client.info())
    except Exception:  # the stamp must not fail a save over GPU detection
        return "", ""
    if not verdict.usable or not verdict.gpus:
        return "", ""
    first = verdict.gpus[0]
    return first.driver, first.name


def kernelspec_ref(kernelspec_metadata: Mapping[str, Any]) -> str | None:
    """ENV:VARIANT from a dockyard kernelspec's metadata (kernel.json), None for other kernels."""
    config = ((kernelspec_metadata.get("kernel_provisioner") or {}).get("config")) or {}
    env, variant = config.get("env"), config.get("variant")
    if isinstance(env, str) and env:
        return f"{env}:{variant}" if isinstance(variant, str) and variant else env
    return None
