"""Spec pins → lock file text, with uv's resolver (`uv pip compile`) for the image's platform, from the host.

uv resolves for a target platform and Python without downloading wheels (hashes come from the indexes), in
about a second. It honours the same site settings as a build: index mirror, extra indexes, the spec's own
indexes (unless ignored), the wheelhouse, extra CA certificates and proxies.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..config import PROXY_VARIABLES, BuildOptions
from ..specs import Spec, Variant
from .lockfile import PLATFORM, LockError, check_cpu, header, lock_path, parse
from .render import index_args

_SYSTEM_BUNDLES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt"))


def uv_binary() -> str:
    try:
        from uv import find_uv_bin  # the `uv` wheel ships the binary; a dependency of dockyard
    except ImportError:
        raise LockError("uv is not installed", fix="pip install uv (it comes with dockyard's dependencies)") from None
    return str(find_uv_bin())


def indexes(variant: Variant, options: BuildOptions) -> list[str]:
    """The index arguments, as a build uses them, plus the site's wheelhouse (a build copies it into its context)."""
    args = index_args(variant, options)
    if options.wheelhouse is not None:
        args += ["--find-links", str(options.wheelhouse)]
    return args


def _environment(options: BuildOptions, scratch: Path) -> dict[str, str]:
    # The system's trust store, not uv's bundled roots: a TLS-intercepting proxy's CA lives there.
    env = dict(os.environ) | {"UV_SYSTEM_CERTS": "1"}
    for key, names in PROXY_VARIABLES.items():
        if key in options.proxy:
            env |= dict.fromkeys(names, options.proxy[key])
    if options.ca_certs:
        # uv reads one bundle (SSL_CERT_FILE): the system's roots plus the site's CAs.
        from .context import ca_certificates

        parts = [b.read_bytes() for b in _SYSTEM_BUNDLES if b.is_file()][:1]
        parts += list(ca_certificates(options).values())
        bundle = scratch / "ca-bundle.crt"
        bundle.write_bytes(b"\n".join(parts))
        env["SSL_CERT_FILE"] = str(bundle)
    return env


def compile_lock(spec: Spec, variant: Variant, options: BuildOptions, *, upgrade: Sequence[str] = ()) -> str:
    """The lock file text for variant; the existing lock's versions are kept where the pins allow, except
    for the packages in upgrade."""
    existing = lock_path(spec, variant)
    with tempfile.TemporaryDirectory(prefix="dockyard-lock-") as tmp:
        scratch = Path(tmp)
        (scratch / "requirements.in").write_text("".join(f"{p}\n" for p in variant.python_packages))
        out = scratch / "lock.txt"
        if existing.is_file():
            out.write_bytes(existing.read_bytes())  # uv prefers the versions in its output file
        cmd = [uv_binary(), "pip", "compile", "--quiet", "--no-header", "--generate-hashes"]
        cmd += ["--python-platform", PLATFORM, "--python-version", spec.python, "--no-config"]
        cmd += indexes(variant, options)
        for name in upgrade:
            cmd += ["--upgrade-package", name]
        cmd += ["--output-file", str(out), "requirements.in"]  # relative: the lock's "# via" lines name no temp dir
        try:
            done = subprocess.run(
                cmd,
                cwd=scratch,
                env=_environment(options, scratch),
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LockError(
                f"Resolving {variant.ref} took over 15 minutes", fix="check the network or the index settings"
            ) from None
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-12:])
            urls = indexes(variant, options)[1::2]
            if not options.pip_index_url:
                urls.insert(0, "https://pypi.org/simple")
            raise LockError(
                f"Could not resolve {variant.ref} for {PLATFORM}, CPython {spec.python} with the indexes "
                f"{', '.join(urls)}:\n{tail}",
                fix="make each index reachable (a mirror: --pip-index-url / --pip-extra-index-url, or a wheelhouse "
                "with the wheels: --wheelhouse; --ignore-spec-indexes when the mirror has everything), or fix the "
                "pin the resolver names",
            )
        text = header(spec, variant) + out.read_text(encoding="utf-8")
    check_cpu(variant, parse(existing, text, variant.ref))
    return text


def write_lock(spec: Spec, variant: Variant, text: str) -> Path:
    path = lock_path(spec, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
