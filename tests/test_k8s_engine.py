"""The kernel-image contract for real, on the local engine: a dockyard image plus its launcher layer, launched by
gateway_provisioners' own DockerProvisioner (the same bootstrap, launcher and encrypted callback the Kubernetes
provisioner and Enterprise Gateway use), runs code as the non-root user and leaves nothing behind on shutdown. And
the numeric IDs the pipeline's manifests use are the store image's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import docker
import pytest

from dockyard.engine import find_image
from dockyard.frontends import compose
from dockyard.frontends.k8s import launcher_image
from dockyard.frontends.k8s.launcher_build import build_launcher
from dockyard.frontends.k8s.pipeline import NUMERIC_USERS
from dockyard.specs.stacks import load_stack

from .helpers import REPO

pytestmark = pytest.mark.engine

# Run in a child process: gateway_provisioners reads GP_* variables when its modules are imported.
KERNEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=180)
    result = {"kernel_id": km.kernel_id, "ip": km.get_connection_info()["ip"]}
    try:
        out = []
        code = "import os; e = os.environ\\nprint(os.getuid(), 100 in os.getgroups(), e['KERNEL_LANGUAGE'])\\n"
        code += "print(e['DOCKYARD_ENV'], 6 * 7)"
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m))
        result["status"] = reply["content"]["status"]
        result["stdout"] = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    print("RESULT " + json.dumps(result))
    """
)


def _kernel_containers(client: docker.DockerClient, kernel_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"kernel_id={kernel_id}"})


def _installer() -> str:
    here = Path(sys.executable).parent / "jupyter-docker-spec"
    found = str(here) if here.exists() else shutil.which("jupyter-docker-spec")
    assert found, "jupyter-docker-spec (gateway_provisioners) is not installed: pip install -e '.[test]'"
    return found


@pytest.mark.timeout(900)
def test_launcher_image_runs_as_a_gateway_provisioners_docker_kernel(
    docker_client, built, settings, tmp_path: Path
) -> None:
    env = built("minimal:cpu")
    tag, _ = build_launcher(docker_client, env.tag, "dockyard/minimal:cpu", settings.build)
    assert tag.startswith(env.tag + "-gp-")
    config = docker_client.images.get(tag).attrs["Config"]
    assert "KERNEL_LANGUAGE=python" in config["Env"]
    assert config["User"] == f"{launcher_image.KERNEL_UID}:{launcher_image.KERNEL_GID}"
    assert config["Cmd"] == [launcher_image.BOOTSTRAP]
    assert build_launcher(docker_client, env.tag, "dockyard/minimal:cpu", settings.build) == (tag, False)

    # The kernelspec from gateway_provisioners' own installer (its launcher named by absolute path, as dockyard's
    # Kubernetes kernelspecs name theirs: the remote provisioners fill in only their own placeholders).
    prefix = tmp_path / "prefix"
    name = "dockyard_gp_minimal"
    subprocess.run(
        [_installer(), "install", f"--prefix={prefix}", f"--kernel-name={name}", f"--image-name={tag}"],
        check=True,
        capture_output=True,
    )
    spec = json.loads((prefix / "share" / "jupyter" / "kernels" / name / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-provisioner"

    # The kernel calls back to the provisioner's response address on the host side of Docker's bridge.
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    child_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "PYTHONPATH": str(REPO),
        "KERNEL_USERNAME": "dockyard-test",  # gateway_provisioners refuses to launch for root
        "GP_RESPONSE_IP": gateway,
        "GP_DOCKER_NETWORK": "bridge",
    }
    if os.environ.get("DOCKER_HOST"):
        child_env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    kernel_id = None
    try:
        done = subprocess.run(
            [sys.executable, "-c", KERNEL_SCRIPT, name], env=child_env, capture_output=True, text=True, timeout=600
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert lines, done.stderr[-3000:]
        result = json.loads(lines[-1].removeprefix("RESULT "))
        kernel_id = result["kernel_id"]
        assert result["status"] == "ok"
        assert result["stdout"].split() == ["1000", "True", "python", "minimal", "42"]
        assert result["ip"] != "127.0.0.1"  # the kernel answered from its container's address
        deadline = time.monotonic() + 30
        while _kernel_containers(docker_client, kernel_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _kernel_containers(docker_client, kernel_id) == []
    finally:
        if kernel_id is None:  # the launch failed before the id was reported: find the containers by image
            leftovers = docker_client.containers.list(all=True, filters={"ancestor": tag})
        else:
            leftovers = _kernel_containers(docker_client, kernel_id)
        for container in leftovers:
            container.remove(force=True)
    assert docker_client.containers.list(all=True, filters={"ancestor": tag}) == []


@pytest.mark.timeout(900)
def test_store_image_ids_match_the_manifests(docker_client, settings, containers) -> None:
    stack = load_stack("pipeline")
    service = stack.services["store"]
    tag = compose.stack_build_tag(stack, service, settings.build)
    if find_image(docker_client, tag) is None:
        assert service.build_context is not None
        docker_client.images.build(
            path=str(service.build_context),
            tag=tag,
            buildargs={"BASE": settings.build.base_for(service.build_base or "")},
            rm=True,
            forcerm=True,
            pull=False,
        )
    out = containers.run_and_wait(tag, ["-c", "id -u postgres; id -g postgres"], entrypoint=["/bin/sh"])
    assert tuple(int(x) for x in out.split()) == NUMERIC_USERS["postgres"]
