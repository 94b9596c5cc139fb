"""The registry's pieces without an engine or a registry (tests/test_registry_engine.py has the real thing): the
settings, the registry's names, the label check, Docker's config and credential helpers, the engine's refusals."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.cli import main as dockyard_main
from dockyard.config import RegistryOptions, load_settings
from dockyard.errors import ConfigError, RegistryError
from dockyard.images.plan import make_plan
from dockyard.labels import LABEL_HASH, LABEL_LOCK_SHA256
from dockyard.registry import probe
from dockyard.registry.credentials import Login, login_for
from dockyard.registry.naming import remote_names
from dockyard.registry.refusals import refusal
from dockyard.registry.verify import mismatches, refuse_unless_matching

from .helpers import free_port

HOST = "127.0.0.1:5000"


def _plan():
    spec = specs.load("minimal")
    return make_plan(spec, spec.variant("cpu"), load_settings().build)


def test_settings_come_from_the_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("DOCKYARD_REGISTRY", "registry.example.com:5000")
    monkeypatch.setenv("DOCKYARD_REGISTRY_PREFIX", "team/ml")
    monkeypatch.setenv("DOCKYARD_REGISTRY_CA_CERT", str(ca))
    monkeypatch.setenv("DOCKYARD_PULL_FIRST", "1")
    registry = load_settings().registry
    assert registry == RegistryOptions("registry.example.com:5000", "team/ml", ca, pull_first=True)
    plan = _plan()
    names = remote_names(registry, plan)
    assert names.tag == f"registry.example.com:5000/team/ml/dockyard/minimal:cpu-{plan.content_hash}"
    assert names.alias == "registry.example.com:5000/team/ml/dockyard/minimal:cpu"
    assert RegistryOptions(HOST).remote("dockyard/minimal:cpu") == f"{HOST}/dockyard/minimal:cpu"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("DOCKYARD_REGISTRY", "https://registry.example.com", "is not a registry host"),
        ("DOCKYARD_REGISTRY", "registry.example.com/team", "the path goes into registry.prefix"),
        ("DOCKYARD_REGISTRY", "reg\nistry", "is not a registry host"),
        ("DOCKYARD_REGISTRY_PREFIX", "/Team/", "is not a repository path"),
        ("DOCKYARD_REGISTRY_CA_CERT", "/nonexistent/ca.pem", "does not exist"),
        ("DOCKYARD_PULL_FIRST", "maybe", "is not a boolean"),
    ],
)
def test_bad_settings_are_one_paragraph(monkeypatch, variable: str, value: str, words: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=words) as info:
        load_settings()
    assert info.value.fix


def test_push_and_pull_without_a_registry_say_how_to_set_one(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DOCKYARD_REGISTRY", raising=False)
    for command in ("push", "pull"):
        assert dockyard_main([command, "minimal:cpu"]) == 2  # a setting is missing: the engine is never asked
        err = " ".join(capsys.readouterr().err.split())
        assert f"No registry is configured for 'dockyard {command}'" in err
        assert "DOCKYARD_REGISTRY=HOST[:PORT]" in err


def test_labels_of_this_checkouts_image_match_and_others_are_named() -> None:
    plan = _plan()
    assert plan.labels[LABEL_LOCK_SHA256] == plan.lock_sha256 != ""
    assert mismatches(plan, plan.labels) == []
    refuse_unless_matching(plan, plan.labels, "x")
    forged = {**plan.labels, LABEL_LOCK_SHA256: "0" * 64}  # the right content tag, another lock
    [wrong] = mismatches(plan, forged)
    assert wrong.startswith(f"{LABEL_LOCK_SHA256}: the image says '{'0' * 60}")
    assert (
        mismatches(plan, None)[0] == f"{LABEL_HASH}: the image says '(none)', this checkout expects {plan.content_hash}"
    )
    with pytest.raises(RegistryError, match=r"Refused 'R': it is not the image of minimal:cpu") as info:
        refuse_unless_matching(plan, {**plan.labels, LABEL_HASH: "feedfacefeed"}, "R")
    assert "nothing was tagged" in info.value.text
    assert info.value.exit_code == 1


def _write_config(directory: Path, data: dict) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data))


def test_login_comes_from_dockers_config(tmp_path: Path, monkeypatch) -> None:
    token = base64.b64encode(b"alice:s3cret").decode()
    _write_config(tmp_path / "cfg", {"auths": {HOST: {"auth": token}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert login_for(HOST) == Login("alice", "s3cret")
    assert login_for("other.example.com") is None


def test_login_comes_from_a_credential_helper(tmp_path: Path, monkeypatch) -> None:
    """Docker's credential-helper protocol (`docker-credential-NAME get`, the host on stdin, JSON on stdout), as
    credsStore/credHelpers name it: dockyard reads what `docker login` stored there, no file of its own."""
    helpers = tmp_path / "bin"
    helpers.mkdir()
    helper = helpers / "docker-credential-dytest"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read host\n"
        'printf \'{"ServerURL": "%s", "Username": "bob", "Secret": "from-the-store"}\' "$host"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{helpers}{os.pathsep}{os.environ['PATH']}")
    _write_config(tmp_path / "cfg", {"auths": {}, "credHelpers": {HOST: "dytest"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert login_for(HOST) == Login("bob", "from-the-store")


def test_unreachable_registry_is_found_before_the_engine_is_asked(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RegistryError, match=rf"No registry answers at https://{host}/v2/ \(.*refused") as info:
        probe.check(RegistryOptions(host), host)
    assert "registry.host" in (info.value.fix or "")


# The engine's words, as Docker 20.10.24 said them on this machine to pulls and pushes against scripts/start-registry.sh
# (the docker SDK's APIError.explanation, or the streamed "error").
@pytest.mark.parametrize(
    ("action", "message", "words"),
    [
        (
            "pull",
            f"manifest for {HOST}/dockyard/x:cpu-1 not found: manifest unknown: manifest unknown",
            "has no image",
        ),
        ("pull", "unauthorized: authentication required", f"Fix: run 'docker login {HOST}'"),
        ("push", "no basic auth credentials", f"Fix: run 'docker login {HOST}'"),
        (
            "pull",
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            "cannot reach the registry",
        ),
        ("pull", "x509: certificate signed by unknown authority", f"/etc/docker/certs.d/{HOST}/ca.crt"),
        ("push", "blob upload invalid", "The push of"),
    ],
)
def test_engine_refusals_become_one_paragraph_with_the_fix(action: str, message: str, words: str) -> None:
    error = refusal(action, f"{HOST}/dockyard/x:cpu-1", HOST, message)
    assert words in error.text
    assert error.fix
    assert "\n" not in error.text
