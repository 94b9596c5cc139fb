"""Kubernetes files (no engine, no cluster): k8s/ is checked in and up to date; every manifest and every rendered
kernel pod validates strictly against the Kubernetes 1.34 schemas (kubernetes-validate, offline); crafted KERNEL_*
values rendered through dockyard's pod template stay inert (and do not through gateway_provisioners 0.5.0's own
template, which is what makes these tests able to fail); the launcher keeps the server's environment out of the pod;
`dockyard k8s gc` picks exactly the orphans; bad options give one paragraph."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml

from dockyard import cli, specs
from dockyard.frontends import k8s
from dockyard.frontends.k8s.manifest_parts import K8sOptions
from dockyard.frontends.k8s.orphans import orphans
from dockyard.specs.stacks import load_all_stacks

from .helpers import REPO

K8S_VERSION = "1.34.0"
CHECKED_IN = REPO / k8s.DIRNAME
VARIANTS = [(s, v) for s in specs.load_all() for v in s.variants.values()]
KERNELS = sorted(p.name for p in (CHECKED_IN / "kernels").iterdir())
CUDA_KERNEL = "dockyard-pytorch-cuda-k8s"
CPU_KERNEL = "dockyard-minimal-cpu-k8s"
# What the provisioner itself sets for every launch (KubernetesProvisioner.pre_launch and the launcher).
BASE_ENV = {
    "KERNEL_POD_NAME": "alice-0b7c1e2a",
    "KERNEL_NAMESPACE": "dockyard",
    "KERNEL_ID": "0b7c1e2a",
    "KERNEL_IMAGE": "registry.example.com/dockyard/pytorch:cuda-gp",
    "KERNEL_USERNAME": "alice",
    "KERNEL_SERVICE_ACCOUNT_NAME": "default",
}
BREAKOUT = '"\n    securityContext:\n      privileged: true\n      runAsUser: 0\n  hostNetwork: true\n#'

# Closes the image's quotes inside gateway_provisioners' template (a container-level key follows it there).
BREAKOUT_CONTAINER = '"\n    securityContext:\n      privileged: true\n      runAsUser: 0\n    x: "'


def yaml_quoted(value: str) -> str:
    """A value as a YAML double-quoted scalar: what survives upstream's yaml.safe_load of each KERNEL_* value."""
    return json.dumps(value)


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


LAUNCHER = CHECKED_IN / "launcher" / "launch_kubernetes.py"


def launcher(kernel: str = CUDA_KERNEL) -> ModuleType:
    """The checked-in launcher wrapper (one for every kernelspec), imported as gateway_provisioners would run it."""
    spec = importlib.util.spec_from_file_location(f"launch_{kernel.replace('-', '_')}", LAUNCHER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_ours(kernel: str, env: dict[str, str], *, upstream_values: bool = False) -> dict[str, Any]:
    """Our template with our launcher's variables (raw strings), or with upstream's (each value YAML-parsed)."""
    mod = launcher(kernel)
    values: dict[str, Any] = mod.keywords(env)
    if upstream_values:
        values = {k: _upstream_value(v) for k, v in values.items()}
    return render_with(mod, values, CHECKED_IN / "kernels" / kernel)


def render_with(mod: ModuleType, values: dict[str, Any], kernelspec: Path, tree: Path = CHECKED_IN) -> dict[str, Any]:
    """The pod the launcher renders for a kernelspec folder (its kernel.json's values) and client values."""
    pod: dict[str, Any] = yaml.safe_load(mod.render({**values, "pod": mod.pod_values(kernelspec)}, tree / "launcher"))
    return pod


def _upstream_value(value: str) -> Any:
    """Upstream's yaml.safe_load of a KERNEL_* value; one it cannot parse is kept whole (upstream would stop the
    launch there, so keeping it only makes the test harder)."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def render_upstream(env: dict[str, str]) -> Any:
    """gateway_provisioners 0.5.0's own template, rendered as its launch_kubernetes.py does."""
    import gateway_provisioners

    scripts = Path(gateway_provisioners.__file__).parent / "kernel-launchers" / "kubernetes" / "scripts"
    j_env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(scripts),
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(disabled_extensions=("j2", "yaml"), default_for_string=True, default=True),
    )
    values = {k.lower(): yaml.safe_load(v) for k, v in env.items() if k.startswith("KERNEL_")}  # as upstream
    return yaml.safe_load(j_env.get_template("kernel-pod.yaml.j2").render(**values))


def walk(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k), v
            yield from walk(v)
    elif isinstance(obj, list):
        for item in obj:
            yield from walk(item)


def assert_inert(pod: dict[str, Any]) -> None:
    """Nothing in the rendered object grants privilege, root, host access or client volumes."""
    pairs = list(walk(pod))
    assert not [v for k, v in pairs if k == "privileged" and v is not False]
    assert not [k for k, v in pairs if k in ("hostPath", "hostNetwork", "hostPID", "hostIPC") and v]
    assert all(isinstance(v, int) and v >= 1 for k, v in pairs if k in ("runAsUser", "runAsGroup", "fsGroup"))
    assert not [v for k, v in pairs if k == "allowPrivilegeEscalation" and v is not False]
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["serviceAccountName"] == "dockyard-kernel"
    assert spec["automountServiceAccountToken"] is False
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "shm"]
    assert set(spec) <= {
        "restartPolicy", "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks",
        "securityContext", "tolerations", "runtimeClassName", "containers", "volumes",
    }  # fmt: skip
    (container,) = spec["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/dev/shm"]


# ------------------------------------------------------------------------------------------------ generated tree


def test_checked_in_tree_matches_the_specs() -> None:
    tree = k8s.tree(specs.load_all(), load_all_stacks(), CHECKED_IN, K8sOptions())
    assert tree.differences(complete=True) == []


def test_generate_is_deterministic_and_covers_every_variant(tmp_path: Path) -> None:
    first = k8s.render_all(specs.load_all(), load_all_stacks(), K8sOptions())
    second = k8s.render_all(specs.load_all(), load_all_stacks(), K8sOptions())
    assert first == second
    assert len(KERNELS) == len(VARIANTS)
    assert cli.main(["k8s", "generate", "--dir", str(tmp_path / "out")]) == 0
    assert cli.main(["k8s", "generate", "--check", "--dir", str(tmp_path / "out")]) == 0
    (tmp_path / "out" / "cluster" / "rbac.yaml").write_text("# Generated by dockyard, then edited\n")
    assert cli.main(["k8s", "generate", "--check", "--dir", str(tmp_path / "out")]) == 1


def test_registry_and_gpu_options_reach_the_files(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    argv = ["k8s", "generate", "--dir", str(out), "--registry", "registry.example.com/team", "--namespace", "ml"]
    argv += ["--runtime-class", "nvidia", "--toleration", "gpu=a100:NoExecute", "--max-gpus", "4"]
    assert cli.main(argv) == 0
    config = json.loads((out / "kernels" / CUDA_KERNEL / "kernel.json").read_text())["metadata"]["kernel_provisioner"]
    assert config["config"]["image_name"] == "registry.example.com/team/dockyard/pytorch:cuda-gp"
    mod = launcher()
    values = mod.keywords(BASE_ENV | {"KERNEL_GPUS": "3", "KERNEL_NAMESPACE": "ml"})
    obj = render_with(mod, values, out / "kernels" / CUDA_KERNEL, out)
    validate(obj)
    assert obj["spec"]["runtimeClassName"] == "nvidia"
    assert obj["spec"]["tolerations"] == [{"effect": "NoExecute", "key": "gpu", "operator": "Equal", "value": "a100"}]
    gpus = {"nvidia.com/gpu": 3}  # asked for 3 of at most 4: request = limit
    assert obj["spec"]["containers"][0]["resources"] == {"requests": gpus, "limits": gpus}
    for doc in documents(out / "pipeline" / "trainer.yaml"):
        assert doc["metadata"]["namespace"] == "ml"


# ------------------------------------------------------------------------------------------------ schemas


MANIFESTS = sorted(
    p.relative_to(CHECKED_IN).as_posix()
    for p in CHECKED_IN.rglob("*.yaml")
    if p.parent.name not in ("enterprise-gateway", "jupyterhub")  # Helm values, checked below as values
)


@pytest.mark.parametrize("rel", MANIFESTS)
def test_manifest_validates_strictly(rel: str) -> None:
    docs = documents(CHECKED_IN / rel)
    assert docs
    for doc in docs:
        validate(doc)


def test_strict_validation_rejects_what_the_api_server_would() -> None:
    """The check itself can fail: an unknown field and a wrong type are errors in strict mode."""
    pod = render_ours(CPU_KERNEL, BASE_ENV)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**pod, "spec": {**pod["spec"], "privilegd": True}})
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**pod, "spec": {**pod["spec"], "restartPolicy": ["Never"]}})


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_pod_renders_valid_and_hardened(kernel: str) -> None:
    pod = render_ours(kernel, BASE_ENV)
    validate(pod)
    assert_inert(pod)
    resources = pod["spec"]["containers"][0].get("resources", {})
    if "cuda" in kernel:
        # The API server refuses a GPU request without an equal limit.
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
        assert pod["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
        if "minimal" not in kernel:  # minimal:cuda has no framework, hence no CUDA needs
            assert pod["metadata"]["annotations"]["dockyard.io/cuda-needs"].startswith("CUDA 1")
    else:
        assert resources == {}
        assert "tolerations" not in pod["spec"]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "dockyard"
    assert labels["dockyard.io/role"] == "kernel"
    assert labels["kernel_id"] == BASE_ENV["KERNEL_ID"]  # how KubernetesProvisioner finds its pod
    assert labels["component"] == "kernel"


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernelspecs_use_the_launcher_and_a_timeout_for_the_image(kernel: str) -> None:
    data = json.loads((CHECKED_IN / "kernels" / kernel / "kernel.json").read_text())
    # One launcher for all (k8s/launcher/), told which kernelspec's values to read.
    assert data["argv"][1:4] == [
        "/usr/local/share/jupyter/dockyard-k8s/launch_kubernetes.py",
        "--kernelspec",
        f"/usr/local/share/jupyter/kernels/{kernel}",
    ]
    provisioner = data["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "kubernetes-provisioner"
    timeout = provisioner["config"]["launch_timeout"]
    assert timeout >= (900 if "cuda" in kernel else 120)  # gateway_provisioners' default is 30 s, pull included
    assert provisioner["config"]["image_name"].endswith("-gp")
    eg = json.loads((CHECKED_IN / "enterprise-gateway" / "kernels" / kernel / "kernel.json").read_text())
    assert eg["metadata"]["process_proxy"]["class_name"].endswith("KubernetesProcessProxy")
    assert "--RemoteProcessProxy.response-address" in eg["argv"]


def test_enterprise_gateway_values_and_namespace_role() -> None:
    (values,) = documents(CHECKED_IN / "enterprise-gateway" / "values.yaml")
    assert values["global"]["rbac"] is False  # the chart's ClusterRole stays out
    assert values["kernel"]["shareGatewayNamespace"] is True
    assert sorted(values["kernel"]["allowedKernels"]) == KERNELS
    assert values["kernel"]["defaultKernelName"] in KERNELS
    assert values["kernel"]["launchTimeout"] >= 900
    assert values["kernel"]["cullIdleTimeout"] > 0
    rbac = documents(CHECKED_IN / "cluster" / "rbac.yaml")
    kinds = [d["kind"] for d in rbac]
    assert "ClusterRole" not in kinds
    assert "ClusterRoleBinding" not in kinds
    assert all(d["metadata"]["namespace"] == "dockyard" for d in rbac)
    assert "cluster-admin" not in "".join(p.read_text() for p in CHECKED_IN.rglob("*.yaml"))
    (role,) = [d for d in rbac if d["kind"] == "Role"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch", "create", "delete"}
    assert {r for rule in role["rules"] for r in rule["resources"]} <= {"pods", "services", "persistentvolumeclaims"}
    prepull = documents(CHECKED_IN / "cluster" / "prepull.yaml")
    pulled = {c["image"] for d in prepull for c in d["spec"]["template"]["spec"]["initContainers"]}
    wanted = {json.loads((CHECKED_IN / "kernels" / k / "kernel.json").read_text())["metadata"]["kernel_provisioner"]
              ["config"]["image_name"] for k in KERNELS}  # fmt: skip
    assert pulled == wanted


def test_jupyterhub_profiles_make_valid_pods() -> None:
    """Each profile's override, applied the way KubeSpawner does to a single-user pod, validates strictly."""
    (values,) = documents(CHECKED_IN / "jupyterhub" / "profiles.yaml")
    single = values["singleuser"]
    profiles = single["profileList"]
    assert len(profiles) == len(VARIANTS)
    assert len({p["slug"] for p in profiles}) == len(profiles)
    shm = single["storage"]["extraVolumes"]
    assert shm == [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    for profile in profiles:
        o = profile["kubespawner_override"]
        resources = {}
        if "extra_resource_limits" in o:
            resources = {"limits": o["extra_resource_limits"], "requests": o["extra_resource_guarantees"]}
            assert o["extra_resource_limits"] == o["extra_resource_guarantees"]
            assert o["tolerations"]
        else:
            assert "cuda" not in profile["slug"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jupyter-alice"},
            "spec": {
                "securityContext": {"runAsUser": single["uid"], "fsGroup": single["fsGid"]},
                "tolerations": o.get("tolerations", []),
                "volumes": shm,
                "containers": [
                    {
                        "name": "notebook",
                        "image": o["image"],
                        "resources": resources,
                        "volumeMounts": single["storage"]["extraVolumeMounts"],
                    }
                ],
            },
        }
        validate(pod)


# ------------------------------------------------------------------------------------------------ injection


CRAFTED = {
    "pod name breaks out of its quotes": {"KERNEL_POD_NAME": "x" + BREAKOUT},
    "namespace breaks out": {"KERNEL_NAMESPACE": "dockyard" + BREAKOUT},
    "kernel id breaks out": {"KERNEL_ID": "1" + BREAKOUT},
    "image breaks out": {"KERNEL_IMAGE": "busybox" + BREAKOUT},
    "pod name breaks out, YAML-quoted": {"KERNEL_POD_NAME": yaml_quoted("x" + BREAKOUT)},
    "image breaks out of a container": {"KERNEL_IMAGE": "busybox" + BREAKOUT_CONTAINER},
    "image breaks out of a container, YAML-quoted": {"KERNEL_IMAGE": yaml_quoted("busybox" + BREAKOUT_CONTAINER)},
    "a second document": {"KERNEL_POD_NAME": 'x"\n---\napiVersion: v1\nkind: Pod\nspec: {hostPID: true}\n#'},
    "flow mapping value": {"KERNEL_IMAGE": "{privileged: true, hostPath: {path: /}}"},
    "jinja in a value": {"KERNEL_POD_NAME": "{{ 7*7 }}{% set kernel_uid = 0 %}"},
    "uid 00": {"KERNEL_UID": "00"},
    "uid 0": {"KERNEL_UID": "0"},
    "uid -1": {"KERNEL_UID": "-1"},
    "uid 0x0": {"KERNEL_UID": "0x0"},
    "uid with a newline": {"KERNEL_UID": "0\n    privileged: true"},
    "gid 0": {"KERNEL_GID": "0"},
    "host-path volumes": {
        "KERNEL_VOLUMES": "[{name: host, hostPath: {path: /}}]",
        "KERNEL_VOLUME_MOUNTS": "[{name: host, mountPath: /host}]",
    },
    "admin service account": {"KERNEL_SERVICE_ACCOUNT_NAME": "cluster-admin-sa"},
    "gpus beyond the limit": {"KERNEL_GPUS": "64"},
    "gpus as a mapping": {"KERNEL_GPUS": "{a: 1}"},
}


@pytest.mark.parametrize("kernel", [CUDA_KERNEL, CPU_KERNEL])
@pytest.mark.parametrize("upstream_values", [False, True], ids=["our-launcher", "upstream-launcher"])
@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_values_stay_inert(case: str, kernel: str, upstream_values: bool) -> None:
    crafted = CRAFTED[case]
    pod = render_ours(kernel, BASE_ENV | crafted, upstream_values=upstream_values)
    assert_inert(pod)
    assert pod["kind"] == "Pod"
    if "uid" in case:
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    if "gid" in case:
        assert pod["spec"]["securityContext"]["runAsGroup"] == 100
    if kernel == CUDA_KERNEL:
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    # A string value arrives whole, as the one scalar it was meant to be.
    if not upstream_values:
        where = {
            "KERNEL_POD_NAME": pod["metadata"]["name"],
            "KERNEL_NAMESPACE": pod["metadata"]["namespace"],
            "KERNEL_ID": pod["metadata"]["labels"]["kernel_id"],
            "KERNEL_IMAGE": pod["spec"]["containers"][0]["image"],
        }
        for key, value in crafted.items():
            if key in where:
                assert where[key] == value


@pytest.mark.parametrize("case", ["image breaks out of a container, YAML-quoted", "uid 00", "host-path volumes"])
def test_the_same_values_break_gateway_provisioners_own_template(case: str) -> None:
    """The cases are real: through gateway_provisioners 0.5.0's template they grant what ours refuses."""
    env = BASE_ENV | CRAFTED[case] | {"KERNEL_UID": CRAFTED[case].get("KERNEL_UID", "1000")}
    pod = render_upstream(env)
    pairs = list(walk(pod))
    granted = (
        [v for k, v in pairs if k == "privileged" and v is True]
        + [k for k, v in pairs if k in ("hostPath", "hostNetwork") and v]
        + [v for k, v in pairs if k == "runAsUser" and v == 0]
    )
    assert granted


# ------------------------------------------------------------------------------------------------ launcher


def test_pod_environment_keeps_the_server_environment_out() -> None:
    mod = launcher()
    pod = render_ours(CUDA_KERNEL, BASE_ENV)
    environ = BASE_ENV | {
        "JUPYTER_TOKEN": "server-secret",
        "AWS_SECRET_ACCESS_KEY": "cloud-secret",
        "RESPONSE_ADDRESS": "10.0.0.5:8877",
        "PUBLIC_KEY": "abc",
        "PORT_RANGE": "0..0",
        "HOME": "/root",
    }
    done = mod.finish_pod(pod, environ, None)
    env = {e["name"]: e["value"] for e in done["spec"]["containers"][0]["env"]}
    assert "JUPYTER_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == "/tmp"  # the template's own value wins over the server's
    assert env["RESPONSE_ADDRESS"] == "10.0.0.5:8877"
    assert env["KERNEL_ID"] == BASE_ENV["KERNEL_ID"]
    assert env["KERNEL_LANGUAGE"] == "python"
    assert "dockyard.io/server-host" in done["metadata"]["labels"]  # not in a cluster: host only
    validate(done)


def test_in_cluster_pod_gets_its_server_label_and_owner() -> None:
    mod = launcher()
    environ = BASE_ENV | {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "DOCKYARD_SERVER_POD": "jupyter-server-7d9f"}
    owner = {"name": "jupyter-server-7d9f", "uid": "4a4b8d3e-0000-4000-8000-000000000001"}
    done = mod.finish_pod(render_ours(CPU_KERNEL, BASE_ENV), environ, owner)
    assert done["metadata"]["labels"]["dockyard.io/server"] == "jupyter-server-7d9f"
    (ref,) = done["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("Pod", owner["name"], owner["uid"])
    validate(done)


def test_launcher_accepts_both_engines_flags() -> None:
    """The wrapper's flags match gateway_provisioners' and Enterprise Gateway's kernelspecs (parsed, not run)."""
    source = LAUNCHER.read_text()
    for kernel_dir in ("kernels", "enterprise-gateway/kernels"):
        argv = json.loads((CHECKED_IN / kernel_dir / CPU_KERNEL / "kernel.json").read_text())["argv"]
        for flag in (a for a in argv[2:] if a.startswith("--")):
            name = flag.split(".", 1)[-1].lstrip("-")
            assert f'"{name}"' in source or f'"--{name}"' in source, flag


# ------------------------------------------------------------------------------------------------ gc


def _pod(name: str, *, server: str | None = None, host: str | None = None, phase: str = "Running",
         role: str = "kernel") -> dict[str, Any]:  # fmt: skip
    labels = {"app.kubernetes.io/managed-by": "dockyard", "dockyard.io/role": role}
    if server:
        labels["dockyard.io/server"] = server
    if host:
        labels["dockyard.io/server-host"] = host
    return {"metadata": {"name": name, "namespace": "dockyard", "labels": labels}, "status": {"phase": phase}}


def test_gc_picks_exactly_the_orphans() -> None:
    pods = [
        _pod("k-live", server="srv-a"),
        _pod("k-dead-server", server="srv-gone"),
        _pod("k-ended", server="srv-a", phase="Failed"),
        _pod("k-outside", host="laptop"),
        _pod("k-outside-ended", host="laptop", phase="Succeeded"),
        _pod("store", server="srv-gone", role="service"),
    ]
    found = {o.name: o.reason for o in orphans(pods, {"srv-a", "k-live", "k-dead-server"})}
    assert set(found) == {"k-dead-server", "k-ended", "k-outside-ended"}
    assert "srv-gone" in found["k-dead-server"]


def test_gc_without_kubectl_is_one_paragraph(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["k8s", "gc"]) == 2
    err = capsys.readouterr().err
    assert "kubectl is not on PATH" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--toleration", "nvidia.com/gpu"], "is not KEY[=VALUE]:EFFECT"),
        (["--toleration", "a:Sometimes"], "is not KEY[=VALUE]:EFFECT"),
        (["--registry", "https://registry.example.com/"], "is not an image name prefix"),
        (["--namespace", "Team_A"], "is not a Kubernetes namespace name"),
        (["--max-gpus", "0"], "below 1"),
        (["--kernels-dir", "kernels"], "is not an absolute path"),
    ],
)
def test_bad_options_are_one_paragraph_and_write_nothing(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    assert cli.main(["k8s", "generate", "--dir", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Fix:" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert os.linesep not in err.strip().replace("\n", " ")


def test_launcher_runs_through_gateway_provisioners_own_code(tmp_path: Path) -> None:
    """The wrapper, run as the kernelspec runs it, drives gateway_provisioners 0.5.0's launcher (its argument
    handling, its KERNEL_* collection, its document loop) in upstream's write-don't-create mode: the pod it would
    create is dockyard's, with the server's secrets left out. Both engines' flag spellings are accepted."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    script = LAUNCHER
    env = {
        "PATH": os.environ["PATH"],
        "KUBECONFIG": str(kubeconfig),
        "JUPYTER_TOKEN": "server-secret",
        **{k: v for k, v in BASE_ENV.items() if k != "KERNEL_ID"},
        "KERNEL_UID": "00",
        "KERNEL_VOLUMES": "[{name: host, hostPath: {path: /}}]",
    }
    for prefix in ("--", "--RemoteProcessProxy."):
        out = tmp_path / f"pod{len(prefix)}.yaml"
        argv = [sys.executable, str(script), "--kernelspec", str(CHECKED_IN / "kernels" / CUDA_KERNEL)]
        argv += [f"{prefix}kernel-id", "0b7c1e2a", f"{prefix}response-address"]
        argv += ["10.0.0.5:8877", f"{prefix}public-key", "abc", f"{prefix}port-range", "0..0"]
        argv += ["--pod-template", str(out)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        pod = yaml.safe_load(out.read_text())
        validate(pod)
        assert_inert(pod)
        container_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        assert container_env["KERNEL_ID"] == "0b7c1e2a"
        assert container_env["RESPONSE_ADDRESS"] == "10.0.0.5:8877"
        assert "JUPYTER_TOKEN" not in container_env
        assert "KUBECONFIG" not in container_env
        assert pod["metadata"]["labels"]["kernel_id"] == "0b7c1e2a"


# ------------------------------------------------------------------------------------------------ Pod Security


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected"}
ALLOWED_VOLUMES |= {"secret"}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Pod Security Standards, "restricted" profile (what cluster/namespace.yaml enforces), checked on a pod spec."""
    problems = []
    pod_sc = pod_spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            problems.append(key)
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not dropped")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp {seccomp}")
    return problems


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = [(k, render_ours(k, BASE_ENV)["spec"]) for k in KERNELS]
    for rel in MANIFESTS:
        for doc in documents(CHECKED_IN / rel):
            template = doc.get("spec", {}).get("template")
            if template:
                out.append((f"{rel}:{doc['metadata']['name']}", template["spec"]))
    return out


@pytest.mark.parametrize(("where", "pod_spec"), _pod_specs(), ids=[w for w, _ in _pod_specs()])
def test_every_pod_meets_pod_security_restricted(where: str, pod_spec: dict[str, Any]) -> None:
    assert restricted_violations(pod_spec) == []


def test_the_restricted_check_can_fail() -> None:
    pod = render_ours(CPU_KERNEL, BASE_ENV)["spec"]
    container = dict(pod["containers"][0], securityContext={"privileged": True})
    broken = dict(pod, containers=[container], hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert len(restricted_violations(broken)) >= 5


def test_spec_kernel_variables_reach_the_pod(tmp_path: Path) -> None:
    """The launcher passes only KERNEL_* from the server: a spec's own kernel variables are in the template."""
    from dataclasses import replace

    from dockyard.frontends.k8s.podtemplate import pod_values

    spec = specs.load("minimal")
    spec = replace(spec, kernel={**spec.kernel, "env": {"TF_CPP_MIN_LOG_LEVEL": "1", "ODD": 'a"\nb: c {{ 7*7 }}'}})
    mod = launcher(CPU_KERNEL)
    values = {**mod.keywords(BASE_ENV), "pod": pod_values(spec, spec.variants["cpu"], K8sOptions())}
    pod = yaml.safe_load(mod.render(values, CHECKED_IN / "launcher"))
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert env["ODD"] == 'a"\nb: c {{ 7*7 }}'
    validate(pod)
