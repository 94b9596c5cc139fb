"""The kernel-image contract for real, on the local engine: a dockyard image plus its launcher layer, launched by
gateway_provisioners' own DockerProvisioner (the same bootstrap, launcher and encrypted callback the Kubernetes
provisioner and Enterprise Gateway use), runs code as the non-root user and leaves nothing behind on shutdown. And
the numeric IDs the pipeline's manifests use are the store image's own."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from dockyard.engine import find_image
from dockyard.frontends import compose
from dockyard.frontends.k8s import launcher_image
from dockyard.frontends.k8s.launcher_build import build_launcher
from dockyard.frontends.k8s.pipeline import NUMERIC_USERS
from dockyard.specs.stacks import load_stack

from .helpers import REPO, TEST_LABEL

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
    ipam = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # dockerd leaves "Gateway" out of IPAM when docker0 already existed at its start; the bridge then takes the
    # subnet's first address, as it does by default.
    gateway = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
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


# ------------------------------------------------------------------------------------------------ the pipeline

PIPELINE = REPO / "k8s" / "pipeline"


def _objects(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((PIPELINE / name).read_text()) if d}


def _docker_args(pod: dict, container: dict, *, image: str, volumes: dict[str, str], network: str) -> dict:
    """What the kubelet would give this container, as docker run arguments: the manifest's user, groups (fsGroup
    too), environment, capabilities, no-new-privileges, read-only root, and its volumes (emptyDirs as tmpfs)."""
    security = container["securityContext"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env |= {e["name"]: SECRET for e in container.get("env", []) if "valueFrom" in e}
    tmpfs, binds = {}, {}
    declared = {v["name"]: v for v in pod["volumes"]}
    for mount in container.get("volumeMounts", []):
        volume = declared[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Gi", "g").replace("Mi", "m")
            tmpfs[mount["mountPath"]] = f"size={size},mode=1777"
        else:
            binds[volumes[mount["name"]]] = {
                "bind": mount["mountPath"],
                "mode": "ro" if mount.get("readOnly") else "rw",
            }
    return {
        "image": image,
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "group_add": [str(pod["securityContext"]["fsGroup"])],
        "environment": env,
        "cap_drop": ["ALL"] if security["capabilities"]["drop"] == ["ALL"] else [],
        "security_opt": ["no-new-privileges:true"] if security["allowPrivilegeEscalation"] is False else [],
        "read_only": security["readOnlyRootFilesystem"],
        "tmpfs": tmpfs,
        "volumes": binds,
        "working_dir": container.get("workingDir"),
        "network": network,
        "labels": {TEST_LABEL: "1"},
    }


SECRET = "k8s-test-password"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_pipeline_manifests_run_on_the_real_images(docker_client, settings, built, tmp_path: Path) -> None:
    """No cluster here, so the manifests' pod settings are given to the real images by hand, as a kubelet would:
    the store as user 100:102 on a volume whose root belongs to root with the fsGroup (what fsGroup makes of a
    fresh claim), PGDATA below it; the trainer as 1000 with a read-only root, its files from the ConfigMap's data,
    after its init container saw the store; then verify.sh, with a `kubectl` that runs `exec` through docker."""
    store_objects, trainer_objects = _objects("store.yaml"), _objects("trainer.yaml")
    store_pod = store_objects["Deployment"]["spec"]["template"]["spec"]
    trainer_pod = trainer_objects["Job"]["spec"]["template"]["spec"]
    stack = load_stack("pipeline")
    store_tag = compose.stack_build_tag(stack, stack.services["store"], settings.build)
    assert find_image(docker_client, store_tag), "build it first: dockyard compose up pipeline (or the test above)"
    trainer_tag = built("pytorch:cpu").tag
    files = tmp_path / "stack-files"
    files.mkdir()
    for name, text in trainer_objects["ConfigMap"]["data"].items():
        (files / name).write_text(text)
    files.chmod(0o755)
    run_id = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"dockyard-k8s-test-{run_id}", labels={TEST_LABEL: "1"})
    volume = docker_client.volumes.create(f"dockyard-k8s-test-{run_id}", labels={TEST_LABEL: "1"})
    started: list = []
    try:
        fs_group = store_pod["securityContext"]["fsGroup"]
        docker_client.containers.run(
            store_tag, ["-c", f"chown 0:{fs_group} /v && chmod 2775 /v"], entrypoint=["/bin/sh"], user="0",
            volumes={volume.name: {"bind": "/v", "mode": "rw"}}, remove=True, labels={TEST_LABEL: "1"},
        )  # fmt: skip
        (store_spec,) = store_pod["containers"]
        store = docker_client.containers.create(
            **_docker_args(
                store_pod, store_spec, image=store_tag, volumes={"pgdata": volume.name}, network=network.name
            ),
            name=f"dockyard-k8s-test-store-{run_id}",
        )
        started.append(store)
        network.disconnect(store)
        network.connect(store, aliases=["store"])  # the Service's name
        store.start()
        probe = store_spec["readinessProbe"]["exec"]["command"]
        deadline = time.monotonic() + 120
        while store.exec_run(probe).exit_code != 0:
            store.reload()
            assert store.status == "running", store.logs().decode()[-2000:]
            assert time.monotonic() < deadline, store.logs().decode()[-2000:]
            time.sleep(1)

        (init,) = trainer_pod["initContainers"]
        (job,) = trainer_pod["containers"]
        for spec in (init, job):
            args = _docker_args(
                trainer_pod, spec, image=trainer_tag, volumes={"stack-files": str(files)}, network=network.name
            )
            container = docker_client.containers.run(command=spec["command"], detach=True, **args)
            started.append(container)
            status = container.wait(timeout=900)["StatusCode"]
            assert status == 0, container.logs().decode()[-3000:]
        assert "accuracy" in started[-1].logs().decode()

        # verify.sh as users run it, its kubectl answering `exec -n NS deploy/store -- CMD...` with docker exec.
        shim = tmp_path / "bin"
        shim.mkdir()
        (shim / "kubectl").write_text(
            "#!/bin/sh\n"  # kubectl exec -n NS deploy/store -- CMD...  →  docker exec STORE CMD...
            '[ "$1 $2 $4 $5" = "exec -n deploy/store --" ] || { echo "unexpected: $*" >&2; exit 64; }\n'
            f'shift 5\nexec docker exec {store.name} "$@"\n'
        )
        (shim / "kubectl").chmod(0o755)
        done = subprocess.run(
            ["sh", str(PIPELINE / "verify.sh")], env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("pass ") == len(stack.checks)
        # ... and it can fail: with the predictions gone, the checks on them do.
        store.exec_run(["psql", "-qX", "-U", "dockyard", "-d", "pipeline", "-c", "DELETE FROM predictions"])
        failed = subprocess.run(
            ["sh", str(PIPELINE / "verify.sh")], env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert failed.returncode == 1
        assert "FAIL predictions of the latest finished run" in failed.stdout
    finally:
        for container in started:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        network.remove()
        volume.remove(force=True)
