"""Data mounts and kernel secrets without the engine: spec entries and their refusals, resolution on the host,
the container arguments, the sources of secret values, the pool's decision (docs/data-and-secrets.md)."""

from __future__ import annotations

import os
import socket
import sys
import types
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.errors import DockyardError, SpecError
from dockyard.kernel import data_mounts, kernel_secrets
from dockyard.kernel.container import create_kwargs
from dockyard.kernel.data_mounts import DataMount
from dockyard.kernel.pool import pooled
from dockyard.specs.data_entries import MountEntry, SecretEntry

from .helpers import REPO, assert_one_paragraph, copy_locks, make_kernel_container

VALUE = "hf_unitTestValue_4b2f"  # unique: seen anywhere it should not be, it came from here


def _spec(tmp_envs: Path, extra: str) -> specs.Spec:
    copy_locks("minimal", tmp_envs)
    path = tmp_envs / "minimal.yaml"
    path.write_text((REPO / "envs" / "minimal.yaml").read_text() + extra)
    return specs.load_file(path)


def test_a_spec_with_mounts_and_secrets_loads(tmp_envs):
    s = _spec(
        tmp_envs,
        "mounts:\n"
        "  - {source: ~/datasets, target: /data, read_only: true}\n"
        "  - {source: $SCRATCH/run, create: true}\n"
        "  - {cache: huggingface, target: /cache/huggingface}\n"
        "secrets:\n"
        "  - {name: hf_token, from_file: ~/.config/hf/token, env: HF_TOKEN}\n"
        "  - {name: aws, from_env: AWS_SECRET_ACCESS_KEY, required: true}\n"
        "  - {name: wandb, from_keyring: {service: wandb, username: me}}\n",
    )
    assert s.mounts == (
        MountEntry("~/datasets", None, "/data", read_only=True),
        MountEntry("$SCRATCH/run", None, None, create=True),
        MountEntry(None, "huggingface", "/cache/huggingface"),
    )
    assert [(e.name, e.source, e.env, e.required) for e in s.secrets] == [
        ("hf_token", ("file", "~/.config/hf/token"), "HF_TOKEN", False),
        ("aws", ("env", "AWS_SECRET_ACCESS_KEY"), None, True),
        ("wandb", ("keyring", "wandb", "me"), None, False),
    ]
    assert s.mounts[0].origin.endswith("minimal.yaml, line 24")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("mounts:\n  - {source: data/x}\n", ["mounts[0].source", "relative path"]),
        ("mounts:\n  - {source: '$(id)/x'}\n", ["$NAME or ${NAME}"]),
        ("mounts:\n  - {source: '${HOME}${X'}\n", ["not a plain $NAME"]),
        ("mounts:\n  - {source: '/a,b'}\n", ["mounts[0].source", "without ','"]),
        ("mounts:\n  - {source: /srv/x, cache: c, target: /c}\n", ["exactly one of 'source'"]),
        ("mounts:\n  - {cache: hf}\n", ["has no target"]),
        ("mounts:\n  - {cache: hf, target: /c, create: true}\n", ["'create' does not apply"]),
        ("mounts:\n  - {source: /srv/x, target: /usr/lib/x}\n", ["system directory"]),
        ("mounts:\n  - {source: /srv/x, target: /}\n", ["system directory"]),
        ("mounts:\n  - {source: /srv/x, target: /opt/dockyard/venv}\n", ["overlaps /opt/dockyard"]),
        ("mounts:\n  - {source: /srv/x, target: /opt}\n", ["overlaps /opt/dockyard"]),
        ("mounts:\n  - {source: /srv/x, target: /home/dockyard-user/.cache}\n", ["overlaps /home/dockyard-user"]),
        ("mounts:\n  - {source: /srv/x, target: /run/secrets}\n", ["overlaps /run/secrets"]),
        ("mounts:\n  - {source: /srv/x, target: /data/../etc}\n", ["not a plain absolute path"]),
        ("mounts:\n  - {source: /a, target: /d}\n  - {source: /b, target: /d/}\n", ["mounts[1]", "again"]),
        ("mounts:\n  - {source: /srv/x, target: /d, mode: rw}\n", ["unknown key 'mode'"]),
        ("secrets:\n  - {name: t}\n", ["exactly one of from_file"]),
        ("secrets:\n  - {name: t, from_env: A, from_file: /x}\n", ["exactly one of from_file"]),
        ("secrets:\n  - {name: ../t, from_env: A}\n", ["secrets[0].name", "a file name"]),
        ("secrets:\n  - {name: .ready, from_env: A}\n", ["secrets[0].name"]),
        ("secrets:\n  - {name: t, from_env: JUPYTER_TOKEN}\n", ["secrets[0].from_env", "server's own"]),
        ("secrets:\n  - {name: t, from_env: A, env: DOCKYARD_X}\n", ["secrets[0].env"]),
        ("secrets:\n  - {name: t, from_env: A}\n  - {name: t, from_env: B}\n", ["declared twice"]),
        ("secrets:\n  - {name: t, from_env: A, env: X}\n  - {name: u, from_env: B, env: X}\n", ["variable X"]),
        ("secrets:\n  - {name: t, from_file: token.txt}\n", ["relative path"]),
    ],
)
def test_bad_entries_are_one_paragraph_naming_file_and_field(tmp_envs, extra, expected):
    with pytest.raises(SpecError) as caught:
        _spec(tmp_envs, extra)
    assert_one_paragraph(str(caught.value), "minimal.yaml", *expected)


# --- resolving on the host ---------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(h / ".local/share/jupyter/runtime"))
    return h


def _resolve(entry: MountEntry, environ: dict[str, str] | None = None) -> DataMount:
    return data_mounts.resolve(entry, "minimal", environ if environ is not None else dict(os.environ))


def test_sources_expand_home_and_variables_and_default_to_their_own_path(home):
    (home / "datasets").mkdir()
    assert _resolve(MountEntry("~/datasets", None, None)) == DataMount(
        home / "datasets", str(home / "datasets"), False, "~/datasets"
    )
    m = _resolve(MountEntry("${DATA}/x", None, "/data", read_only=True, create=True), {"DATA": str(home)})
    assert (m.source, m.target, m.read_only) == (home / "x", "/data", True)
    assert (home / "x").is_dir()


def test_a_cache_is_a_folder_of_the_user_per_environment(home, tmp_path):
    m = _resolve(MountEntry(None, "huggingface", "/cache/huggingface"))
    assert m.source == tmp_path / "cache" / "dockyard" / "caches" / "minimal" / "huggingface"
    assert m.source.is_dir()
    assert m.source.stat().st_uid == os.getuid()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/", "system directory"),
        ("/etc", "system directory"),
        ("/var/lib/docker", "system directory"),
        ("~", ".ssh"),  # the home folder holds the user's keys
        ("~/.ssh", ".ssh"),
        ("~/.docker/config", ".docker"),
        ("~/.local/share/jupyter", "runtime"),
        ("~/missing", "does not exist"),
        ("$UNSET_DY_VARIABLE/x", "does not set"),
    ],
)
def test_refused_sources_are_one_paragraph(home, source, expected):
    for d in (".ssh", ".docker/config", ".local/share/jupyter/runtime"):
        (home / d).mkdir(parents=True)
    os.environ.pop("UNSET_DY_VARIABLE", None)
    with pytest.raises(DockyardError) as caught:
        _resolve(MountEntry(source, None, "/data", origin="envs/x.yaml:3"))
    assert_one_paragraph(str(caught.value), "envs/x.yaml:3", expected)


def test_a_folder_holding_the_engine_socket_is_refused(home, tmp_path, monkeypatch):
    run = tmp_path / "engine"
    run.mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(run / "docker.sock"))
        monkeypatch.setenv("DOCKER_HOST", f"unix://{run}/docker.sock")
        with pytest.raises(DockyardError) as caught:
            _resolve(MountEntry(str(run), None, "/data"))
    assert_one_paragraph(str(caught.value), "engine's socket")


def test_create_makes_nothing_in_a_refused_place(home):
    with pytest.raises(DockyardError):
        _resolve(MountEntry("~/.ssh/new", None, "/data", create=True))
    assert not (home / ".ssh").exists()


def test_a_default_target_in_a_system_directory_needs_a_target(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mounts, "mount_refusal", lambda _p: None)  # host side allowed: the container side is not
    with pytest.raises(DockyardError) as caught:
        _resolve(MountEntry("/usr/share", None, None))
    assert_one_paragraph(str(caught.value), "give it a 'target'")


def test_overlapping_mounts_and_the_workspace_are_refused(home):
    (home / "a").mkdir()
    (home / "b").mkdir()
    entries = (MountEntry("~/a", None, "/data"), MountEntry("~/b", None, "/data/b"))
    with pytest.raises(DockyardError) as caught:
        data_mounts.resolve_all(entries, "minimal", dict(os.environ))
    assert_one_paragraph(str(caught.value), "overlaps the target /data")
    mounts = data_mounts.resolve_all(entries[:1], "minimal", dict(os.environ))
    for ws in ("/data", "/data/project", "/"):
        with pytest.raises(DockyardError) as caught:
            data_mounts.check_workspace(mounts, Path(ws))
        assert_one_paragraph(str(caught.value), "workspace")
    data_mounts.check_workspace(mounts, Path("/work/project"))


# --- container arguments -----------------------------------------------------------------------------------------


def test_mounts_are_binds_as_written_and_secrets_a_private_tmpfs_and_a_waiting_start(tmp_path):
    mounts = (
        DataMount(tmp_path / "d", "/data", True, "~/d"),
        DataMount(tmp_path / "c", "/cache/hf", False, "cache hf"),
    )
    kc = make_kernel_container(tmp_path, data_mounts=mounts, secrets=(("hf_token", "HF_TOKEN"), ("aws", None)))
    kw = create_kwargs(kc)
    binds = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in kw["mounts"]}
    assert binds["/data"] == (str(tmp_path / "d"), True)
    assert binds["/cache/hf"] == (str(tmp_path / "c"), False)
    assert kw["tmpfs"]["/run/secrets"] == "rw,nosuid,nodev,noexec,size=4m,mode=0700,uid=1000,gid=1000"
    cmd = kw["command"]
    assert cmd[:2] == ["python", "-c"]
    assert cmd[3:5] == ["HF_TOKEN=hf_token", "--"]
    assert cmd[5:] == kc.argv
    assert "HF_TOKEN" not in kw["environment"]


def test_without_secrets_the_container_is_as_before(tmp_path):
    kc = make_kernel_container(tmp_path)
    kw = create_kwargs(kc)
    assert kw["command"] == kc.argv
    assert "/run/secrets" not in kw["tmpfs"]
    assert len(kw["mounts"]) == 2


def test_the_pool_serves_mounts_exactly_and_never_secrets(tmp_path):
    plain = make_kernel_container(tmp_path)
    mounted = make_kernel_container(tmp_path, data_mounts=(DataMount(tmp_path, "/data", True, "x"),))
    assert pooled.template(mounted) is not None
    assert pooled.pool_key(plain) != pooled.pool_key(mounted)  # a kernel with other mounts starts cold
    assert pooled.pool_key(mounted) != pooled.pool_key(
        make_kernel_container(tmp_path, data_mounts=(DataMount(tmp_path, "/data", False, "x"),))
    )
    assert pooled.template(make_kernel_container(tmp_path, secrets=(("t", None),))) is None


# --- secret sources ----------------------------------------------------------------------------------------------


def _file_secret(path: Path, mode: int = 0o600) -> SecretEntry:
    path.write_text(VALUE + "\n")
    path.chmod(mode)
    return SecretEntry("t", ("file", str(path)), origin="envs/x.yaml:9")


def test_a_600_file_of_the_user_is_read(home):
    found = kernel_secrets.find(_file_secret(home / "token"), os.environ)
    assert found.value == (VALUE + "\n").encode()
    assert VALUE not in repr(found)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_file_others_can_read_is_refused(home, mode):
    found = kernel_secrets.find(_file_secret(home / "token", mode), os.environ)
    assert found.value is None
    assert "mode 600" in found.problem
    assert "chmod 600" in found.fix


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_file_of_another_user_is_refused(home):
    entry = _file_secret(home / "token")
    os.chown(home / "token", 1234, 1234)
    found = kernel_secrets.find(entry, os.environ)
    assert found.value is None
    assert "uid 1234" in found.problem


def test_a_file_in_the_users_key_folder_is_refused(home):
    (home / ".ssh").mkdir()
    found = kernel_secrets.find(_file_secret(home / ".ssh" / "id_ed25519"), os.environ)
    assert found.value is None
    assert ".ssh" in found.problem


def test_a_server_variable_and_the_keyring(monkeypatch):
    monkeypatch.setenv("DY_UNIT_TOKEN", VALUE)
    assert kernel_secrets.find(SecretEntry("t", ("env", "DY_UNIT_TOKEN")), os.environ).value == VALUE.encode()
    missing = kernel_secrets.find(SecretEntry("t", ("env", "DY_UNIT_NOPE")), os.environ)
    assert missing.value is None
    assert "DY_UNIT_NOPE" in missing.fix
    entry = SecretEntry("t", ("keyring", "svc", "me"))
    monkeypatch.setitem(sys.modules, "keyring", None)  # not installed
    assert "pip install keyring" in kernel_secrets.find(entry, {}).fix
    fake = types.SimpleNamespace(get_password=lambda s, u: VALUE if (s, u) == ("svc", "me") else None)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    assert kernel_secrets.find(entry, {}).value == VALUE.encode()
    assert "keyring set svc other" in kernel_secrets.find(SecretEntry("t", ("keyring", "svc", "other")), {}).fix


def test_missing_secrets_are_notices_unless_required():
    optional = SecretEntry("opt", ("env", "DY_UNIT_NOPE"))
    present, notices = kernel_secrets.available((optional,), {})
    assert present == ()
    assert "secret opt is missing" in notices[0]
    assert "fix:" in notices[0]
    with pytest.raises(DockyardError) as caught:
        kernel_secrets.available((SecretEntry("req", ("env", "DY_UNIT_NOPE"), required=True, origin="e.yaml:4"),), {})
    assert_one_paragraph(str(caught.value), "e.yaml:4", "secret req", "DY_UNIT_NOPE")


def test_the_panel_rows_name_secrets_never_values(monkeypatch):
    monkeypatch.setenv("DY_UNIT_TOKEN", VALUE)
    rows = kernel_secrets.status(
        (SecretEntry("a", ("env", "DY_UNIT_TOKEN"), env="A"), SecretEntry("b", ("env", "DY_UNIT_NOPE"))), os.environ
    )
    assert rows[0] == {"name": "a", "source": "the server's variable DY_UNIT_TOKEN", "env": "A", "present": True}
    assert rows[1]["present"] is False
    assert "DY_UNIT_NOPE" in rows[1]["fix"]
    assert VALUE not in repr(rows)


def test_the_container_environment_holds_no_secret_value_and_no_secret_variable():
    env = {"A": "1", "COPY": f"x{VALUE}y", "HF_TOKEN": "server's own", "AWS_SECRET": "s"}
    out = kernel_secrets.scrubbed(env, {"t": (VALUE + "\n").encode()}, {"HF_TOKEN", "AWS_SECRET"})
    assert out == {"A": "1"}
    entries = (SecretEntry("t", ("env", "AWS_SECRET"), env="HF_TOKEN"), SecretEntry("u", ("file", "/x")))
    assert kernel_secrets.hidden_variables(entries) == {"AWS_SECRET", "HF_TOKEN"}


# --- the other front ends -----------------------------------------------------------------------------------------

DATA_SPEC = (
    "mounts:\n"
    "  - {source: ~/datasets, target: /data, read_only: true}\n"
    "  - {cache: huggingface, target: /cache/huggingface}\n"
    "secrets:\n"
    "  - {name: hf_token, from_file: ~/.config/hf/token, env: HF_TOKEN}\n"
    "  - {name: wandb, from_env: WANDB_API_KEY}\n"
)


def test_a_kubernetes_pod_references_claims_and_the_secret_by_name_only(tmp_envs):
    from dockyard.frontends.k8s.manifest_parts import K8sOptions
    from dockyard.frontends.k8s.podtemplate import pod_values

    from .test_k8s import BASE_ENV, CPU_KERNEL, launcher, validate, walk

    s = _spec(tmp_envs, DATA_SPEC)
    mod = launcher(CPU_KERNEL)
    values = {**mod.keywords(BASE_ENV), "pod": pod_values(s, s.variant("cpu"), K8sOptions())}
    import yaml

    pod = yaml.safe_load(mod.render(values, REPO / "k8s" / "launcher"))
    validate(pod)
    assert not [k for k, v in walk(pod) if k in ("hostPath", "privileged") and v]
    spec = pod["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {
        "data-0": {"claimName": "dockyard-minimal-data-0", "readOnly": True},
        "data-1": {"claimName": "dockyard-minimal-huggingface", "readOnly": False},
    }
    secret = next(v["secret"] for v in spec["volumes"] if v["name"] == "secrets")
    assert secret["secretName"] == "dockyard-minimal-secrets"
    assert secret["items"] == [{"key": "hf_token", "path": "hf_token"}, {"key": "wandb", "path": "wandb"}]
    mounts = {m["mountPath"]: m["readOnly"] for m in spec["containers"][0]["volumeMounts"] if "readOnly" in m}
    assert mounts == {"/data": True, "/cache/huggingface": False, "/run/secrets": True}
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "dockyard-minimal-secrets",
        "key": "hf_token",
        "optional": True,
    }
    assert "datasets" not in yaml.safe_dump(pod)  # a host path means nothing on a node


def test_the_panel_lists_mounts_and_secret_names_and_the_missing_ones_with_their_fix(tmp_envs, monkeypatch):
    from dockyard.frontends.panel.environments import data_facts

    monkeypatch.setenv("WANDB_API_KEY", VALUE)
    s = _spec(tmp_envs, DATA_SPEC)
    problems: list[str] = []
    facts = data_facts(s, problems)
    assert facts["mounts"] == [
        {"what": "~/datasets", "target": "/data", "read_only": True},
        {"what": "cache huggingface", "target": "/cache/huggingface", "read_only": False},
    ]
    assert [(r["name"], r["present"]) for r in facts["secrets"]] == [("hf_token", False), ("wandb", True)]
    assert len(problems) == 1
    assert "secret hf_token, which is missing" in problems[0]
    assert "Fix: " in problems[0]
    assert VALUE not in repr(facts)
