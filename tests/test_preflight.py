"""Preflight (images/preflight.py): every package index a build uses is asked first, with the image's trust.

Real servers on 127.0.0.1 only (the network rule): an HTTP index that answers, one that fails, a port nothing
listens on, a server that accepts and never answers, and an HTTPS index whose certificate only a CA file the
build adds makes trusted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard import specs
from dockyard.config import BuildOptions
from dockyard.images import build as build_mod
from dockyard.images import preflight
from dockyard.images.plan import make_plan

NO_ROOTS = b""  # the servers here are on 127.0.0.1: no public root signs them


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/").split("/")[0]) if self.path.strip("/")[:3].isdigit() else 404
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if ssl_context else "http"
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_index() -> Iterator[str]:
    yield from _serve()


@pytest.fixture
def tls(tmp_path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and that certificate as a CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test index")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "index-ca.pem", tmp_path / "index.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx, cert_file


@pytest.fixture
def https_index(tls) -> Iterator[str]:
    yield from _serve(tls[0])


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple/"  # closed again: nothing listens there


def _variant(extra: tuple[str, ...]) -> tuple[specs.Spec, specs.Variant]:
    spec = specs.load("pytorch")
    return spec, dataclasses.replace(spec.variant("cpu"), pip_extra_index_urls=extra)


def test_the_indexes_are_those_the_build_uses_in_its_order(dead_url):
    spec, variant = _variant(("https://example.invalid/spec/",))
    opts = BuildOptions(pip_index_url="http://127.0.0.1:1/mirror/", pip_extra_index_urls=("http://127.0.0.1:1/x/",))
    found = preflight.indexes(spec, variant, opts)
    assert [i.url for i in found] == [
        "http://127.0.0.1:1/mirror/",
        "http://127.0.0.1:1/x/",
        "https://example.invalid/spec/",
    ]
    assert [i.from_spec for i in found] == [False, False, True]
    assert "envs/pytorch.yaml" in found[2].origin
    ignoring = preflight.indexes(spec, variant, dataclasses.replace(opts, ignore_spec_indexes=True))
    assert [i.url for i in ignoring] == ["http://127.0.0.1:1/mirror/", "http://127.0.0.1:1/x/"]
    assert [i.url for i in preflight.indexes(spec, variant, BuildOptions(ignore_spec_indexes=True))] == [preflight.PYPI]


def test_reachable_dead_failing_and_refusing_indexes(http_index, dead_url):
    targets = [
        preflight.Index(f"{http_index}/simple/", "mirror"),
        preflight.Index(dead_url, "spec", from_spec=True),
        preflight.Index(f"{http_index}/503/", "broken"),
        preflight.Index(f"{http_index}/401/", "private"),
    ]
    ok, dead, broken, private = preflight.probe(targets, BuildOptions(), NO_ROOTS)
    assert ok.problem is None
    assert dead.problem is not None
    assert "cannot connect" in dead.problem
    assert not dead.untrusted
    assert broken.problem is not None
    assert "503" in broken.problem
    assert private.problem is not None
    assert "401" in private.problem


def test_an_index_the_image_would_not_trust_fails_until_its_ca_is_added(https_index, tls):
    index = preflight.Index(f"{https_index}/simple/", "mirror")
    [untrusted] = preflight.probe([index], BuildOptions(), NO_ROOTS)
    assert untrusted.untrusted, untrusted.problem
    error = preflight.failure(_variant(())[1], [untrusted])
    assert error is not None
    assert https_index in error.problem
    assert "not trusted" in error.problem
    assert "--ca-cert" in (error.fix or "")
    # The trust the image will have: the CA files the build adds (not this process's environment or store).
    [trusted] = preflight.probe([index], BuildOptions(ca_certs=(tls[1],)), NO_ROOTS)
    assert trusted.problem is None


def test_this_process_environment_gives_no_trust(https_index, tls, monkeypatch):
    """REQUESTS_CA_BUNDLE (root's environment here) must not make an index pass that the image cannot use."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls[1]))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))
    [r] = preflight.probe([preflight.Index(f"{https_index}/simple/", "mirror")], BuildOptions(), NO_ROOTS)
    assert r.untrusted


def test_all_indexes_are_asked_at_once_within_seconds(dead_url, monkeypatch):
    """Servers that accept and never answer: the probe waits for the timeout once, not once per index."""
    monkeypatch.setattr(preflight, "TIMEOUT", (0.5, 1.0))
    silent = []
    for _ in range(4):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        silent.append(s)
    try:
        targets = [preflight.Index(f"http://127.0.0.1:{s.getsockname()[1]}/", "mirror") for s in silent]
        start = time.monotonic()
        results = preflight.probe(targets, BuildOptions(), NO_ROOTS)
        elapsed = time.monotonic() - start
    finally:
        for s in silent:
            s.close()
    assert all(r.problem and "no answer" in r.problem for r in results), results
    assert elapsed < 4, f"{len(targets)} probes took {elapsed:.1f} s"


def test_build_stops_before_any_build_step_with_one_paragraph(dead_url, http_index, monkeypatch):
    spec, variant = _variant((dead_url,))
    opts = BuildOptions(pip_index_url=f"{http_index}/simple/")
    plan = dataclasses.replace(make_plan(spec, variant, opts), lock_error=None)

    class _Images:
        def get(self, ref: str) -> object:
            if ref == plan.base:
                return object()  # the base is here; the image to build is not
            raise docker.errors.ImageNotFound(ref)

    class _Containers:
        def create(self, image: str, **kwargs: object) -> None:
            raise docker.errors.NotFound(image)  # no bundle to read: preflight falls back to certifi's

    class _Engine:
        images = _Images()
        containers = _Containers()

        @property
        def api(self) -> None:
            raise AssertionError("the engine was asked to build (or pull) despite a dead index")

    # The tag's build lock (a container on the real engine: test_build covers it) is held as a build holds it.
    monkeypatch.setattr(build_mod, "tag_lock", lambda *args: contextlib.nullcontext())
    with pytest.raises(preflight.PreflightError) as caught:
        build_mod.build(_Engine(), plan, opts)  # type: ignore[arg-type]
    text = caught.value.text
    assert dead_url in text
    assert "envs/pytorch.yaml" in text
    assert "Nothing was built" in text
    for fix in ("--pip-index-url", "--wheelhouse", "--ignore-spec-indexes"):
        assert fix in text
    assert f"{http_index}/simple/" not in text  # the mirror answered: only what failed is named
    assert "\n" not in text


@pytest.mark.engine
def test_the_image_trust_is_read_from_the_base_image(docker_client, settings):
    """The roots come from the base image's own bundle (not this host's store or certifi), without a container
    left behind."""
    base = settings.build.base_for(specs.load("minimal").variant("cpu").base)
    before = {c["Id"] for c in docker_client.api.containers(all=True)}
    roots, source = preflight.image_roots(docker_client, base)
    assert base in source
    expected = docker_client.containers.run(base, ["cat", "/etc/ssl/certs/ca-certificates.crt"], remove=True)
    assert roots == expected
    assert {c["Id"] for c in docker_client.api.containers(all=True)} - before == set()
