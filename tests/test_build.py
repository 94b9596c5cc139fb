"""Real builds on the real engine, through the CA + wheelhouse + base-override site options."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.errors import BuildError
from dockyard.images.build import NullReporter, _tag_lock, build
from dockyard.images.plan import make_plan
from dockyard.labels import LABEL_ENV, LABEL_HASH

from .helpers import copy_spec

pytestmark = pytest.mark.engine


def test_minimal_builds_and_runs(built, containers) -> None:
    result = built("minimal:cpu")
    assert result.tag.startswith("dockyard/minimal:cpu-")
    versions = "print(ipykernel.__version__, ipywidgets.__version__, os.environ['DOCKYARD_ENV'])"
    out = containers.run_and_wait(result.tag, ["python", "-c", f"import ipykernel, ipywidgets, os; {versions}"])
    assert out.split()[:2] == ["7.4.0", "8.1.9"]
    assert "minimal" in out


@pytest.mark.slow
def test_pytorch_cpu_builds_from_wheelhouse_and_runs(built, containers) -> None:
    result = built("pytorch:cpu")
    code = "print(torch.__version__, torch.tensor([1.0, 2.0]).sum().item(), ipykernel.__version__)"
    out = containers.run_and_wait(result.tag, ["python", "-c", f"import torch, ipykernel; {code}"])
    assert out.split() == ["2.13.0+cpu", "3.0", "7.4.0"]


def test_image_trusts_the_site_ca_and_is_labelled(built, docker_client, containers) -> None:
    result = built("minimal:cpu")
    image = docker_client.images.get(result.tag)
    labels = image.labels
    assert labels[LABEL_ENV] == "minimal"
    assert labels[LABEL_HASH] == result.tag.rsplit("-", 1)[1]
    assert "dockyard/minimal:cpu" in image.tags  # the moving alias follows the newest build
    code = "import os, ssl; print(os.environ['PIP_CERT']); print(len(ssl.create_default_context().get_ca_certs()))"
    pip_cert, n_certs = containers.run_and_wait(result.tag, ["python", "-c", code]).splitlines()
    assert pip_cert == "/etc/ssl/certs/ca-certificates.crt"
    assert int(n_certs) > 10
    # Kernels run as an arbitrary host UID and may `%pip install` into the environment.
    out = containers.run_and_wait(
        result.tag,
        ["python", "-c", "import os, sysconfig; print(os.access(sysconfig.get_paths()['purelib'], os.W_OK))"],
        user="4321:4321",
    )
    assert out.strip() == "True"
    # The wheelhouse stage must not leave wheels in the final image.
    out = containers.run_and_wait(result.tag, ["sh", "-c", "ls /tmp/dockyard 2>&1 || true"])
    assert "No such file" in out


def test_unchanged_build_is_a_noop(built, docker_client, settings, monkeypatch) -> None:
    first = built("minimal:cpu")
    calls: list[object] = []
    real_build = docker_client.api.build
    monkeypatch.setattr(docker_client.api, "build", lambda *a, **k: calls.append(a) or real_build(*a, **k))
    s = specs.load("minimal")
    start = time.monotonic()
    again = build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)
    elapsed = time.monotonic() - start
    assert not again.built
    assert again.image_id == first.image_id
    assert calls == []
    assert elapsed < 5  # generous: the bench measures the real figure


def test_failed_step_shows_its_output_and_leaves_nothing(tmp_envs: Path, docker_client, no_new_containers) -> None:
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text().replace("ipywidgets==8.1.9", "ipywidgets==0.0.0.424242"))
    settings = load_settings()
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), settings.build)
    with pytest.raises(BuildError) as info:
        build(docker_client, plan, settings.build)
    text = info.value.text
    assert "ipywidgets==0.0.0.424242" in text  # pip's own words, from the failing step
    assert "full log:" in text
    assert Path(text.split("full log: ")[1].split(" ")[0]).exists()
    assert find_image(docker_client, plan.tag) is None


def test_without_the_proxy_ca_pip_fails_with_a_certificate_hint(
    tmp_envs: Path, docker_client, monkeypatch, no_new_containers
) -> None:
    """The corporate-proxy problem itself: the same build without --ca-cert cannot reach PyPI."""
    path = copy_spec("minimal", tmp_envs)
    # A pin nothing else uses, so no cached layer can hide the download.
    path.write_text(path.read_text().replace("ipywidgets==8.1.9", "ipywidgets==8.1.8"))
    monkeypatch.delenv("DOCKYARD_CA_CERTS")
    settings = load_settings()
    s = specs.load("minimal")
    with pytest.raises(BuildError) as info:
        build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.text or "certificate" in info.value.text.lower()
    assert "--ca-cert" in info.value.text


def test_missing_base_image_gives_override_hint(tmp_envs: Path, docker_client, monkeypatch, no_new_containers) -> None:
    monkeypatch.setenv("DOCKYARD_BASE_OVERRIDES", "python:3.11-slim-bookworm=dockyard-local/does-not-exist:1")
    settings = load_settings()
    s = specs.load("minimal")
    with pytest.raises(BuildError, match=r"pulling is off.*base-override"):
        build(docker_client, make_plan(s, s.variant("cpu"), settings.build), settings.build)


def test_concurrent_builds_of_one_tag_build_once(tmp_envs: Path, built, docker_client, no_new_containers) -> None:
    """Two `dockyard build` at once (say a kernel auto-build and a dev container opening): one builds, one waits."""
    original = built("minimal:cpu")  # its layers are cached: only the changed ENV layer and the kit are new
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text() + f'env:\n  DOCKYARD_TEST_RUN: "{time.time_ns()}"\n')
    s = specs.load("minimal")
    plan = make_plan(s, s.variant("cpu"), load_settings().build)
    cmd = [sys.executable, "-m", "dockyard", "build", "--no-kernels", "minimal:cpu"]  # leave the host's Jupyter alone
    try:
        # Hold the tag's lock while both start, so both really arrive while a build is under way.
        with _tag_lock(plan.tag, NullReporter()):
            procs = [
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
            ]
            time.sleep(8)
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert all("waiting for another build" in o for o in outputs), outputs
        assert sorted(f"built {plan.tag}" in o for o in outputs) == [False, True], outputs
        assert sorted(f"up to date {plan.tag}" in o for o in outputs) == [False, True], outputs
    finally:
        docker_client.images.get(original.image_id).tag(plan.alias)  # give the alias back to the suite's image
        if find_image(docker_client, plan.tag):
            docker_client.images.remove(plan.tag)  # its last tag: the image goes with it
