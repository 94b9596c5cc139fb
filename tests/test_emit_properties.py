"""Data never becomes code: arbitrary strings in every user-settable field, through every generator.

For each generated file the test parses the output back the way its consumer does (the Dockerfile parser's line
and quoting rules, JSON + jupyter_client's env substitution, devcontainer.json + the Dev Containers tooling's
`${...}` substitution, YAML + Compose interpolation, the Kubernetes launcher's sandboxed Jinja render) and checks
that the value comes back unchanged and adds no instruction, key, line or expansion. A value a consumer cannot
carry may instead be refused with one DockyardError paragraph; nothing else is allowed (no traceback).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import replace
from pathlib import Path

import json5
import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard import specs
from dockyard.config import BuildOptions
from dockyard.emit import Unrepresentable
from dockyard.emit.terminal import safe
from dockyard.frontends import compose, devcontainer
from dockyard.frontends.k8s import kernelspecs
from dockyard.frontends.k8s.manifest_parts import K8sOptions
from dockyard.images import render
from dockyard.kernel import kernelspec
from dockyard.specs import Spec, Variant
from dockyard.specs.stacks import load_all_stacks

from .consumers import (
    DEVCONTAINER_VARIABLE,
    env_assignments,
    instructions,
    interpolate,
    jupyter_client_env,
    kubelet,
    launcher,
    strings,
)

REPO = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    max_examples=int(60 * float(os.environ.get("DOCKYARD_FUZZ_SCALE", "1"))),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Everything, with the characters each consumer treats specially drawn often.
SPECIAL = st.sampled_from(
    [*list("$\\\"'`{}#%:\n\r\t\x00\x1b "), "${", "{{", "{#", "{%", "$(", "$$", "\u202e", "\u2028"]
)
VALUES = st.lists(st.one_of(SPECIAL, st.text(max_size=4)), max_size=12).map("".join)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda n: not n.startswith("DOCKYARD_"))
ENVS = st.dictionaries(NAMES, VALUES, max_size=3)


def minimal(display_name: str = "Minimal", env: dict[str, str] | None = None) -> tuple[Spec, Variant]:
    spec = specs.load("minimal")
    variant = replace(spec.variants["cpu"], env_vars={**spec.variants["cpu"].env_vars, **(env or {})})
    spec = replace(
        spec, display_name=display_name, kernel={**spec.kernel, "env": dict(env or {})}, variants={"cpu": variant}
    )
    return spec, variant


# ------------------------------------------------------------------------------------------ Dockerfile


@SETTINGS
@given(env=ENVS, index=VALUES)
def test_dockerfile_keeps_values_as_values(env: dict[str, str], index: str) -> None:
    spec, variant = minimal(env=env)
    options = BuildOptions(pip_extra_index_urls=(index,))
    baseline = instructions(render.dockerfile(*minimal(), BuildOptions(pip_extra_index_urls=("https://x",)),
                                              has_ca=False, has_pip_conf=False))  # fmt: skip
    try:
        text = render.dockerfile(spec, variant, options, has_ca=False, has_pip_conf=False)
    except Unrepresentable:
        assert any(re.search(r"[\x00-\x08\x0a-\x1f\x7f]", v) for v in [*env.values(), index])
        return
    got = instructions(text)
    assert [i.split()[0] for i in got] == [i.split()[0] for i in baseline]  # no instruction added or lost
    runtime = env_assignments(got[-2])
    assert {k: runtime[k] for k in env} == env
    (install,) = [i for i in got if "pip install" in i]
    words = shlex.split(install.replace("\\\n", " ").removeprefix("RUN "))
    assert words[words.index("--extra-index-url") + 1] == index


@SETTINGS
@given(name=VALUES)
def test_lab_dockerfile_display_name_is_one_word(name: str) -> None:
    spec, variant = minimal(display_name=name)
    spec = replace(spec, framework="custom")
    try:
        text = compose.lab_dockerfile(spec, variant)
    except Unrepresentable:
        assert re.search(r"[\x00-\x08\x0a-\x1f\x7f]", name)
        return
    got = instructions(text)
    assert [i.split()[0] for i in got] == ["ARG", "FROM", "USER", "RUN"]
    words = shlex.split(got[-1].replace("\\\n", " ").removeprefix("RUN "))
    assert words[words.index("--display-name") + 1] == compose.lab_display_name(spec, variant)
    assert words.count("&&") == 4  # no command added


# ------------------------------------------------------------------------------------------ kernel.json


@SETTINGS
@given(env=ENVS, name=VALUES)
def test_kernel_json_env_survives_jupyter_clients_substitution(env: dict[str, str], name: str) -> None:
    spec, variant = minimal(display_name=name, env=env)
    spec = replace(spec, framework="custom")
    data = json.loads(kernelspec.files(spec, variant)[kernelspec.KERNEL_JSON])
    server = {"JUPYTER_TOKEN": "server-secret", "HOME": "/root", **dict.fromkeys(env, "LEAKED")}
    assert jupyter_client_env(data["env"], server) == env
    assert data["display_name"] == kernelspec.display_name(spec, variant)


# ------------------------------------------------------------------------------------------ devcontainer.json


@SETTINGS
@given(env=ENVS, name=VALUES)
def test_devcontainer_json_holds_no_expansion(env: dict[str, str], name: str) -> None:
    spec, variant = minimal(display_name=name, env=env)
    try:
        text = devcontainer.render(spec, variant, REPO).decode()
    except Unrepresentable:
        assert any("${" in v for v in [*env.values(), *env, name])
        return
    data = json5.loads(text)
    assert not [s for s in strings(data) if DEVCONTAINER_VARIABLE.search(s)]
    assert data["containerEnv"] == env
    assert data["name"] == f"{name} [cpu]"


# ------------------------------------------------------------------------------------------ Compose


@SETTINGS
@given(env=ENVS)
def test_lab_compose_env_is_not_interpolated(env: dict[str, str]) -> None:
    spec, variant = minimal(env=env)
    data = yaml.safe_load(compose.render_lab(spec, variant)[f"{compose.lab_folder(spec, variant)}/compose.yaml"])
    service = data["services"]["lab"]
    got = {k: interpolate(v, frozenset({"DOCKYARD_LAB_TOKEN"})) for k, v in service["environment"].items()}
    assert {k: got[k] for k in env} == env
    assert set(data) == {"services"}
    assert set(data["services"]) == {"lab"}


@SETTINGS
@given(value=VALUES, command=st.lists(VALUES, min_size=1, max_size=3))
def test_stack_compose_values_are_not_interpolated(value: str, command: list[str]) -> None:
    stack = next(s for s in load_all_stacks() if s.name == "pipeline")
    name, service = next(iter(stack.services.items()))
    service = replace(service, environment={"CRAFTED": value}, command=tuple(command))
    stack = replace(stack, services={**stack.services, name: service})
    data = yaml.safe_load(compose.render_stack(stack, REPO / "compose")[f"{stack.name}/compose.yaml"])
    got = data["services"][name]
    assert interpolate(got["environment"]["CRAFTED"]) == value
    assert [interpolate(c) for c in got["command"]] == command
    assert set(data["services"]) == set(stack.services)


# ------------------------------------------------------------------------------------------ Kubernetes


@SETTINGS
@given(env=ENVS, client=VALUES, name=VALUES)
def test_k8s_values_stay_data_in_the_pod(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], client: str,
                                         name: str) -> None:  # fmt: skip
    spec, variant = minimal(display_name=name, env=env)
    folder = tmp_path_factory.mktemp("k")
    for rel, data in kernelspecs.files(spec, variant, K8sOptions()).items():
        (folder / Path(rel).name).write_bytes(data)
    kernel_json = json.loads((folder / "kernel.json").read_text())
    assert jupyter_client_env(kernel_json["env"], dict.fromkeys(env, "LEAKED")) == env
    mod = launcher()
    client_env = {"KERNEL_ID": "k1", "KERNEL_POD_NAME": client, "KERNEL_NAMESPACE": "dockyard"}
    client_env |= {"KERNEL_IMAGE": client, "KERNEL_UID": client}
    values = {**mod.keywords(client_env), "pod": mod.pod_values(folder)}
    pod = yaml.safe_load(mod.render(values, REPO / "k8s" / "launcher"))
    container = pod["spec"]["containers"][0]
    kubelet_env = {"KERNEL_ID": "LEAKED", "HOME": "LEAKED", **dict.fromkeys(env, "LEAKED")}
    assert {e["name"]: kubelet(e["value"], kubelet_env) for e in container["env"][2:]} == env
    assert pod["metadata"]["name"] == client
    assert container["image"] == client
    assert pod["spec"]["securityContext"]["runAsUser"] >= 1
    assert set(pod) == {"apiVersion", "kind", "metadata", "spec"}
    if client.isalnum() and client.islower() and client.isascii():  # a valid name and image: the pod is valid too
        kubernetes_validate.validate(pod, "1.34.0", strict=True)


def test_the_pod_template_is_rendered_in_a_sandbox(tmp_path: Path) -> None:
    """Even template text (not only data) cannot reach Python: the launcher's Jinja environment is sandboxed."""
    from jinja2.exceptions import SecurityError

    (tmp_path / "kernel-pod.yaml.j2").write_text("{{ cycler.__init__.__globals__.os.getpid() }}")
    with pytest.raises(SecurityError):
        launcher().render({}, tmp_path)


# ------------------------------------------------------------------------------------------ the terminal


@SETTINGS
@given(value=VALUES)
def test_terminal_text_is_inert(value: str) -> None:
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(safe(value), markup=True)
    shown = console.export_text()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069\u200b-\u200f]", shown)
    if value.isprintable() and "\\" not in value:
        assert value in shown.replace("\n", "") or len(value) > 150


# ------------------------------------------------------------------------------------------ Kubernetes YAML and shell


@SETTINGS
@given(name=VALUES, description=VALUES)
def test_jupyterhub_profiles_keep_display_text(name: str, description: str) -> None:
    from dockyard.frontends.k8s import jupyterhub
    from dockyard.frontends.k8s.manifest_parts import dump, header

    spec, variant = minimal(display_name=name)
    spec = replace(spec, framework="custom", description=description)
    (profile,) = yaml.safe_load(dump(header("x"), jupyterhub.values([spec], K8sOptions())))["singleuser"]["profileList"]
    assert profile["display_name"] == compose.lab_display_name(spec, variant)
    assert profile["description"].startswith(description)


@SETTINGS
@given(check_name=VALUES, command=st.lists(VALUES, min_size=1, max_size=4))
def test_verify_script_passes_check_words_as_words(check_name: str, command: list[str]) -> None:
    from dockyard.frontends.k8s import pipeline
    from dockyard.specs.stacks import StackCheck

    stack = next(s for s in load_all_stacks() if s.name == "pipeline")
    stack = replace(stack, checks=(StackCheck(check_name, tuple(command), 1.0, None, None),))
    script = pipeline.verify_script(stack, K8sOptions(), "stacks/pipeline/stack.yaml")
    words = shlex.split(script.split("\n}\n", 1)[1])  # after the check() function: the calls, then exit
    assert words == ["check", check_name, pipeline._condition(stack.checks[0]), *command, "exit", "$failed"]


@SETTINGS
@given(value=VALUES, command=st.lists(VALUES, min_size=1, max_size=3))
def test_stack_manifests_keep_values(value: str, command: list[str]) -> None:
    from dockyard.frontends.k8s import pipeline
    from dockyard.frontends.k8s.manifest_parts import dump, header

    stack = next(s for s in load_all_stacks() if s.name == "pipeline")
    service = replace(stack.services["trainer"], environment={"CRAFTED": value}, command=tuple(command))
    stack = replace(stack, services={**stack.services, "trainer": service})
    docs = list(yaml.safe_load_all(dump(header("x"), *pipeline.manifests(stack, K8sOptions())["trainer.yaml"])))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    defined = {e["name"]: "LEAKED" for e in container["env"]}
    env = {e["name"]: kubelet(e["value"], defined) for e in container["env"] if "value" in e}
    assert env["CRAFTED"] == value
    assert [kubelet(c, defined) for c in container["command"]] == command


@SETTINGS
@given(folder=VALUES)
def test_stack_files_volume_is_one_mount_or_refused(folder: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The stack's files folder as Compose sees it (its path comes from where the checkout lives)."""
    stack = next(s for s in load_all_stacks() if s.name == "pipeline")
    out = tmp_path_factory.mktemp("o")
    if not folder or "/" in folder or "\x00" in folder or folder in (".", ".."):
        return
    files = out / folder
    files.mkdir(exist_ok=True)
    stack = replace(stack, services={**stack.services, "trainer": replace(stack.services["trainer"], files=files)})
    if re.search(r"[:\x00-\x1f\x7f]", folder):
        with pytest.raises(Unrepresentable, match=re.escape(str(stack.path))):
            compose.render_stack(stack, out / "compose")
        return
    data = yaml.safe_load(compose.render_stack(stack, out / "compose")["pipeline/compose.yaml"])
    (mount,) = [v for v in data["services"]["trainer"]["volumes"] if v.endswith(":/stack:ro")]
    source = interpolate(mount.removesuffix(":/stack:ro"))
    assert (out / "compose" / "pipeline" / source).resolve() == files.resolve()


# ------------------------------------------------------------------------------------------ data mounts and secrets


@SETTINGS
@given(tail=VALUES, target=VALUES, read_only=st.booleans())
def test_mount_paths_stay_paths_in_compose_and_devcontainer(tail: str, target: str, read_only: bool) -> None:
    """A spec's host path reaches Compose and devcontainer.json with only its own plain variables expanding (in the
    consumer's syntax), and a mount never gains an option or a volume part; else the spec refuses it."""
    from dockyard.errors import DockyardError
    from dockyard.specs.data_entries import MountEntry, check_host_path, check_target, host_path_parts

    source, target = f"$DATA/{tail}", f"/data/{target}"
    try:
        check_host_path(source, "spec", "source")
        check_target(target, "spec")
        if re.search(r"[,:\x00-\x1f\x7f]", source + target) or "$" in target:  # the schema's patterns
            return
    except DockyardError:
        return
    spec, variant = minimal()
    spec = replace(spec, mounts=(MountEntry(source, None, target, read_only),))
    names = frozenset(n for kind, n in host_path_parts(source) if kind == "var")
    lab = yaml.safe_load(compose.render_lab(spec, variant)[f"{compose.lab_folder(spec, variant)}/compose.yaml"])
    volume = interpolate(lab["services"]["lab"]["volumes"][1], names)
    assert volume.count(":") == (2 if read_only else 1)
    assert volume.split(":")[1] == target
    mount = json5.loads(devcontainer.render(spec, variant, REPO).decode())["mounts"][0]
    options = mount.split(",")
    assert [o.split("=", 1)[0] for o in options] == ["type", "source", "target", *(["readonly"] if read_only else [])]
    ordered = [f"localEnv:{n}" for kind, n in host_path_parts(source) if kind == "var"]
    assert [m.group(1) for m in DEVCONTAINER_VARIABLE.finditer(mount)] == ordered
