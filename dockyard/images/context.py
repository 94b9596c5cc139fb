"""The files that go into a build besides the Dockerfile: CA certificates, wheels, kit files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from .. import hostfiles, paths
from ..config import BuildOptions
from ..errors import ConfigError
from ..specs import Spec, Variant
from .lockfile import Lock

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)
CA_DIR = "ca-certificates"
WHEEL_DIR = "wheelhouse"
KIT_DIR = "kit"
UV_LOCK = Path(__file__).with_name("uv-installer.txt")  # uv itself, hash-pinned, for installer "uv"


def _pem_files(path: Path) -> list[Path]:
    if path.is_dir():
        names = sorted(p for p in path.iterdir() if p.suffix in (".crt", ".pem", ".cer"))
        if len(names) > hostfiles.CA_DIR_MAX_FILES:
            raise ConfigError(
                f"CA certificate directory {path} holds {len(names)} certificate files",
                fix=f"give a directory of at most {hostfiles.CA_DIR_MAX_FILES} PEM files, or one bundle file",
            )
        return [p for p in names if p.is_file()]
    return [path]


_CA_FIX = "give PEM files of at most 4 MB (a CA bundle is a few hundred KB)"


def ca_certificates(options: BuildOptions) -> dict[str, bytes]:
    """Every certificate from the configured CA files, one per file, named by its digest (stable order)."""
    out: dict[str, bytes] = {}
    for source in options.ca_certs:
        found = 0
        for file in _pem_files(source):
            pem = hostfiles.read_bounded(file, str(source), "CA certificate file", hostfiles.CA_FILE_MAX, _CA_FIX)
            for block in _PEM.findall(pem):
                cert = block.replace(b"\r\n", b"\n") + b"\n"
                out[f"{CA_DIR}/{hashlib.sha256(cert).hexdigest()[:24]}.crt"] = cert
                found += 1
        if not found:
            raise ConfigError(
                f"CA certificate path {source} holds no PEM certificate",
                fix="give a PEM file (-----BEGIN CERTIFICATE-----) or a directory of .crt/.pem files",
            )
    return dict(sorted(out.items()))


def wheels(lock: Lock | None, options: BuildOptions) -> dict[str, Path]:
    """Wheels from the wheelhouse for the exact versions the lock pins (others would only bloat the context)."""
    if options.wheelhouse is None or lock is None:
        return {}
    wanted = {(p.name, Version(p.version)) for p in lock.pins}
    out: dict[str, Path] = {}
    for path in sorted(options.wheelhouse.glob("*.whl")):
        try:
            name, version, *_ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if (canonicalize_name(name), version) in wanted:
            fix = "put only wheel files (at most 8 GB each) in the wheelhouse"
            hostfiles.regular_file(path, str(options.wheelhouse), "wheel", hostfiles.WHEEL_MAX, fix)
            out[f"{WHEEL_DIR}/{path.name}"] = path
    return out


# The part of the dockyard package a kernel imports (`dockyard.panel()`): the environment panel's widget,
# which needs only the standard library and anywidget. It lands in KIT_PYTHON (on the venv's path through
# KIT_PTH), so a spec change is not needed to get a newer panel: the kit is the image's last, smallest layer.
KIT_PYTHON = "python"
KIT_PTH = "dockyard-kit.pth"
KIT_MODULES = (
    "__init__.py",
    "frontends/panel/__init__.py",
    "frontends/panel/facts.py",
    "frontends/panel/widget.py",
    "frontends/panel/widget.js",
    "frontends/panel/widget.css",
)


def kit_files(spec: Spec, variant: Variant, kit_root: str) -> dict[str, bytes]:
    """Small files dockyard itself reads inside a running kernel: the environment marker and the panel.

    kit_root is where the kit lands in the image (the .pth file names it)."""
    marker = {**spec.summary(variant), "display_name": spec.display_name}
    files = {f"{KIT_DIR}/environment.json": (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()}
    for rel in KIT_MODULES:
        files[f"{KIT_DIR}/{KIT_PYTHON}/dockyard/{rel}"] = (paths.PACKAGE_DIR / rel).read_bytes()
    files[f"{KIT_DIR}/{KIT_PTH}"] = f"{kit_root}/{KIT_PYTHON}\n".encode()
    return files


def file_digest(path: Path) -> str:
    """sha256 of a file, cached by (path, size, mtime) so no-op builds stay fast with big wheels."""
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = paths.cache_dir() / "digests.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    if isinstance(cached := cache.get(key), str):
        return cached
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    cache[key] = digest
    tmp = cache_path.with_suffix(f".{id(h)}.tmp")
    tmp.write_text(json.dumps(cache))
    tmp.replace(cache_path)
    return digest
