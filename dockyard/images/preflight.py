"""Before a build: can the image reach every package index it will use, trusting only what it will trust?

A build that cannot reach an index does not fail at once: pip retries each request for minutes (7 min 42 s
for one unreachable extra index, measured) before the step fails with a long log. So `build` and `doctor`
ask each index once, in parallel, with short timeouts, the way the build's pip will ask it:
- the URLs of images/render.index_args (the site's mirror or PyPI, the site's extra indexes, the spec's);
- through the build's proxy (BuildOptions.proxy), never through whatever this process's environment says;
- trusting what the image trusts: the base image's own CA bundle (read from the image, not run) plus the CA
  certificates the build adds. Not the host's trust store, nor this Python's certifi: a host whose store
  (or patched certifi, as on the CI machines) trusts an intercepting proxy's CA gives an image nothing.
A reachable index answers anything but 5xx or an auth refusal; 404 for the probe's project is fine.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import certifi
import docker
import docker.errors
import requests

from ..config import BuildOptions
from ..errors import BuildError
from ..specs import Spec, Variant
from . import context, render

PYPI = "https://pypi.org/simple/"
TIMEOUT = (3.05, 5.0)  # connect, read (seconds): an index that needs more is unusable for a build anyway
LABEL_PREFLIGHT = "org.dockyard.preflight"  # the created-never-started container that reads a bundle
_PROBE_PROJECT = "pip/"  # every Python index serves pip; a 404 still proves the index answers


@dataclass(frozen=True)
class Index:
    url: str
    origin: str  # where the build gets it from, as the user would look for it
    from_spec: bool = False  # the spec's own index (--ignore-spec-indexes skips it)


@dataclass(frozen=True)
class Probe:
    index: Index
    problem: str | None  # None: reachable and trusted
    untrusted: bool = False  # the problem is TLS trust (the CA fix applies)


class PreflightError(BuildError):
    """A package index the build needs cannot be reached with the image's trust."""


def indexes(spec: Spec, variant: Variant, options: BuildOptions) -> list[Index]:
    """Every index the build's pip asks, in its order (the same list as render.index_args)."""
    out = [
        Index(options.pip_index_url, "the site's mirror (pip_index_url)")
        if options.pip_index_url
        else Index(PYPI, "PyPI, the default index (no mirror configured)")
    ]
    out += [Index(u, "the site's extra indexes (pip_extra_index_urls)") for u in options.pip_extra_index_urls]
    if not options.ignore_spec_indexes:
        seen = {i.url for i in out}
        where = f"{_shown_path(spec.path)}, variant {variant.name}"
        spec_urls = [u for u in variant.pip_extra_index_urls if u not in seen]
        out += [Index(u, f"{where} (pip_extra_index_urls)", from_spec=True) for u in spec_urls]
    return out


def image_roots(client: docker.DockerClient | None, image: str) -> tuple[bytes, str]:
    """The CA bundle `image` ships (what its pip and curl trust before the build adds any), and where it came
    from; certifi's bundle when the image is not here or has none (then said so)."""
    if client is not None:
        try:
            container = client.containers.create(image, command=["true"], labels={LABEL_PREFLIGHT: "1"})
            try:
                stream, _ = container.get_archive(render.CA_BUNDLE)
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    member = next((m for m in tar.getmembers() if m.isfile()), None)
                    data = tar.extractfile(member).read() if member is not None else None  # type: ignore[union-attr]
            finally:
                container.remove(force=True)
            if data:
                return data, f"{image}'s {render.CA_BUNDLE}"
        except (docker.errors.DockerException, requests.exceptions.RequestException, tarfile.TarError):
            pass
    return Path(certifi.where()).read_bytes(), f"this Python's certifi bundle ({image} not readable here)"


def probe(targets: Sequence[Index], options: BuildOptions, roots: bytes) -> list[Probe]:
    """Ask every index at once, trusting roots plus the build's CA files; one Probe per index, in order,
    within about TIMEOUT seconds."""
    if not targets:
        return []
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as bundle:
        bundle.write(roots)
        for pem in context.ca_certificates(options).values():
            bundle.write(b"\n" + pem)
        bundle.flush()
        proxies = {k: v for k, v in options.proxy.items() if k in ("http", "https", "no_proxy")}
        with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            return list(pool.map(lambda i: _probe_one(i, bundle.name, proxies), targets))


def _probe_one(index: Index, ca_bundle: str, proxies: dict[str, str]) -> Probe:
    url = index.url.rstrip("/") + "/" + _PROBE_PROJECT
    with requests.Session() as session:
        session.trust_env = False  # this process's REQUESTS_CA_BUNDLE, proxies, netrc: none reach the image
        try:
            r = session.get(url, timeout=TIMEOUT, verify=ca_bundle, proxies=proxies, stream=True)
            r.close()
        except requests.exceptions.SSLError as exc:
            return Probe(index, f"its TLS certificate is not trusted by the image ({_reason(exc)})", untrusted=True)
        except requests.exceptions.ProxyError as exc:
            return Probe(index, f"the proxy refused or failed the connection ({_reason(exc)})")
        except requests.exceptions.Timeout:
            return Probe(index, f"no answer within {TIMEOUT[0] + TIMEOUT[1]:.0f} s")
        except requests.exceptions.RequestException as exc:
            return Probe(index, f"cannot connect ({_reason(exc)})")
    if r.status_code in (401, 403, 407):
        return Probe(index, f"it refuses access (HTTP {r.status_code}): it needs credentials the build does not have")
    if r.status_code >= 500:
        return Probe(index, f"it answers with a server error (HTTP {r.status_code})")
    return Probe(index, None)


def _reason(exc: BaseException) -> str:
    """The innermost cause's own words, one line (requests wraps urllib3 wraps ssl/socket errors)."""
    while exc.__cause__ is not None or (exc.args and isinstance(exc.args[0], BaseException)):
        exc = exc.__cause__ or exc.args[0]
    text = str(getattr(exc, "reason", None) or exc)
    return " ".join(text.split())[:200]


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def failure(variant: Variant, results: Sequence[Probe]) -> PreflightError | None:
    """One paragraph for the indexes that failed (None when all answered): which, why, and the fixes."""
    bad = [p for p in results if p.problem is not None]
    if not bad:
        return None
    what = "; ".join(f"{p.index.url} from {p.index.origin}: {p.problem}" for p in bad)
    return PreflightError(
        f"Before building {variant.ref}: {len(bad)} of {len(results)} package index(es) it needs cannot be used "
        f"with the image's trust and proxy: {what}. Nothing was built",
        fix=fixes(bad) + "; 'dockyard doctor' checks every index in seconds",
    )


def fixes(bad: Sequence[Probe]) -> str:
    """What makes these indexes usable, or the build independent of them."""
    out = []
    if any(p.untrusted for p in bad):
        out.append(
            "give the build the CA that signs those certificates (behind a TLS-intercepting proxy: its CA, or the "
            "host's bundle such as /etc/ssl/certs/ca-certificates.crt) with --ca-cert, DOCKYARD_CA_CERTS or "
            "build.ca_certs"
        )
    if any(not p.untrusted for p in bad):
        out.append(
            "use a mirror the build can reach (--pip-index-url, DOCKYARD_PIP_INDEX_URL or build.pip_index_url; a "
            "proxy through HTTPS_PROXY or build.proxy)"
        )
    if any(p.index.from_spec for p in bad):
        out.append(
            "or put the wheels the spec's index serves into a wheelhouse (--wheelhouse, DOCKYARD_WHEELHOUSE) and "
            "skip the spec's indexes (--ignore-spec-indexes, DOCKYARD_IGNORE_SPEC_INDEXES=1)"
        )
    return "; ".join(out)


def check(client: docker.DockerClient, spec: Spec, variant: Variant, base: str, options: BuildOptions) -> None:
    """Raise a PreflightError when an index the build needs cannot be used; return quickly otherwise."""
    roots, _ = image_roots(client, base)
    error = failure(variant, probe(indexes(spec, variant, options), options, roots))
    if error is not None:
        raise error


__all__ = ["PYPI", "Index", "PreflightError", "Probe", "check", "failure", "fixes", "image_roots", "indexes", "probe"]
