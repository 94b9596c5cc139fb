"""Generated Compose files (no engine needed): checked in and up to date, deterministic, valid against the Compose
Specification's JSON schema and accepted by a real `docker-compose config`; the lab and stack files say the right
things; broken stack files give one paragraph with file, line and fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dockyard import cli, specs
from dockyard.errors import StackError
from dockyard.frontends import compose
from dockyard.generated import Tree
from dockyard.images.naming import image_alias
from dockyard.specs.stacks import load_all_stacks, load_stack

from .helpers import REPO, assert_same_files, copy_spec

CHECKED_IN = REPO / compose.DIRNAME
PIPELINE = REPO / "stacks" / "pipeline"


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI"):
            raise AssertionError("docker-compose is missing: scripts/install-test-tools.sh installs it")
        pytest.skip("no docker-compose (apt-get install docker-compose)")
    return found


def _compose_spec_schema() -> dict:
    """The Compose Specification's JSON schema as bundled by Debian's docker-compose 1.29 (Apache-2.0)."""
    exe = Path(_docker_compose())
    interpreter = exe.read_text().splitlines()[0].removeprefix("#!").split()
    where = subprocess.run(
        [*interpreter, "-c", "import compose.config, os; print(os.path.dirname(compose.config.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return json.loads((Path(where) / "compose_spec.json").read_text())


def _generated(out: Path) -> dict[str, bytes]:
    return compose.render_all(specs.load_all(), load_all_stacks(), out)


def test_checked_in_compose_files_match_the_specs(tmp_path):
    """Regenerate beside the checked-in tree (relative paths must come out the same) and compare."""
    out = tmp_path / compose.DIRNAME
    Tree(_generated(CHECKED_IN), out, compose.owned).write(complete=True)
    assert_same_files(out, CHECKED_IN, "dockyard compose generate")


def test_check_mode_passes_on_the_repo_and_fails_on_drift(tmp_path, capsys):
    assert cli.main(["compose", "generate", "--check", "--dir", str(CHECKED_IN)]) == 0
    work = tmp_path / compose.DIRNAME
    shutil.copytree(CHECKED_IN, work)
    # Same depth as compose/ in the checkout, so the relative paths to stacks/ stay right.
    moved = REPO / f".compose-drift-{os.getpid()}"
    shutil.copytree(work, moved)
    try:
        target = moved / "lab-minimal" / compose.COMPOSE_FILE
        target.write_bytes(target.read_bytes().replace(b"shm_size: 1g", b"shm_size: 2g"))
        capsys.readouterr()
        assert cli.main(["compose", "generate", "--check", "--dir", str(moved)]) == 1
        out = capsys.readouterr().out
        assert "outdated" in out
        assert "lab-minimal" in out
        assert cli.main(["compose", "generate", "--dir", str(moved)]) == 0
        assert cli.main(["compose", "generate", "--check", "--dir", str(moved)]) == 0
    finally:
        shutil.rmtree(moved)


def test_generation_is_deterministic_across_processes():
    """Byte for byte the same in a fresh interpreter with another hash seed (set and dict order must not leak)."""
    code = (
        "import sys; from pathlib import Path; from dockyard import specs; from dockyard.frontends import compose; "
        "from dockyard.specs.stacks import load_all_stacks; "
        "files = compose.render_all(specs.load_all(), load_all_stacks(), Path(sys.argv[1])); "
        "import hashlib; print(hashlib.sha256(b''.join(k.encode() + v for k, v in files.items())).hexdigest())"
    )
    digests = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        run = subprocess.run([sys.executable, "-c", code, str(CHECKED_IN)], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        digests.add(run.stdout.strip())
    assert len(digests) == 1


def test_files_are_machine_independent():
    for rel, data in _generated(CHECKED_IN).items():
        text = data.decode()
        assert str(REPO) not in text, rel
        assert "/root" not in text, rel
        assert "token=" not in text, rel
        assert data.startswith(compose.MARKER.encode()), rel


def test_every_file_is_valid_against_the_compose_specification_schema():
    import jsonschema

    schema = _compose_spec_schema()
    validator = jsonschema.Draft201909Validator(schema)
    files = {rel: yaml.safe_load(data) for rel, data in _generated(CHECKED_IN).items() if rel.endswith(".yaml")}
    labs = sum(len(s.variants) for s in specs.load_all())
    stacks = len(list((REPO / "stacks").glob("*/stack.yaml")))
    assert len(files) == labs + stacks  # one lab per environment variant, one project per stack
    for rel, data in files.items():
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert not problems, f"{rel}: {problems}"
    # The validator does catch a key Compose does not know.
    broken = json.loads(json.dumps(files["pipeline/compose.yaml"]))
    broken["services"]["store"]["shm"] = "1g"
    assert list(validator.iter_errors(broken))


def test_docker_compose_accepts_every_checked_in_file():
    exe = _docker_compose()
    for path in sorted(CHECKED_IN.glob(f"*/{compose.COMPOSE_FILE}")):
        run = subprocess.run(
            [exe, "--project-name", "dockyard-config-check", "--file", str(path), "config", "--quiet"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"{path}: {run.stderr}"
        assert "WARNING" not in run.stderr, f"{path}: {run.stderr}"


def _load(rel: str) -> dict:
    return yaml.safe_load(_generated(CHECKED_IN)[rel])


@pytest.mark.parametrize("name", ["minimal", "pytorch", "tensorflow", "jax"])
def test_lab_runs_the_kernels_image_on_loopback_only_with_the_specs_resources(name):
    spec = specs.load(name)
    for variant in spec.variants.values():
        folder = compose.lab_folder(spec, variant)
        lab = _load(f"{folder}/{compose.COMPOSE_FILE}")["services"]["lab"]
        assert lab["build"]["args"]["ENV_IMAGE"] == f"${{DOCKYARD_ENV_IMAGE:-{image_alias(variant)}}}"
        assert lab["ports"] == ["127.0.0.1:${DOCKYARD_LAB_PORT:-8888}:8888"]
        assert lab["shm_size"] == spec.resources["shm_size"]
        assert lab["environment"]["JUPYTER_TOKEN"] == "${DOCKYARD_LAB_TOKEN:-}"
        assert lab["cap_drop"] == ["ALL"]
        assert "test" in lab["healthcheck"]
        devices = lab.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
        if variant.gpu == "none":
            assert devices is None, folder
        else:
            assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}], folder
        dockerfile = _generated(CHECKED_IN)[f"{folder}/{compose.LAB_DOCKERFILE}"].decode()
        assert compose.JUPYTERLAB in dockerfile
        assert f"--name dockyard-{spec.name}-{variant.name}" in dockerfile


def test_lab_limits_come_from_the_spec(tmp_envs):
    path = copy_spec("minimal", tmp_envs)
    path.write_text(path.read_text().replace("  shm_size: 1g\n", "  shm_size: 3g\n  memory: 6g\n  cpus: 2\n"))
    spec = specs.load("minimal")
    lab = compose.lab_compose(spec, spec.variant("cpu"))["services"]["lab"]
    assert lab["shm_size"] == "3g"
    assert lab["deploy"]["resources"]["limits"] == {"cpus": "2", "memory": "6g"}


def test_pipeline_services_share_the_kernels_image_and_keep_secrets_out():
    data = _load(f"pipeline/{compose.COMPOSE_FILE}")
    trainer, store = data["services"]["trainer"], data["services"]["store"]
    assert trainer["image"] == "${DOCKYARD_IMAGE_TRAINER:-dockyard/pytorch:cpu}"
    assert trainer["shm_size"] == specs.load("pytorch").resources["shm_size"]
    assert trainer["depends_on"] == {"store": {"condition": "service_healthy"}}
    assert trainer["restart"] == "no"
    assert trainer["volumes"] == ["../../stacks/pipeline/trainer:/stack:ro"]
    assert store["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert store["build"]["context"] == "../../stacks/pipeline/store"
    assert store["environment"]["DB_PASSWORD"] == "${DOCKYARD_SECRET_DB_PASSWORD:-}"
    assert store["ports"] == ["127.0.0.1::5432"]  # loopback only, for notebooks on this machine
    assert list(data["volumes"]) == ["pgdata"]


def test_dollar_signs_in_a_stack_are_escaped(tmp_path, monkeypatch):
    stacks = _stack_dir(tmp_path, STACK.replace("A: b", "A: price$5"))
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(stacks))
    stack = load_stack("demo")
    data = compose.stack_compose(stack, tmp_path / "compose" / "demo")
    assert data["services"]["job"]["environment"]["A"] == "price$$5"


# ---------------------------------------------------------------------------------------------------- stack files

STACK = textwrap.dedent(
    """\
    name: demo
    description: A test stack.
    volumes: [data]
    secrets: [pw]
    services:
      db:
        build:
          context: db
        volumes:
          data: /data
        secrets:
          PW: pw
        healthcheck: ["true"]
      job:
        env: minimal:cpu
        command: [python, -c, "print(1)"]
        environment:
          A: b
        depends_on: [db]
        once: true
    verify:
      service: db
      checks:
        - name: one
          command: [echo, "1"]
          equals: 1
    """
)


def _stack_dir(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "stacks"
    (root / "demo" / "db").mkdir(parents=True)
    (root / "demo" / "db" / "Dockerfile").write_text("FROM scratch\n")
    (root / "demo" / "stack.yaml").write_text(text)
    return root


def test_good_stack_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(_stack_dir(tmp_path, STACK)))
    stack = load_stack("demo")
    assert list(stack.services) == ["db", "job"]
    assert stack.services["job"].once
    assert stack.checks[0].judge(1.0)
    assert not stack.checks[0].judge(2.0)


STACK_CASES = [
    ("bad-yaml", ("description: A test stack.\n", "description: [unclosed\n"), ["not valid YAML", "line 3"]),
    ("unknown-key", ("    once: true\n", "    onse: true\n"), ["unknown key 'onse'", "did you mean 'once'", "line 20"]),
    ("env-and-build", ("    env: minimal:cpu\n", "    env: minimal:cpu\n    build: {context: db}\n"), ["exactly one"]),
    ("unknown-env", ("env: minimal:cpu", "env: minmal:cpu"), ["No environment named 'minmal'", "did you mean"]),
    ("unknown-variant", ("env: minimal:cpu", "env: minimal:rocm"), ["no variant 'rocm'"]),
    ("undeclared-volume", ("      data: /data\n", "      dta: /data\n"), ["volume 'dta'", "line 10"]),
    ("relative-mount", ("      data: /data\n", "      data: data\n"), ["absolute path"]),
    ("undeclared-secret", ("      PW: pw\n", "      PW: password\n"), ["secret 'password'"]),
    ("missing-context", ("      context: db\n", "      context: nope\n"), ["not a folder inside"]),
    ("context-outside", ("      context: db\n", "      context: ../..\n"), ["not a folder inside"]),
    ("bad-dependency", ("depends_on: [db]", "depends_on: [dbb]"), ["depends on 'dbb'", "did you mean 'db'"]),
    ("bad-service-name", ("  job:\n", "  Job_1:\n"), ["invalid key", "service names"]),
    ("wrong-type", ('command: [python, -c, "print(1)"]', "command: python"), ["must be a list"]),
    ("no-expectation", ("      equals: 1\n", ""), ["states no expectation", "add equals, min or max"]),
    ("verify-unknown-service", ("  service: db\n", "  service: dbx\n"), ["verify.service"]),
    ("wrong-name", ("name: demo\n", "name: other\n"), ["folder is demo"]),
    ("client-unpublished-port", ("verify:\n", 'client:\n  P: "{port:db:5432}"\nverify:\n'), ["does not publish"]),
    ("client-unknown-secret", ("verify:\n", 'client:\n  P: "{secret:nope}"\nverify:\n'), ["secret 'nope'"]),
]


@pytest.mark.parametrize(("case", "change", "expected"), STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_broken_stack_gives_one_paragraph(tmp_path, monkeypatch, capsys, case, change, expected):
    old, new = change
    assert old in STACK, case
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(_stack_dir(tmp_path, STACK.replace(old, new))))
    with pytest.raises(StackError) as info:
        load_stack("demo")
    text = info.value.text
    for part in expected:
        assert part in text, f"{case}: {part!r} not in {text!r}"
    assert "stack.yaml" in text or "No environment" in text
    assert "Fix:" in text
    assert "\n" not in text
    # Through the CLI: the paragraph on stderr, exit 2, no traceback.
    assert cli.main(["compose", "verify", "demo"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert expected[0].split("'")[0] in " ".join(err.split())


def test_unknown_stack_suggests_a_name(capsys):
    assert cli.main(["compose", "verify", "pipelin"]) == 2
    assert "did you mean 'pipeline'" in " ".join(capsys.readouterr().err.split())


def test_checked_in_stack_is_valid_and_has_its_checks():
    stack = load_stack(PIPELINE / "stack.yaml")
    assert stack.verify_service == "store"
    assert {c.name for c in stack.checks} >= {"digits in the store", "held-out digits"}
    assert any(c.min == 0.9 for c in stack.checks)


def test_stack_names_cannot_take_the_lab_prefix(tmp_path, monkeypatch):
    root = _stack_dir(tmp_path, STACK)
    (root / "demo").rename(root / "lab-demo")
    stack_file = root / "lab-demo" / "stack.yaml"
    stack_file.write_text(STACK.replace("name: demo", "name: lab-demo"))
    monkeypatch.setenv("DOCKYARD_STACKS_PATH", str(root))
    with pytest.raises(StackError, match="starts with 'lab-'"):
        load_stack(stack_file)


def test_builds_get_the_sites_proxy_and_nothing_else():
    """Proxy variables with no value in the file: Compose takes them from the environment dockyard gives it."""
    from dockyard.config import BuildOptions
    from dockyard.frontends.compose_run import Target, variables

    store = _load(f"pipeline/{compose.COMPOSE_FILE}")["services"]["store"]["build"]["args"]
    lab = _load(f"lab-pytorch/{compose.COMPOSE_FILE}")["services"]["lab"]["build"]["args"]
    for args in (store, lab):
        assert {k: v for k, v in args.items() if k.lower().endswith("proxy")} == dict.fromkeys(
            ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")
        )
    stack = load_stack(PIPELINE / "stack.yaml")
    options = BuildOptions(
        proxy={"https": "http://proxy.invalid:3128"}, base_overrides={"python:3.11-slim-bookworm": "local/base:1"}
    )
    values = variables(
        Target("pipeline", stack=stack),
        options,
        {"trainer": "dockyard/pytorch:cpu-abc"},
        {"secrets": {"db_password": "pw"}},
    )
    assert values["HTTPS_PROXY"] == values["https_proxy"] == "http://proxy.invalid:3128"
    assert "HTTP_PROXY" not in values
    assert values["DOCKYARD_BASE_STORE"] == "local/base:1"
    assert values["DOCKYARD_IMAGE_TRAINER"] == "dockyard/pytorch:cpu-abc"
    assert values["DOCKYARD_SECRET_DB_PASSWORD"] == "pw"
    assert values["DOCKYARD_IMAGE_STORE"].startswith("dockyard/stack-pipeline-store:")
