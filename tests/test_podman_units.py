"""Podman's differences, without an engine: detection from recorded answers of a real rootless Podman 4.3.1
(tests/data/podman/, taken from this CI's service), the container arguments that follow, its error for a
kill of a stopped container, its image names, and its build output parsed into step progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
from docker.models.containers import _create_container_args

from dockyard import engine, gpu
from dockyard.cli.doctor_podman import podman_checks
from dockyard.engine import capabilities
from dockyard.engine.capabilities import DOCKER, EngineCaps, from_answers, not_running, short_name
from dockyard.errors import DockyardError
from dockyard.images.steps import StepParser, count_instructions
from dockyard.kernel.container import HOME, KernelContainer, create_kwargs

from .helpers import make_kernel_container

DATA = Path(__file__).parent / "data" / "podman"
ROOTLESS: dict[str, Any] = json.loads((DATA / "rootless-4.3.1-cgroup-v1.json").read_text())
DOCKER_INFO = {
    "ServerVersion": "26.1.5+dfsg1",
    "Driver": "overlay2",
    "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
}


def _podman(**libpod_host: Any) -> EngineCaps:
    libpod = json.loads(json.dumps(ROOTLESS["libpod_info"]))
    libpod["host"].update(libpod_host)
    return from_answers(ROOTLESS["info"], libpod)


def _kernel(**kw: Any) -> KernelContainer:
    fields: dict[str, Any] = {
        "image": "dockyard/minimal:cpu-abc",
        "kernel_id": "k1",
        "owner": "h:1:2",
        "argv": ["python"],
        "connection_file": Path("/run/user/1/kernel.json"),
        "uid": 1234,
        "gid": 1234,
    }
    return make_kernel_container(Path("/home/u/work"), **{**fields, **kw})


def test_rootless_podman_is_detected_from_its_answers():
    caps = _podman()
    assert caps.kind == "podman"
    assert caps.rootless
    assert caps.keep_id
    assert caps.cgroup_version == "v1"
    assert caps.storage_driver == "overlay"
    assert caps.describe == "Podman 4.3.1 (rootless, cgroup v1)"
    # rootless on cgroup v1: no controllers, so no limits can be applied
    assert caps.unapplied_limits("8g", 2.5) == ["memory limit 8g", "CPU limit 2.5"]
    assert "cgroup v1" in caps.limits_reason()
    assert capabilities.podman_info(ROOTLESS["info"])


def test_rootful_podman_and_cgroup_v2_keep_what_they_can_apply():
    rootful = _podman(security={"rootless": False}, cgroupVersion="v2", cgroupControllers=["cpu", "memory", "pids"])
    assert not rootful.keep_id
    assert rootful.unapplied_limits("8g", 2.0) == []
    delegated = _podman(cgroupVersion="v2", cgroupControllers=["memory", "pids"])  # systemd delegates no cpu
    assert delegated.unapplied_limits("8g", 2.0) == ["CPU limit 2"]


def test_docker_is_docker():
    caps = from_answers(DOCKER_INFO, None)
    assert caps == EngineCaps("docker", version="26.1.5+dfsg1", storage_driver="overlay2")
    assert not caps.keep_id
    assert caps.unapplied_limits("8g", 2.0) == []
    assert not capabilities.podman_info(DOCKER_INFO)
    rootless = from_answers({**DOCKER_INFO, "SecurityOptions": ["name=rootless"]}, None)
    assert rootless.rootless
    assert not rootless.keep_id  # keep-id is Podman's; rootless Docker maps users its own way


def test_podman_without_its_libpod_answer_still_gets_keep_id():
    caps = from_answers(ROOTLESS["info"], None)
    assert caps.podman
    assert caps.keep_id
    assert caps.unapplied_limits("8g", 2.0) == []  # unknown: passed on, as before


def test_podman_container_arguments():
    kc = _kernel(memory="8g", cpus=2.0)
    docker_args = create_kwargs(kc)
    assert create_kwargs(kc, DOCKER) == docker_args  # Docker's arguments are unchanged by default
    assert docker_args["tmpfs"][HOME] == "rw,nosuid,nodev,mode=0700,uid=1234,gid=1234"
    assert "userns_mode" not in docker_args
    assert (docker_args["mem_limit"], docker_args["nano_cpus"]) == ("8g", 2_000_000_000)
    podman_args = create_kwargs(kc, _podman())
    assert podman_args["tmpfs"][HOME] == "rw,nosuid,nodev,mode=0700,U"
    assert podman_args["userns_mode"] == "keep-id"
    assert "mem_limit" not in podman_args  # would be dropped silently: the provisioner reports it instead
    assert "nano_cpus" not in podman_args
    assert podman_args["user"] == "1234:1234"
    assert podman_args["init"] is True


def test_keep_id_reaches_the_api_past_the_sdks_check():
    with pytest.raises(ValueError, match="userns_mode"):  # the SDK knows only Docker's 'host'
        _create_container_args({"image": "x", "userns_mode": "keep-id", "version": "1.41"})
    sent: dict[str, Any] = {}

    class Api:  # records what would go over the wire; the conversion under test is ours
        _version = "1.41"

        def create_container(self, **kwargs: Any) -> dict[str, str]:
            sent.update(kwargs)
            return {"Id": "c1"}

    class Containers:
        def get(self, cid: str) -> str:
            return f"container {cid}"

    client = type("Client", (), {"api": Api(), "containers": Containers()})()
    assert engine.create_container(client, **create_kwargs(_kernel(), _podman())) == "container c1"
    host_config = sent["host_config"]
    assert host_config["UsernsMode"] == "keep-id"
    assert host_config["Tmpfs"] == {HOME: "rw,nosuid,nodev,mode=0700,U"}
    assert host_config["Init"] is True
    assert sent["user"] == "1234:1234"


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("error", response=response, explanation=explanation)


def test_a_kill_of_a_stopped_container_is_not_running_on_either_engine():
    # Podman 4.3.1's words, recorded from this CI's service
    podman = "can only kill running containers. 0712e7ffe6cc is in state exited: container state improper"
    assert not_running(_api_error(500, podman))
    assert not_running(_api_error(409, "Container 0712e7ffe6cc is not running"))
    assert not not_running(_api_error(500, "OCI runtime error: crun: something else"))
    assert not not_running(_api_error(404, "no such container"))


def test_podman_names_are_compared_without_their_registry_part():
    assert short_name("localhost/dockyard/minimal:cpu") == "dockyard/minimal:cpu"
    assert short_name("docker.io/dockyard/minimal:cpu-60662a8bf848") == "dockyard/minimal:cpu-60662a8bf848"
    assert short_name("dockyard/minimal:cpu") == "dockyard/minimal:cpu"
    assert short_name("registry.example/dockyard/minimal:cpu") == "registry.example/dockyard/minimal:cpu"


def test_podman_gpu_requests_are_never_claimed():
    verdict = gpu.assess(None, ROOTLESS["info"])  # no probe: a probe container would start and "pass"
    assert not verdict.usable
    assert "drops them" in verdict.reason
    assert verdict.device_requests == []
    assert gpu.device_requests("optional", "auto", verdict, "pytorch:cuda") == []
    with pytest.raises(DockyardError) as info:
        gpu.device_requests("required", "auto", verdict, "pytorch:cuda")
    assert "Podman's Docker API accepts GPU requests" in str(info.value)
    assert "pytorch:cpu" in str(info.value)


def test_buildah_output_gives_the_same_step_progress():
    """A real build log of minimal:cpu under Podman 4.3.1: three stages, run partly in parallel, plus buildah's
    LABEL steps for the build's labels."""
    dockerfile = (DATA / "minimal-cpu.Dockerfile").read_text()
    instructions = count_instructions(dockerfile)
    assert instructions == 16  # what Docker's classic builder counts for the same file ("Step N/16")
    parser = StepParser(instructions, labels=6)
    steps = [s for line in (DATA / "minimal-cpu-build.log").read_text().splitlines() if (s := parser.feed(line))]
    assert [s.number for s in steps] == list(range(1, 23))
    assert {s.total for s in steps} == {22}
    assert steps[0].text == "FROM dockyard-local/python:3.11-bookworm AS system"
    assert steps[-1].text.startswith('LABEL "org.opencontainers.image.base.name"')
    assert any(s.text.startswith("RUN python3 -c 'import sys") for s in steps)


def test_a_failed_buildah_step_is_the_one_its_error_names():
    """A real failing build under Podman (a pin that does not exist); buildah runs stages in parallel, so a step of
    a later stage may begin after the failing one: the error's own words decide."""
    *lines, error = [ln for ln in (DATA / "podfail-cpu-build.log").read_text().splitlines() if ln.strip()]
    message = error.removeprefix("ERROR: ")  # what dockyard wrote from the engine's error chunk
    parser = StepParser(16, labels=6)
    for line in lines:
        parser.feed(line)
    parser.feed("[3/3] STEP 3/12: COPY kit/ /opt/dockyard/kit/")  # as if stage 3 had gone on meanwhile
    text, output = parser.failure(message)
    assert text.startswith("RUN python3 -c 'import sys")
    assert any("No matching distribution found for ipywidgets==0.0.0.424242" in ln for ln in output)
    assert not any("STEP" in ln for ln in output)
    # Docker's messages name no step: the step begun last is the one that failed
    docker_parser = StepParser(16)
    docker_parser.feed("Step 8/16 : RUN pip install x")
    docker_parser.feed("ERROR: no x")
    assert docker_parser.failure("The command '/bin/sh -c pip install x' returned a non-zero code: 1") == (
        "RUN pip install x",
        ["ERROR: no x"],
    )


def test_docker_step_lines_keep_their_numbers():
    parser = StepParser(16, labels=6)
    assert parser.feed("Step 3/16 : COPY ca-certificates/ /x/") == parser.feed("Step 3/16 : COPY ca-certificates/ /x/")
    step = parser.feed("Step 7/16 : RUN true")
    assert step is not None
    assert (step.number, step.total, step.text) == (7, 16, "RUN true")
    assert parser.feed(" ---> Running in 0a1b2c") is None
    assert parser.feed("Collecting STEP 1/2: not at the start") is None


def test_instructions_are_counted_like_docker_does():
    text = "# c\nFROM a AS b\nRUN x \\\n    # inside\n    && y\n\nENV A=1 \\\n    B=2\nCOPY --from=b /x /x\n"
    assert count_instructions(text) == 4


def test_doctor_advises_overlay_and_reports_limits():
    rows = {what: (status, detail, fix) for status, what, detail, fix in podman_checks(_podman())}
    assert rows["storage driver"][0] == "pass"
    assert rows["limits"][0] == "warn"
    assert "cgroup v1" in rows["limits"][1]
    vfs = from_answers(ROOTLESS["info"], {**ROOTLESS["libpod_info"], "store": {"graphDriverName": "vfs"}})
    status, detail, fix = {r[1]: (r[0], r[2], r[3]) for r in podman_checks(vfs)}["storage driver"]
    assert status == "warn"
    assert "full copy" in detail
    assert 'driver = "overlay"' in fix
    delegated = _podman(cgroupVersion="v2", cgroupControllers=["cpu", "memory", "pids"])
    assert {r[1]: r[0] for r in podman_checks(delegated)}["limits"] == "pass"
