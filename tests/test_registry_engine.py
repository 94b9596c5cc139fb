"""Sharing images through a registry, for real: a private registry on 127.0.0.1 (Debian's docker-registry, started by
scripts/start-registry.sh) with TLS from a CA this module makes and htpasswd logins; Docker trusts the CA through
/etc/docker/certs.d/127.0.0.1:PORT/ca.crt, and the login lives in a temporary DOCKER_CONFIG written by `docker login`.
Registry, CA, logins and the certs.d entry go when the module ends.

The images are a throwaway environment of this module's own (a copy of the minimal spec under the name regtest, with
a nonce so its content tag is new): removing "every dockyard image" means every image of that environment, never
minimal:cpu's, which other tests hold.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from dockyard import specs
from dockyard.cli import main as dockyard_main
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.images import build as build_module
from dockyard.images.build import build
from dockyard.images.plan import BuildPlan, make_plan
from dockyard.registry import probe

from .helpers import (
    REPO,
    copy_locks,
    free_port,
    install_kernelspecs,
    kernel,
    run,
    start_jupyter,
    stop_jupyter,
    write_kernelspec,
)
from .test_panel_api import API, events

pytestmark = pytest.mark.engine

ENV = "regtest"
CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class Registry:
    host: str
    user: str
    password: str
    ca: Path
    docker_config: Path  # what `docker login` wrote

    def tags(self, repository: str) -> list[str]:
        """The registry's tags of repository, asked directly (TLS verified with the test CA)."""
        answer = requests.get(
            f"https://{self.host}/v2/{repository}/tags/list",
            auth=(self.user, self.password),
            verify=str(self.ca),
            timeout=10,
        )
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return sorted(answer.json().get("tags") or [])


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        if os.environ.get("CI"):
            raise AssertionError("docker-registry and htpasswd are missing (.ci/run installs them)")
        pytest.skip(
            "needs Debian's docker-registry and apache2-utils (apt-get install -y docker-registry apache2-utils)"
        )
    port = free_port()
    host = f"127.0.0.1:{port}"
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-registry-"))
    user, password = "teammate", uuid.uuid4().hex
    trust = CERTS_D / host
    made_certs_d = not CERTS_D.exists()
    pid = None
    try:
        started = subprocess.run(
            ["bash", str(REPO / "scripts" / "start-registry.sh"), str(scratch / "registry"), str(port), user, password],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        pid = int(started.stdout.strip())
        ca = scratch / "registry" / "ca.crt"
        trust.mkdir(parents=True)
        shutil.copy(ca, trust / "ca.crt")  # Docker reads it at each push and pull: no daemon restart
        config = scratch / "docker-config"
        config.mkdir()
        login = subprocess.run(
            ["docker", "--config", str(config), "login", "--username", user, "--password-stdin", host],
            input=password,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert login.returncode == 0, login.stderr
        yield Registry(host, user, password, ca, config)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(trust, ignore_errors=True)
        if made_certs_d:
            with contextlib.suppress(OSError):
                CERTS_D.rmdir()  # only when empty: another registry's trust may have arrived meanwhile
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def envs_dir() -> Iterator[Path]:
    """The throwaway environment's spec (a fresh content tag each run) and its locks."""
    d = Path(tempfile.mkdtemp(prefix="dockyard-regtest-envs-"))
    spec = (REPO / "envs" / "minimal.yaml").read_text().replace("name: minimal", f"name: {ENV}")
    spec = spec.replace('python: "3.11"\n', f'python: "3.11"\nenv: {{TEST_RUN_NONCE: "{uuid.uuid4().hex}"}}\n')
    (d / f"{ENV}.yaml").write_text(spec)
    copy_locks("minimal", d, as_name=ENV)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def shared(registry: Registry, envs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """This process as a teammate of the registry: its settings, its CA, its Docker login."""
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(envs_dir))
    monkeypatch.setenv("DOCKYARD_REGISTRY", registry.host)
    monkeypatch.setenv("DOCKYARD_REGISTRY_CA_CERT", str(registry.ca))
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    return registry


@pytest.fixture(scope="module")
def our_images(docker_client: docker.DockerClient) -> Iterator[None]:
    """Whatever this module leaves of its own environment's images goes at its end (only regtest's)."""
    yield
    for image in docker_client.images.list():
        for tag in image.tags:
            if f"dockyard/{ENV}:" in tag:
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(tag)


def _plan(variant: str = "cpu") -> BuildPlan:
    spec = specs.load(ENV)
    return make_plan(spec, spec.variant(variant), load_settings().build)


def _remove_local(client: docker.DockerClient) -> None:
    """Every image of the throwaway environment, by all its names (content tag, alias, stage): an image goes with
    its last name."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"dockyard/{ENV}:"):
                client.images.remove(tag)


def _stray_names(client: docker.DockerClient, registry: Registry) -> list[str]:
    """Local names from the registry (transport names, half-pulled images): none may stay."""
    return [t for i in client.images.list() for t in i.tags if t.startswith(registry.host)]


def _says(err: str, *parts: str) -> None:
    """err (stderr, whitespace joined) is one paragraph holding every part, and no traceback."""
    missing = [p for p in parts if p not in err]
    assert not missing, err
    assert "Traceback" not in err
    assert err.startswith("error: "), err


def _no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a build ran")

    monkeypatch.setattr(build_module, "_build", refuse)


@pytest.fixture(scope="module")
def pushed(registry: Registry, envs_dir: Path, docker_client: docker.DockerClient, our_images: None) -> str:
    """regtest:cpu built here and pushed with `dockyard push`; the image's id."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKYARD_ENVS_PATH", str(envs_dir))
        mp.setenv("DOCKYARD_REGISTRY", registry.host)
        mp.setenv("DOCKYARD_REGISTRY_CA_CERT", str(registry.ca))
        mp.setenv("DOCKER_CONFIG", str(registry.docker_config))
        plan = _plan()
        result = build(docker_client, plan, load_settings().build)
        assert dockyard_main(["push", f"{ENV}:cpu"]) == 0
        assert registry.tags(f"dockyard/{ENV}") == sorted(["cpu", f"cpu-{plan.content_hash}"])
        assert _stray_names(docker_client, registry) == []  # the registry's names were transport names only
        return result.image_id


def test_push_remove_pull_start_kernel_without_a_build(
    shared: Registry, pushed: str, docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    plan = _plan()
    _remove_local(docker_client)
    assert find_image(docker_client, plan.tag) is None
    assert find_image(docker_client, plan.alias) is None
    _no_build(monkeypatch)
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 0
    assert f"pulled {plan.tag}" in " ".join(capsys.readouterr().out.split())
    image = docker_client.images.get(plan.tag)
    assert image.id == pushed  # the very image that was pushed
    assert docker_client.images.get(plan.alias).id == pushed
    assert _stray_names(docker_client, shared) == []
    # A kernel of the pulled environment starts and runs a cell; no build step ran (auto-build is off anyway).
    root = tmp_path / "jupyter"
    write_kernelspec(root, "dy-regtest", {"env": ENV, "variant": "cpu"})
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    work = tmp_path / "work"
    work.mkdir()
    with kernel("dy-regtest", work) as (_km, kc):
        content, out = run(kc, "import os; print(os.environ['TEST_RUN_NONCE'] != '', 6 * 7)")
    assert content["status"] == "ok", content
    assert out.strip() == "True 42"


def test_build_pull_first_takes_the_registry_image(shared: Registry, pushed: str, docker_client, monkeypatch, capsys):
    plan = _plan()
    _remove_local(docker_client)
    _no_build(monkeypatch)
    assert dockyard_main(["build", "--pull-first", "--no-kernels", f"{ENV}:cpu"]) == 0
    assert "no build" in capsys.readouterr().out
    assert docker_client.images.get(plan.tag).id == pushed


def test_missing_tag_is_one_paragraph_and_nothing_is_tagged(shared: Registry, pushed: str, docker_client, capsys):
    plan = _plan("cuda")  # never pushed
    assert dockyard_main(["pull", f"{ENV}:cuda"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"has no image '{shared.host}/dockyard/{ENV}:cuda-{plan.content_hash}'" in err, err
    _says(err, "Fix: ", "dockyard push")
    assert find_image(docker_client, plan.tag) is None
    assert _stray_names(docker_client, shared) == []


def test_wrong_credentials_are_refused_with_the_login_fix(
    shared: Registry, pushed: str, docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    plan = _plan()
    _remove_local(docker_client)
    wrong = tmp_path / "wrong-config"
    wrong.mkdir()
    login = subprocess.run(
        ["docker", "--config", str(wrong), "login", "-u", shared.user, "--password-stdin", shared.host],
        input="not-the-password",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert login.returncode != 0  # Docker itself refuses it: write the wrong login as `docker login` would have
    token = base64.b64encode(f"{shared.user}:not-the-password".encode()).decode()
    (wrong / "config.json").write_text(json.dumps({"auths": {shared.host: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(wrong))
    # dockyard's own check says it first ...
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    _says(err, f"refused the login of user '{shared.user}'", f"docker login {shared.host}")
    # ... and the engine's refusal, when it gets that far, says the same.
    monkeypatch.setattr(probe, "check", lambda *_a: None)
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    _says(err, "refused the pull", f"docker login {shared.host}")
    assert find_image(docker_client, plan.tag) is None
    assert _stray_names(docker_client, shared) == []


def test_unreachable_registry_is_one_paragraph(shared: Registry, docker_client, monkeypatch, capsys) -> None:
    plan = _plan()
    _remove_local(docker_client)
    nobody = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKYARD_REGISTRY", nobody)
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    _says(err, f"No registry answers at https://{nobody}/v2/", "Fix: check registry.host")
    assert find_image(docker_client, plan.tag) is None


def test_registry_certificate_checked_against_the_site_ca(shared: Registry, docker_client, monkeypatch, capsys):
    """Docker skips TLS verification for loopback registries; dockyard's own check does not."""
    _remove_local(docker_client)
    monkeypatch.setenv("DOCKYARD_REGISTRY_CA_CERT", "/etc/ssl/certs/ca-certificates.crt")  # not the registry's CA
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    _says(err, "TLS certificate", f"/etc/docker/certs.d/{shared.host}/ca.crt")


def test_tampered_image_under_the_content_tag_is_refused(
    shared: Registry, pushed: str, docker_client, built, monkeypatch, capsys
) -> None:
    plan = _plan()
    remote = f"{shared.host}/dockyard/{ENV}:cpu-{plan.content_hash}"
    other = docker_client.images.get(built("minimal:cpu").image_id)  # other content: minimal's own image
    keep = f"dockyard-registry-test/{ENV}-keep:{uuid.uuid4().hex[:8]}"
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 0  # the genuine image, here again (earlier tests removed it)
    capsys.readouterr()
    docker_client.images.get(pushed).tag(keep)  # hold the genuine image while its names are gone
    try:
        _remove_local(docker_client)
        other.tag(remote)
        try:  # someone overwrites the content tag
            login = {"username": shared.user, "password": shared.password}
            repository, tag = remote.rsplit(":", 1)
            stream = docker_client.api.push(repository, tag, auth_config=login, stream=True, decode=True)
            assert [c for c in stream if "error" in c] == []
        finally:
            docker_client.images.remove(remote)  # only the name: minimal:cpu keeps its image
        assert dockyard_main(["pull", f"{ENV}:cpu"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        _says(err, f"Refused '{remote}'", "org.dockyard.hash")
        assert find_image(docker_client, plan.tag) is None
        assert _stray_names(docker_client, shared) == []
        assert docker_client.images.get(other.id).id == other.id  # minimal's image is untouched
    finally:
        genuine = docker_client.images.get(keep)
        genuine.tag(plan.tag)
        genuine.tag(plan.alias)
        assert dockyard_main(["push", f"{ENV}:cpu"]) == 0  # the registry gets the genuine image back
        docker_client.images.remove(keep)


def test_panel_offers_pull_and_pulls_instead_of_building(shared: Registry, pushed: str, docker_client, tmp_path: Path):
    plan = _plan()
    _remove_local(docker_client)
    env = {k: os.environ[k] for k in ("DOCKYARD_ENVS_PATH", "DOCKYARD_REGISTRY", "DOCKYARD_REGISTRY_CA_CERT")}
    server = start_jupyter(
        "server",
        install_kernelspecs(tmp_path / "kernels"),
        tmp_path / "server",
        **env,
        DOCKER_CONFIG=str(shared.docker_config),
    )
    try:
        cpu = server.api("GET", f"{API}/registry/{ENV}:cpu").json()
        assert cpu == {
            "registry": shared.host,
            "remote": f"{shared.host}/dockyard/{ENV}:cpu-{plan.content_hash}",
            "has_tag": True,
        }
        assert server.api("GET", f"{API}/registry/{ENV}:cuda").json()["has_tag"] is False  # never pushed
        r = server.api("POST", f"{API}/builds", json={"ref": f"{ENV}:cpu", "pull": True})
        assert r.status_code == 202, r.text
        log = events(server, r.json()["id"])
        assert log[-1]["type"] == "succeeded", log[-3:]
        assert log[-1]["pulled"] is True
        assert not [e for e in log if e["type"] == "step"]  # no build step ran
        assert docker_client.images.get(plan.tag).id == pushed
        failed = server.api("POST", f"{API}/builds", json={"ref": f"{ENV}:cuda", "pull": True})
        [*_, last] = events(server, failed.json()["id"])
        assert last["type"] == "failed"
        assert "has no image" in last["message"]  # pull asked for: no build behind the user's back
    finally:
        stop_jupyter(server)


def test_k8s_build_pushes_the_environment_and_launcher_images(shared: Registry, pushed: str, docker_client, capsys):
    """What `k8s generate --registry HOST` names, the nodes can pull: `k8s build` pushes both images."""
    from dockyard.frontends.k8s.launcher_image import launcher_tag

    plan = _plan()
    assert dockyard_main(["pull", f"{ENV}:cpu"]) == 0  # earlier tests may have removed it; no build either way
    assert dockyard_main(["k8s", "build", f"{ENV}:cpu"]) == 0, capsys.readouterr().err
    launcher = launcher_tag(plan.tag).rpartition(":")[2]
    tags = shared.tags(f"dockyard/{ENV}")
    assert {f"cpu-{plan.content_hash}", "cpu", "cpu-gp", launcher} <= set(tags), tags
    assert _stray_names(docker_client, shared) == []


PODMAN_SOCKET = Path("/run/user/1234/podman/podman.sock")  # the test account's rootless Podman (start-podman.sh)
PODMAN_CERTS_D = Path("/etc/containers/certs.d")


def test_rootless_podman_pulls_and_pushes_through_the_same_commands(
    shared: Registry, pushed: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The same `dockyard pull` / `push` against the test account's rootless Podman (its Docker-compatible API): the
    login from Docker's config, the CA from Podman's certs.d, the labels checked."""
    if not PODMAN_SOCKET.is_socket():
        if os.environ.get("DOCKYARD_REQUIRE_PODMAN"):
            raise AssertionError(f"no rootless Podman service at {PODMAN_SOCKET}")
        pytest.skip(f"no rootless Podman service at {PODMAN_SOCKET} (scripts/start-podman.sh)")
    podman = docker.DockerClient(base_url=f"unix://{PODMAN_SOCKET}", timeout=600)
    plan = _plan()
    trust = PODMAN_CERTS_D / shared.host
    made = [d for d in (PODMAN_CERTS_D, trust) if not d.exists()]
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared.ca, trust / "ca.crt")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{PODMAN_SOCKET}")
    try:
        assert find_image(podman, plan.tag) is None
        assert dockyard_main(["pull", f"{ENV}:cpu"]) == 0, capsys.readouterr().err
        assert podman.images.get(plan.tag).labels["org.dockyard.lock-sha256"] == plan.lock_sha256
        assert not [t for i in podman.images.list() for t in i.tags if t.startswith(shared.host)]
        assert dockyard_main(["push", f"{ENV}:cpu"]) == 0, capsys.readouterr().err
        assert f"cpu-{plan.content_hash}" in shared.tags(f"dockyard/{ENV}")
    finally:
        for image in podman.images.list():
            for tag in image.tags:
                if f"dockyard/{ENV}:" in tag:
                    with contextlib.suppress(docker.errors.APIError):
                        podman.images.remove(tag)
        shutil.rmtree(trust, ignore_errors=True)
        for d in reversed(made[:-1]):
            with contextlib.suppress(OSError):
                d.rmdir()
        podman.close()
