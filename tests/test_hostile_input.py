"""Hostile and broken input: specs, the config file, base overrides and refs.

Whatever a file, a flag or an environment variable holds, dockyard answers with a valid result or
one DockyardError paragraph (file, line, fix), quickly and in little memory: never a traceback, a
hang or a memory blow-up. The same loader will sit behind a Jupyter server extension, where one
uploaded spec must not stall the server for everyone.

Explicit cases first (including the two from issue 8), then property-based fuzzing with hypothesis:
each fuzz case runs under a per-case time check and an address-space limit, so a case that grows
memory fails with MemoryError (not a DockyardError) and one that stalls fails the time check.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard import cli, config, specs
from dockyard.errors import ConfigError, DockyardError, SpecError

from .helpers import assert_one_paragraph, bounded_memory

REPO = Path(__file__).resolve().parent.parent
SHIPPED = {p.stem: p.read_bytes() for p in sorted((REPO / "envs").glob("*.yaml"))}
# The config file example from README ("Corporate proxies"), with paths that exist on a Debian machine.
EXAMPLE_CONFIG = b"""\
build:
  ca_certs: [/etc/ssl/certs/ca-certificates.crt]
  pip_index_url: https://artifacts.corp.example/api/pypi/simple
  pip_extra_index_urls: [https://download.pytorch.org/whl/cpu]
  wheelhouse: /tmp
  ignore_spec_indexes: true
  pull: never
  proxy: {http: "http://proxy:3128", https: "http://proxy:3128", no_proxy: localhost}
base_overrides:
  python:3.11-slim-bookworm: registry.corp.example/python:3.11-slim-bookworm
kernels:
  gpu: auto
  network: host
  workspace_root: /tmp
  auto_build: false
"""
SITE_VARIABLES = [
    "DOCKYARD_BASE_OVERRIDES",
    "DOCKYARD_CA_CERTS",
    "DOCKYARD_WHEELHOUSE",
    "DOCKYARD_IGNORE_SPEC_INDEXES",
    "DOCKYARD_PULL",
    "DOCKYARD_PIP_INDEX_URL",
    "DOCKYARD_PIP_EXTRA_INDEX_URLS",
    "DOCKYARD_GPU",
    "DOCKYARD_KERNEL_NETWORK",
    "DOCKYARD_WORKSPACE_ROOT",
    "DOCKYARD_AUTO_BUILD",
    "DOCKYARD_POOL_SIZE",
]

# DOCKYARD_FUZZ_SCALE=20 runs twenty times as many fuzz cases (a deeper search, minutes instead of seconds).
FUZZ_SCALE = float(os.environ.get("DOCKYARD_FUZZ_SCALE", "1"))
CASE_SECONDS = 2.0  # one input, parsed and validated; real cases take milliseconds, this allows a busy 2-core CI
HEADROOM_MB = 400  # address space a fuzz run may add to the test process before allocation fails
CHILD_MEMORY_MB = 300  # RLIMIT_AS of a `python3 -m dockyard` subprocess fed a bomb
CHILD_CPU_SECONDS = 10  # its CPU limit (RLIMIT_CPU)
CHILD_WALL_SECONDS = 60  # killed after this: generous, the machine may be busy
CHILD_FAST_CPU_SECONDS = 4  # what a refusal may cost, start-up and imports (jsonschema's alone ~2 s) included
CHILD_SMALL_MB = 150  # its peak RSS (a bare `python3 -m dockyard` is ~70 MB)
IMAGE = re.compile(r"[a-z0-9][A-Za-z0-9._/:@-]*")


def nine_level_bomb() -> bytes:
    """The tester's file: nine levels of nine aliases each, 9**9 (387 million) strings once expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return ("\n".join(lines) + "\n").encode()


# ----------------------------------------------------------------------------------------------------------------
# Helpers: one paragraph, bounded time and memory


def scaled(examples: int) -> int:
    return max(1, int(examples * FUZZ_SCALE))


def timed(call: Callable[[], object]) -> object:
    """call() must return or raise a DockyardError within CASE_SECONDS; returns the result or the error."""
    start = time.perf_counter()
    try:
        result: object = call()
    except DockyardError as exc:
        result = exc
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"took {elapsed:.2f} s"
    return result


def fuzz_settings(examples: int) -> settings:
    examples = scaled(examples)
    # No example database (failures print a reproduce blob instead), no deadline (timed() checks each case with
    # a margin for a busy machine); health checks off because the inner functions use files, not fixtures.
    return settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True
    )


def outcome(result: object) -> str:
    """A case's kind of outcome, for checking that the fuzzing reaches past the YAML layer."""
    if not isinstance(result, DockyardError):
        return "valid"
    problem = re.sub(r"^.*?, line \d+: ", "", result.problem)
    return " ".join(re.sub(r"'[^']*'|\"[^\"]*\"|\S*[/\d]\S*", "_", problem).split()[:4])


def one_word(text: str) -> bool:
    """No spaces or line breaks (any Unicode kind): the value stays one token on one Dockerfile line."""
    return bool(text) and not any(c.isspace() for c in text) and len(text.splitlines()) == 1


def check_spec_result(result: object, path: Path) -> None:
    """A valid Spec holds nothing that could break the Dockerfile; an error is one paragraph naming the file."""
    if isinstance(result, DockyardError):
        assert isinstance(result, SpecError), type(result)
        assert_one_paragraph(result.text, str(path))
        return
    assert isinstance(result, specs.Spec), type(result)
    assert result.name == path.stem
    for variant in result.variants.values():
        assert IMAGE.fullmatch(variant.base), variant.base
        for text in (*variant.python_packages, *variant.system_packages, *variant.pip_extra_index_urls):
            assert one_word(text.split(";")[0]), text  # markers ('; python_version < "3.12"') have spaces
            assert len(text.splitlines()) == 1, text
        assert all(isinstance(v, str) for v in variant.env_vars.values())
    assert re.fullmatch(r"3\.\d+", result.python), result.python
    for value in (*result.resources.values(), *result.kernel.values()):
        assert not isinstance(value, float) or math.isfinite(value), value  # .nan passes every range check


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation remembers valid files in the cache dir: keep the fuzzer's thousands of files out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def no_site_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------------------------------------------------------------------
# The two cases of issue 8


class Finished(NamedTuple):
    code: int
    stderr: str
    wall: float  # seconds
    cpu: float  # seconds of user + system time: what the child cost, however busy the machine is
    peak_mb: int  # peak resident memory


# Started by the tests, this small process starts the limited child and reports the child's own usage. A child
# forked straight from pytest would count pytest's resident memory as its own (a forked, or vforked, child
# inherits its parent's high-water mark until exec, and ru_maxrss keeps it), so its peak would grow with the
# test session instead of saying what dockyard used.
_LAUNCHER = r"""
import json, os, resource, subprocess, sys, time
mem, cpu, wall = (int(a) for a in sys.argv[1:4])

def limits():
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

proc = subprocess.Popen(sys.argv[4:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=limits)
start = time.perf_counter()
while (reaped := os.wait4(proc.pid, os.WNOHANG))[0] == 0:
    if time.perf_counter() - start > wall:
        proc.kill()  # a hang (a FIFO read, say) uses no CPU, so RLIMIT_CPU alone would never end it
        os.wait4(proc.pid, 0)
        proc.returncode = -9
        print(json.dumps({"hung": True}))
        sys.exit(0)
    time.sleep(0.02)
proc.returncode = 0  # reaped above; keep Popen from waiting again
_, status, usage = reaped
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_kb": usage.ru_maxrss}))
"""


def run_limited(args: list[str | bytes], tmp_path: Path, env: dict[str, str] | None = None) -> Finished:
    """`python3 -m dockyard ARGS` under RLIMIT_AS and RLIMIT_CPU, killed if it outlives CHILD_WALL_SECONDS."""
    child_env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})}
    err_path = tmp_path / "stderr.txt"
    limits = [str(CHILD_MEMORY_MB * 2**20), str(CHILD_CPU_SECONDS), str(CHILD_WALL_SECONDS)]
    start = time.perf_counter()
    with err_path.open("wb") as err:
        launched = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *limits, sys.executable, "-m", "dockyard", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=child_env,
            timeout=CHILD_WALL_SECONDS + 30,
            check=True,
        )
    report = json.loads(launched.stdout)
    if report.get("hung"):
        pytest.fail(f"dockyard {args} still running after {CHILD_WALL_SECONDS} s")
    return Finished(
        code=report["code"],
        stderr=err_path.read_text(errors="replace"),
        wall=time.perf_counter() - start,
        cpu=report["cpu"],
        peak_mb=report["peak_kb"] // 1024,
    )


def test_nine_level_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    """Issue 8: this 1 KB file made `dockyard env validate` grow to 6.6 GB and run past 60 s."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(nine_level_bomb())
    assert bomb.stat().st_size < 1024
    run = run_limited(["env", "validate", str(bomb)], tmp_path)
    assert run.code == 2, run
    assert run.stderr.startswith("error:"), run
    assert_one_paragraph(run.stderr, str(bomb), "line 1", "anchor &a0")
    assert run.cpu < CHILD_FAST_CPU_SECONDS, run  # interpreter start-up and imports included
    assert run.peak_mb < CHILD_SMALL_MB, run


def test_bomb_is_refused_in_process_before_any_expansion(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(nine_level_bomb())
    with bounded_memory(100):
        result = timed(lambda: specs.load_file(path))
    assert isinstance(result, SpecError)
    assert_one_paragraph(result.text, f"{path}, line 1", "YAML anchor &a0", "plain YAML")


def test_python_tag_is_refused_not_run_and_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 8: `!!python/object/apply:os.system` ended in yaml.constructor.ConstructorError."""
    marker = tmp_path / "ran"
    spec = tmp_path / "demo.yaml"
    spec.write_text(f"name: demo\ndescription: !!python/object/apply:os.system ['touch {marker}']\n")
    assert cli.main(["env", "validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert_one_paragraph(err, f"{spec}, line 2", "tag !!python/object/apply:os.system")
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------------------------
# Explicit hostile specs: (id, file content, fragments of the message)

VALID = SHIPPED["minimal"]
VALID_LINES = VALID.count(b"\n")


def _line(marker: bytes, below: int = 0) -> str:
    """'line N' of VALID's first line holding marker, or `below` lines under it (the cases survive edits
    to minimal.yaml)."""
    return f"line {VALID[: VALID.index(marker)].count(NL) + 1 + below}"


NL = b"\n"
SHM, UNDER_SHM, CPU_ONLY = _line(b"shm_size: 1g"), _line(b"shm_size: 1g", 1), _line(b"CPU only")
HOSTILE: list[tuple[str, bytes, list[str]]] = [
    ("empty", b"", ["is empty"]),
    ("only-comments", b"# nothing\n# here\n", ["is empty"]),
    ("only-document-marker", b"---\n", ["is empty"]),
    ("null-document", b"~\n", ["is empty"]),
    ("a-list", b"- a\n- b\n", ["must be a YAML mapping"]),
    ("a-string", b"hello\n", ["must be a YAML mapping"]),
    # The second document starts on the line after the last line of the first one.
    ("two-documents", VALID + b"---\n" + VALID, ["more than one YAML document", f"line {VALID_LINES + 1}"]),
    ("anchor-only", VALID.replace(b"shm_size: 1g", b"shm_size: &s 1g"), ["anchor &s", SHM]),
    ("alias", b"a: 1\nb: *x\n", ["alias *x", "line 2"]),
    ("merge-key", VALID.replace(b"  shm_size: 1g", b"  <<: {shm_size: 1g}"), ["unknown key '<<' in resources"]),
    ("python-name-tag", b"name: !!python/name:os.system\n", ["tag !!python/name:os.system", "line 1"]),
    ("binary-tag", b"name: !!binary aGVsbG8=\n", ["tag !!binary"]),
    ("set-tag", b"name: !!set {a, b}\n", ["tag !!set"]),
    ("timestamp-tag", b"name: !!timestamp 2024-01-01\n", ["tag !!timestamp"]),
    ("local-tag", b"name: !custom x\n", ["tag !custom"]),
    ("non-specific-tag", b"name: ! x\n", ["tag !"]),
    ("verbatim-tag", b"name: !<tag:example.com:x> y\n", ["tag tag:example.com:x"]),
    ("bad-int-tag", b"name: !!int abc\n", ["line 1", "'abc' is not a valid int"]),
    ("empty-int-tag", b"name: !!int\n", ["line 1", "'' is not a valid int"]),
    ("bad-bool-tag", b"name: !!bool maybe\n", ["line 1", "'maybe' is not a valid bool"]),
    ("str-tag-on-mapping", b"name: !!str {a: 1}\n", ["line 1"]),
    ("huge-int", b"python: " + b"9" * 5000 + b"\n", ["line 1", "is too long"]),
    (
        "huge-float",
        VALID.replace(b"  shm_size: 1g", b"  shm_size: 1g\n  cpus: 1.0e+999999"),
        [UNDER_SHM, "'1.0e+999999' is not a finite number"],
    ),
    ("nan", VALID.replace(b"  shm_size: 1g", b"  shm_size: 1g\n  cpus: .nan"), [UNDER_SHM, "'.nan' is not a finite"]),
    ("big-float", VALID.replace(b"  shm_size: 1g", b"  shm_size: 1g\n  cpus: 1e300"), ["resources.cpus", UNDER_SHM]),
    ("timestamp-value", VALID.replace(b'python: "3.11"', b"python: 2024-01-01"), ['python is "2024-01-01"']),
    ("equals-value", VALID.replace(b'python: "3.11"', b"python: ="), ['python is "="']),
    ("int-key", b"1: a\n", ["line 1", "key that is not text ('1')"]),
    ("bool-key", b"on: a\n", ["key that is not text ('on')"]),
    ("null-key", b"~: a\n", ["key that is not text"]),
    ("complex-key", b"? [a, b]\n: c\n", ["key that is not text (a sequence)"]),
    ("mapping-key", b"{a: 1}: c\n", ["key that is not text (a mapping)"]),
    ("duplicate-key", VALID.replace(b"python:", b"python: x\npython:", 1), ["key 'python' appears twice"]),
    ("nul-byte", VALID.replace(b"CPU only", b"CPU\x00only"), ["control character U+0000", CPU_ONLY]),
    ("escape-byte", b"name: a\x1b[31mb\n", ["control character U+001B", "line 1"]),
    ("latin-1", VALID.replace(b"CPU only", "CPU \u00e9".encode("latin-1")), ["not UTF-8", CPU_ONLY, "0xe9"]),
    ("utf-16", VALID.decode().encode("utf-16"), ["not UTF-8"]),
    ("binary-junk", bytes(range(256)) * 4, ["line 2", "not UTF-8"]),
    ("deep-flow", b"a: " + b"[" * 100_000, ["nests deeper than 32 levels", "line 1"]),
    ("deep-flow-mapping", b"a: " + b"{b: " * 50_000, ["nests deeper than 32 levels"]),
    ("deep-block", "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(), ["nests deeper than 32 levels"]),
    ("many-values", b"[" + b"1," * 20_000 + b"]", ["more than 2000 values"]),
    ("oversized", b"# " + b"x" * (300 * 1024) + b"\n", ["larger than 256 KB"]),
    ("long-line-ok-size", b"name: " + b"x" * 200_000 + b"\n", ['name is "xxxx']),
    ("unclosed", b"name: [a, b\n", ["not valid YAML"]),
    ("tab-indent", b"name:\n\t- x\n", ["not valid YAML", "line 2"]),
    ("bad-escape", b'name: "\\q"\n', ["not valid YAML"]),
    ("directive-only", b"%YAML 1.1\n", ["not valid YAML"]),
    ("python-trailing-newline", VALID.replace(b'python: "3.11"', b'python: "3.11\\n"'), ["python is", "not valid"]),
    (
        "base-trailing-newline",
        VALID.replace(b"base: python:3.11-slim-bookworm", b'base: "python:3.11\\n"', 1),
        ["base"],
    ),
]


@pytest.mark.parametrize(("case", "content", "fragments"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_spec_gives_one_paragraph(tmp_path: Path, case: str, content: bytes, fragments: list[str]) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_bytes(content)
    with bounded_memory():
        result = timed(lambda: specs.load_file(path))
    assert isinstance(result, SpecError), f"{case}: loaded {result!r}"
    assert_one_paragraph(result.text, str(path), *fragments)


def test_the_valid_base_loads(tmp_path: Path) -> None:
    """The explicit cases above are single changes to this file, so each fails for its own reason."""
    path = tmp_path / "minimal.yaml"
    path.write_bytes(VALID)
    assert specs.load_file(path).variant("cuda").gpu == "optional"


def _unreadable(tmp_path: Path) -> list[tuple[Path, str]]:
    regular = tmp_path / "file.yaml"
    regular.write_bytes(VALID)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "nowhere.yaml")
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    (tmp_path / "dir.yaml").mkdir()
    odd_name = tmp_path / "a\nb\x1b[31m.yaml"  # a file name is input too: the message stays one escaped line
    odd_name.write_bytes(b"a: !!python/name:os.system\n")
    cases = [
        (tmp_path / "dir.yaml", "is a directory"),
        (fifo, "not a regular file"),  # must not block waiting for a writer
        (dangling, "No such file"),
        (loop, "Too many levels of symbolic links"),
        (regular / "below-a-file.yaml", "Not a directory"),
        (tmp_path / ("x" * 300 + ".yaml"), "File name too long"),
        (Path("/dev/zero"), "larger than 256 KB"),  # endless: read up to the limit, then refused
        (Path(f"{tmp_path}/nul\0.yaml"), "nul\\x00.yaml': invalid path"),
        (odd_name, "a\\nb\\x1b[31m.yaml', line 1: environment spec uses the YAML tag"),
    ]
    if os.geteuid() != 0:  # root reads any file, whatever its mode
        locked = tmp_path / "locked.yaml"
        locked.write_bytes(VALID)
        locked.chmod(0)
        cases.append((locked, "Permission denied"))
    return cases


def test_unreadable_paths_give_one_paragraph(tmp_path: Path) -> None:
    for path, fragment in _unreadable(tmp_path):
        result = timed(lambda path=path: specs.load_file(path))
        assert isinstance(result, SpecError), path
        assert_one_paragraph(result.text, fragment)


def test_dev_null_as_config_means_no_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_site_variables
) -> None:
    monkeypatch.setenv("DOCKYARD_CONFIG", os.devnull)
    assert config.load_settings().build == config.BuildOptions()


# ----------------------------------------------------------------------------------------------------------------
# Fuzzing specs: mutated shipped specs, arbitrary YAML, arbitrary bytes, bomb shapes

TOKENS = [
    b"&a ",
    b"*a",
    b"&a [*a, *a] ",
    b"!!python/object/apply:os.system ",
    b"!!str ",
    b"!!int ",
    b"!!binary ",
    b"!!map ",
    b"!x ",
    b"! ",
    b"<<: ",
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"- ",
    b"? ",
    b",",
    b"\t",
    b'"',
    b"'",
    b"|",
    b">-",
    b"---\n",
    b"...\n",
    b"%YAML 1.1\n",
    b"%TAG ! tag:x,2000:\n",
    b"#",
    b"\n",
    b"  ",
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"~",
    b"null",
    b"true",
    b"on",
    b"1e999",
    b"-.inf",
    b"0x1F",
    b"0o17",
    b"1:30",
    b"2024-01-01",
    b"9" * 5000,
    b"=",
    b"\\",
    b"\r",
    "\u0085".encode(),
    "\u2028".encode(),
    b'"3.11"',
    b"3.12",
    b"-1",
    b".nan",
    b"cpu",
    b"cuda",
    b"cuda-12",
    b"gpu: required",
    b"torch==2.13.0",
    b"numpy>=2",
    b"ipykernel==7.4.0",
    b"env: {A: b}",
    b"1BAD: x",
    b"\\n",
    b'"\\n"',
    "\u00e9\u4e2d\U0001f600".encode(),
]
token = (
    st.sampled_from(TOKENS) | st.binary(max_size=6) | st.text(max_size=6).map(lambda t: t.encode("utf-8", "replace"))
)


@st.composite
def mutated_spec(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shipped spec with 1-4 byte- or line-level edits: most stay close enough to reach the schema checks."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    data = SHIPPED[name]
    for _ in range(draw(st.integers(1, 4))):
        lines = data.split(b"\n")
        row = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "value", "dup-line", "drop-line", "indent"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "insert":
            data = data[:pos] + draw(token) + data[pos:]
        elif kind == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 40)) :]
        elif kind == "replace":
            data = data[:pos] + draw(token) + data[pos + draw(st.integers(1, 8)) :]
        elif kind == "value":  # keep the key, change the value: reaches schema and cross-field checks
            key, sep, _ = lines[row].partition(b": ")
            lines[row] = key + (sep or b": ") + draw(token)
            data = b"\n".join(lines)
        elif kind == "dup-line":
            data = b"\n".join(lines[: row + 1] + lines[row:])
        elif kind == "drop-line":
            data = b"\n".join(lines[:row] + lines[row + 1 :])
        else:
            lines[row] = b" " * draw(st.integers(0, 6)) + lines[row].lstrip(b" ")
            data = b"\n".join(lines)
    return name, data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)


@st.composite
def yaml_documents(draw: st.DrawFn) -> bytes:
    """Arbitrary YAML: a dumped value in a random style, with a few tokens spliced in."""
    value = draw(json_values | st.dictionaries(st.sampled_from(["name", "python", "variants", "env"]), json_values))
    text = yaml.safe_dump(value, default_flow_style=draw(st.sampled_from([None, True, False])), allow_unicode=True)
    data = text.encode()
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(token) + data[pos:]
    return data


@st.composite
def bombs(draw: st.DrawFn) -> bytes:
    """Alias bombs of any depth and width, block or flow, and nesting far past any limit."""
    shape = draw(st.sampled_from(["laughs", "merge", "nest-flow", "nest-block", "nest-seq"]))
    depth = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    if shape == "laughs":
        rows = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
        rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth + 1)]
        return "\n".join(rows).encode()
    if shape == "merge":
        rows = ["k0: &k0 {x: 1}"] + [
            f"k{i}: &k{i}\n  <<: [{', '.join([f'*k{i - 1}'] * width)}]" for i in range(1, depth)
        ]
        return "\n".join(rows).encode()
    levels = draw(st.integers(33, 20_000))
    if shape == "nest-flow":
        return b"a: " + b"[{x: " * (levels // 2)
    if shape == "nest-seq":
        return b"".join(b"  " * i + b"-\n" for i in range(min(levels, 400)))
    return b"".join(b" " * i + b"k:\n" for i in range(min(levels, 400)))


def fuzz_specs(tmp_path: Path, strategy: st.SearchStrategy, examples: int) -> Counter:
    """Feed `examples` generated files to load_file; every one must end in a checked Spec or SpecError."""
    outcomes: Counter = Counter()

    @fuzz_settings(examples)
    @given(strategy)
    def case(generated: tuple[str, bytes] | bytes) -> None:
        name, data = generated if isinstance(generated, tuple) else ("demo", generated)
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        result = timed(lambda: specs.load_file(path))
        check_spec_result(result, path)
        outcomes[outcome(result)] += 1

    with bounded_memory():
        case()
    return outcomes


def test_fuzz_mutated_shipped_specs(tmp_path: Path) -> None:
    outcomes = fuzz_specs(tmp_path, mutated_spec(), 600)
    assert sum(outcomes.values()) >= scaled(600)
    # The fuzzing reaches every layer: some mutants stay valid, the rest fail in many different ways.
    assert outcomes["valid"] >= 10, outcomes
    assert len(outcomes) >= 15, outcomes


def test_fuzz_arbitrary_yaml(tmp_path: Path) -> None:
    outcomes = fuzz_specs(tmp_path, yaml_documents(), 250)
    assert sum(outcomes.values()) >= scaled(250)
    assert len(outcomes) >= 5, outcomes


def test_fuzz_arbitrary_bytes_and_text(tmp_path: Path) -> None:
    raw = st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass"))
    outcomes = fuzz_specs(tmp_path, raw, 200)
    assert sum(outcomes.values()) >= scaled(200)
    assert "valid" not in outcomes


def test_fuzz_bomb_shapes(tmp_path: Path) -> None:
    outcomes = fuzz_specs(tmp_path, bombs(), 100)
    assert sum(outcomes.values()) >= scaled(100)
    assert "valid" not in outcomes
    assert any("defines the" in kind for kind in outcomes), outcomes
    assert any("nests deeper" in kind for kind in outcomes), outcomes


# ----------------------------------------------------------------------------------------------------------------
# The config file, base overrides and refs


@st.composite
def mutated_config(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from([EXAMPLE_CONFIG, b"base_overrides:\n  a: b\n"]))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:pos] + draw(token) + data[pos:]
        else:
            data = data[:pos] + data[pos + draw(st.integers(1, 20)) :]
    return data


def check_settings(result: object) -> None:
    if isinstance(result, DockyardError):
        assert isinstance(result, ConfigError), type(result)
        assert_one_paragraph(result.text)
        return
    assert isinstance(result, config.Settings), type(result)
    build = result.build
    for upstream, local in build.base_overrides.items():
        assert IMAGE.fullmatch(upstream), upstream
        assert IMAGE.fullmatch(local), local
    for url in (build.pip_index_url or "x", *build.pip_extra_index_urls):
        assert one_word(url), url


def test_fuzz_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, no_site_variables
) -> None:
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    path.write_bytes(EXAMPLE_CONFIG)
    assert config.load_settings().build.pip_index_url == "https://artifacts.corp.example/api/pypi/simple"
    outcomes: Counter = Counter()

    @fuzz_settings(300)
    @given(mutated_config() | yaml_documents() | bombs())
    def case(data: bytes) -> None:
        path.write_bytes(data)
        result = timed(config.load_settings)
        check_settings(result)
        if isinstance(result, ConfigError):
            assert str(path) in result.text, result.text
        outcomes[outcome(result)] += 1
        code, out, err = render(["render", "minimal"], capsys)  # and the same through the command line
        check_cli(code, out, err)
        assert code == 2 or not isinstance(result, ConfigError), out  # later stages may refuse more (a CA file)

    with bounded_memory():
        case()
    assert sum(outcomes.values()) >= scaled(300)
    assert outcomes["valid"] >= 5, outcomes


env_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=80)
override_text = st.lists(
    st.sampled_from(["python:3.11-slim-bookworm", "local/img:1", "=", ",", " ", "a", "A", ":", "@sha256:00", "\n", "é"])
    | env_text,
    max_size=6,
).map("".join)


def test_fuzz_base_overrides_variable(monkeypatch: pytest.MonkeyPatch, no_site_variables) -> None:
    outcomes: Counter = Counter()

    @fuzz_settings(200)
    @given(override_text)
    def case(value: str) -> None:
        monkeypatch.setenv("DOCKYARD_BASE_OVERRIDES", value)
        result = timed(config.load_settings)
        check_settings(result)
        if isinstance(result, ConfigError):
            assert "DOCKYARD_BASE_OVERRIDES" in result.text
        outcomes[outcome(result)] += 1

    case()
    assert sum(outcomes.values()) >= scaled(200)
    assert outcomes["valid"] >= 5, outcomes


def render(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    start = time.perf_counter()
    code = cli.main(argv)
    assert time.perf_counter() - start < CASE_SECONDS
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_cli(code: int, out: str, err: str) -> None:
    """Exit 0 with a Dockerfile whose FROM is one image, or exit 2 with one paragraph on stderr."""
    if code == 0:
        from_lines = [line for line in out.splitlines() if line.startswith("FROM ")]
        assert from_lines, out
        assert all(IMAGE.fullmatch(line.split()[1]) and len(line.split()) in (2, 4) for line in from_lines), from_lines
        return
    assert code == 2, (code, err)
    assert err.startswith("error:"), err
    assert_one_paragraph(err)


def test_fuzz_base_override_flag_and_variable(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, no_site_variables
) -> None:
    codes: Counter = Counter()

    @fuzz_settings(150)
    @given(override_text, st.booleans())
    def case(value: str, as_flag: bool) -> None:
        if as_flag:
            monkeypatch.delenv("DOCKYARD_BASE_OVERRIDES", raising=False)
            code, out, err = render(["render", "minimal", f"--base-override={value}"], capsys)
        else:
            monkeypatch.setenv("DOCKYARD_BASE_OVERRIDES", value)
            code, out, err = render(["render", "minimal"], capsys)
        check_cli(code, out, err)
        if code == 2:
            assert ("--base-override" if as_flag else "DOCKYARD_BASE_OVERRIDES") in err, err
        codes[code] += 1

    case()
    assert codes[0] >= 5, codes
    assert codes[2] >= 50, codes


REFS = [
    "pytorch:cu da",
    ":",
    "::",
    "a:b:c",
    "minimal:",
    ":cpu",
    "",
    " ",
    "minimal ",
    "minimal:cpu\n",
    "\x1b[31mred",
    "pytörch",
    "パイトーチ:cpu",
    "x" * 10_000,
    "minimal:" + "c" * 10_000,
    "../../etc/passwd",
    "minimal.yaml",
    "envs/nowhere.yaml:cpu",
    "minimal:tpu",
    "MINIMAL",
    "-h",
    "--all",
    "\udcff:cpu",
]


@pytest.mark.parametrize("ref", REFS, ids=range(len(REFS)))
def test_strange_refs_give_one_paragraph(ref: str, capsys: pytest.CaptureFixture, no_site_variables) -> None:
    code, out, err = render(["render", "--", ref], capsys)
    assert code == 2, out
    check_cli(code, out, err)
    assert len(err) < 600, err  # a 10 000-character ref is not echoed back in full


def test_fuzz_refs(capsys: pytest.CaptureFixture, no_site_variables) -> None:
    codes: Counter = Counter()
    pieces = st.sampled_from(["minimal", "pytorch", ":", "cpu", "cuda", "-", " ", "é", ".yaml", "/"])
    valid = st.sampled_from(["minimal", "minimal:cpu", "pytorch:cuda", "jax", "tensorflow:cpu"])
    refs = valid | st.lists(pieces, max_size=4).map("".join) | st.text(max_size=60)

    @fuzz_settings(200)
    @given(refs)
    def case(ref: str) -> None:
        for argv in (["render", "--", ref], ["env", "show", "--", ref]):
            code, out, err = render(argv, capsys)
            if argv[0] == "render":
                check_cli(code, out, err)
            elif code != 0:
                assert code == 2, (code, err)
                assert err.startswith("error:"), err
                assert_one_paragraph(err)
            codes[code] += 1

    case()
    assert codes[0] >= 5, codes
    assert codes[2] >= 100, codes


# ----------------------------------------------------------------------------------------------------------------
# Through a real process: exit code 2, one paragraph on stderr, bounded time and memory


def test_processes_end_cleanly(tmp_path: Path) -> None:
    tag = tmp_path / "tag.yaml"
    marker = tmp_path / "ran"
    tag.write_text(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    deep = tmp_path / "deep.yaml"
    deep.write_bytes(b"[" * 100_000)  # libyaml's composer recursed on this until it crashed the interpreter
    big = tmp_path / "big.yaml"
    big.write_bytes(b"[" * 1_000_000)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    bomb_config = tmp_path / "config.yaml"
    bomb_config.write_bytes(nine_level_bomb())
    runs: list[tuple[list[str | bytes], dict[str, str], str]] = [
        (["env", "validate", str(tag)], {}, "tag !!python/object/apply:os.system"),
        (["env", "validate", str(deep)], {}, "nests deeper than 32 levels"),
        (["env", "validate", str(big)], {}, "larger than 256 KB"),
        (["env", "validate", str(tmp_path / "missing.yaml")], {}, "No such file"),
        (["env", "validate", str(fifo)], {}, "not a regular file"),
        (["env", "validate", "/dev/zero"], {}, "larger than 256 KB"),
        (["render", b"pytorch:\xff"], {}, "not an environment reference"),
        (["render", "a:b:c"], {}, "not an environment reference"),
        (["render", "minimal"], {"DOCKYARD_CONFIG": str(bomb_config)}, "anchor &a0"),
        (["render", "minimal"], {"DOCKYARD_CONFIG": "~nosuchuser/config.yaml"}, "DOCKYARD_CONFIG"),
        (["render", "minimal"], {"DOCKYARD_BASE_OVERRIDES": "python:3.11-slim-bookworm=x\nRUN id"}, "not an image"),
        (["render", "minimal", "--base-override", "a=b c"], {}, "--base-override"),
    ]
    for args, env, fragment in runs:
        run = run_limited(args, tmp_path, env)
        assert run.code == 2, (args, run)
        assert run.stderr.startswith("error:"), (args, run)
        assert_one_paragraph(run.stderr, fragment)
        assert run.cpu < CHILD_FAST_CPU_SECONDS, (args, run)
        assert run.peak_mb < CHILD_SMALL_MB, (args, run)
    assert not marker.exists()
