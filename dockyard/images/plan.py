"""Everything one build needs, and the content hash that names its image."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..config import BuildOptions
from ..labels import (
    LABEL_CUDA_WHEELS,
    LABEL_ENV,
    LABEL_FRAMEWORK,
    LABEL_GPU,
    LABEL_HASH,
    LABEL_LOCK_SHA256,
    LABEL_VARIANT,
)
from ..specs import Spec, Variant
from . import context, render
from .lockfile import Lock, LockError, inputs_digest, is_cuda_pin, load_lock, lock_digest
from .naming import image_alias, image_tag, stage_tag

# Bump when the rendering changes in a way the Dockerfile text alone would not show.
FORMAT = "dockyard-build-2"
HASH_LEN = 12
# What installs the lock in the build stage: "pip" or "uv" (bench/build_bench.py measures both; see docs/locks.md).
INSTALLER = "pip"


@dataclass(frozen=True)
class BuildPlan:
    spec: Spec
    variant: Variant
    dockerfile: str
    files: dict[str, bytes | Path]
    content_hash: str
    base: str
    lock: Lock | None = None
    lock_error: LockError | None = None  # missing, stale or CUDA in a CPU variant: build() raises it

    @property
    def tag(self) -> str:
        """Content-addressed tag: dockyard/ENV:VARIANT-HASH."""
        return image_tag(self.variant, self.content_hash)

    @property
    def alias(self) -> str:
        """Moving tag that always names the newest build of this variant."""
        return image_alias(self.variant)

    @property
    def stage_tag(self) -> str:
        return stage_tag(self.variant)

    @property
    def lock_sha256(self) -> str:
        """sha256 of the lock file this build installs ("" without one: build() refuses such a plan)."""
        return lock_digest(self.lock.text) if self.lock else ""

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            LABEL_ENV: self.spec.name,
            LABEL_VARIANT: self.variant.name,
            LABEL_HASH: self.content_hash,
            LABEL_LOCK_SHA256: self.lock_sha256,
            LABEL_GPU: self.variant.gpu,
            LABEL_FRAMEWORK: f"{self.spec.framework}=={self.spec.framework_version}",
            "org.opencontainers.image.title": f"{self.spec.display_name} ({self.variant.name})",
            "org.opencontainers.image.base.name": self.base,
        }
        if self.lock is not None:  # a plan without a lock never builds (build() raises lock_error)
            labels[LABEL_CUDA_WHEELS] = json.dumps(self.cuda_wheels, sort_keys=True, separators=(",", ":"))
        return labels

    @property
    def cuda_wheels(self) -> dict[str, str]:
        """The lock's CUDA wheels, NAME: VERSION (empty for CPU variants)."""
        pins = self.lock.pins if self.lock is not None else ()
        return {p.name: p.version for p in pins if is_cuda_pin(p.name, p.version)}

    def write_context(self, fileobj: io.BufferedIOBase) -> None:
        """A tar build context with fixed metadata, so equal inputs give equal bytes."""
        with tarfile.open(fileobj=fileobj, mode="w") as tar:
            entries: dict[str, bytes | Path] = {"Dockerfile": self.dockerfile.encode(), **self.files}
            for name in sorted(entries):
                data = entries[name]
                info = tarfile.TarInfo(name)
                info.mode = 0o644
                info.mtime = 0
                if isinstance(data, Path):
                    info.size = data.stat().st_size
                    with data.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def make_plan(spec: Spec, variant: Variant, options: BuildOptions, *, installer: str = INSTALLER) -> BuildPlan:
    files: dict[str, bytes | Path] = {}
    certs = context.ca_certificates(options)
    files.update(certs)
    lock: Lock | None = None
    lock_error: LockError | None = None
    try:
        lock = load_lock(spec, variant)
    except LockError as exc:
        lock_error = exc  # reported by build(); listing what is built must still work
    files.update(context.wheels(lock, options))
    files[f"{context.WHEEL_DIR}/.keep"] = b""  # COPY needs the directory even when it is empty
    files["requirements.txt"] = lock.text.encode() if lock else b""
    conf = render.pip_conf(options)
    if conf:
        files["pip.conf"] = conf.encode()
    files.update(context.kit_files(spec, variant, render.KIT))
    if installer == "uv":
        files["uv.txt"] = context.UV_LOCK.read_bytes()
    text = render.dockerfile(spec, variant, options, has_ca=bool(certs), has_pip_conf=bool(conf), installer=installer)
    h = hashlib.sha256()
    # The spec's pins as they are now: a pin changed without relocking gives a tag no image has.
    h.update(FORMAT.encode() + b"\0" + inputs_digest(spec, variant).encode() + b"\0" + text.encode() + b"\0")
    for name in sorted(files):
        data = files[name]
        digest = context.file_digest(data) if isinstance(data, Path) else hashlib.sha256(data).hexdigest()
        h.update(f"{name}\0{digest}\0".encode())
    return BuildPlan(
        spec, variant, text, files, h.hexdigest()[:HASH_LEN], options.base_for(variant.base), lock, lock_error
    )
