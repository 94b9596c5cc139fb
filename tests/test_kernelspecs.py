"""Generated kernelspecs: checked-in files match the specs byte for byte, say the right things, and install."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib
from pathlib import Path

import pytest

from dockyard import specs
from dockyard.cli import main
from dockyard.kernel import kernelspec, logos

from .helpers import REPO, assert_same_files, copy_spec

CHECKED_IN = REPO / kernelspec.DIRNAME


def test_checked_in_kernelspecs_match_the_specs(tmp_path):
    """Regenerate into a temp dir; any difference means someone edited a spec without regenerating."""
    out = tmp_path / "kernels"
    kernelspec.tree(specs.load_all(), out).write(complete=True)
    assert_same_files(out, CHECKED_IN, "dockyard kernels generate")


def test_generate_check_passes_on_the_repo_and_fails_on_drift(tmp_path, monkeypatch, capsys):
    assert main(["kernels", "generate", "--check", "--output", str(CHECKED_IN)]) == 0
    work = tmp_path / "kernels"
    shutil.copytree(CHECKED_IN, work)
    (tmp_path / "envs").mkdir()
    for name in specs.spec_files():
        copy_spec(name, tmp_path / "envs")
    monkeypatch.setenv("DOCKYARD_ENVS_PATH", str(tmp_path / "envs"))
    target = work / "dockyard-minimal-cpu" / kernelspec.KERNEL_JSON
    target.write_bytes(target.read_bytes().replace(b'"signal"', b'"message"'))
    shutil.copytree(work / "dockyard-minimal-cpu", work / "dockyard-gone-cpu")  # a removed env: stale
    (work / "mine").mkdir()  # someone's own kernelspec: never touched
    (work / "mine" / kernelspec.KERNEL_JSON).write_text('{"argv": ["x"], "display_name": "mine"}\n')
    capsys.readouterr()
    assert main(["kernels", "generate", "--check", "--output", str(work)]) == 1
    out = capsys.readouterr().out
    assert "outdated" in out
    assert "dockyard-minimal-cpu" in out
    assert "stale" in out
    assert "dockyard-gone-cpu" in out
    assert "mine" not in out
    assert main(["kernels", "generate", "--output", str(work)]) == 0
    assert not (work / "dockyard-gone-cpu").exists()
    assert (work / "mine").exists()
    assert main(["kernels", "generate", "--check", "--output", str(work)]) == 0


def test_one_kernelspec_per_variant():
    tree = kernelspec.render_all(specs.load_all())
    names = {rel.split("/")[0] for rel in tree}
    expected = {f"dockyard-{s.name}-{v}" for s in specs.load_all() for v in s.variants}
    assert names == expected
    for name in names:
        assert {f"{name}/kernel.json", f"{name}/logo-32x32.png", f"{name}/logo-64x64.png"} <= tree.keys()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("pytorch:cpu", "PyTorch 2.13.0 (CPU, container)"),
        ("pytorch:cuda", "PyTorch 2.13.0 (CUDA, container)"),
        ("pytorch:cuda-12", "PyTorch 2.13.0 (CUDA 12, container)"),
        ("minimal:cuda", "Python 3.11 minimal (CUDA, container)"),
        ("minimal:cpu", "Python 3.11 minimal (CPU, container)"),
        ("jax:cpu", "JAX 0.10.2 (CPU, container)"),
        ("tensorflow:cuda", "TensorFlow 2.21.0 (CUDA, container)"),
    ],
)
def test_display_names_say_framework_version_variant_and_container(ref, expected):
    name, variant = specs.parse_ref(ref)
    s = specs.load(name)
    assert kernelspec.display_name(s, s.variant(variant)) == expected


def test_display_names_are_unique():
    names = [kernelspec.display_name(s, v) for s in specs.load_all() for v in s.variants.values()]
    assert len(names) == len(set(names))


def test_kernel_json_selects_the_provisioner_and_runs_ipykernel_in_the_image():
    for s in specs.load_all():
        for v in s.variants.values():
            data = json.loads(kernelspec.files(s, v)["kernel.json"])
            assert data["argv"] == ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            assert data["language"] == "python"
            assert data["interrupt_mode"] == s.kernel["interrupt_mode"] == "signal"
            assert data["env"] == s.kernel["env"]
            prov = data["metadata"]["kernel_provisioner"]
            assert prov == {
                "provisioner_name": "dockyard-docker-provisioner",
                "config": {"env": s.name, "variant": v.name},
            }
            assert data["metadata"]["debugger"] is True
            assert data["metadata"]["dockyard"]["gpu"] == v.gpu
            # Nothing machine-specific: the same file is right on every machine.
            text = json.dumps(data)
            assert "/root" not in text
            assert "/home" not in text
            assert str(REPO) not in text


def test_provisioner_entry_point_is_registered():
    from importlib.metadata import entry_points

    names = [ep.name for ep in entry_points(group="jupyter_client.kernel_provisioners")]
    assert kernelspec.PROVISIONER_NAME in names


def test_kernel_json_format_is_stable():
    s = specs.load("minimal")
    data = kernelspec.files(s, s.variant("cpu"))["kernel.json"]
    assert data.endswith(b"}\n")
    assert not data.endswith(b"\n\n")
    assert data == (json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Decode our palette PNGs with nothing but zlib: proves they are valid PNGs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 3)
    return width, height, zlib.decompress(chunks[b"IDAT"])


def test_logos_are_valid_pngs_distinct_per_framework_and_reproducible():
    seen = set()
    for framework in ("python", "pytorch", "tensorflow", "jax", "mxnet"):
        for size in logos.SIZES:
            data = logos.png(framework, size)
            assert data == logos.png(framework, size)
            w, h, raw = _png_pixels(data)
            assert (w, h) == (size, size)
            assert len(raw) == size * (size + 1)
            assert len(set(raw)) >= 3  # transparent corners, tile, monogram
            seen.add(data)
    assert len(seen) == 10


def _jupyter_env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    env["JUPYTER_DATA_DIR"] = str(prefix / "data")  # keep the user's own data dir out of the listing
    return env


def _listed(env: dict[str, str], prefix: Path) -> dict[str, dict]:
    """`jupyter kernelspec list --json`, limited to kernelspecs under prefix (the machine may have its own)."""
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    found = json.loads(listing.stdout)["kernelspecs"]
    return {n: info for n, info in found.items() if Path(info["resource_dir"]).is_relative_to(prefix)}


@pytest.fixture
def isolated_jupyter(jupyter_prefix) -> Path:
    return jupyter_prefix


PYTORCH = ("pytorch:cpu", "pytorch:cuda", "pytorch:cuda-12")


def test_install_into_prefix_is_seen_by_jupyter_and_remove_works(isolated_jupyter, capsys):
    prefix = isolated_jupyter
    env = _jupyter_env(prefix)
    dockyard = [sys.executable, "-m", "dockyard"]
    subprocess.run(
        # every pytorch variant by name (a bare 'pytorch' is its default variant, as in every command)
        [*dockyard, "kernels", "install", "--include-unbuilt", "minimal:cpu", *PYTORCH, "--prefix", str(prefix)],
        env=env,
        check=True,
        capture_output=True,
    )
    found = _listed(env, prefix)  # what Jupyter itself sees
    pytorch_all = {"dockyard-pytorch-cpu", "dockyard-pytorch-cuda", "dockyard-pytorch-cuda-12"}
    assert set(found) == {"dockyard-minimal-cpu", *pytorch_all}
    for info in found.values():
        assert info["spec"]["metadata"]["kernel_provisioner"]["provisioner_name"] == "dockyard-docker-provisioner"
    s = specs.load("pytorch")
    installed = Path(found["dockyard-pytorch-cpu"]["resource_dir"])
    assert {p.name: p.read_bytes() for p in installed.iterdir()} == kernelspec.files(
        s, s.variant("cpu")
    )  # exactly what kernels/ holds

    capsys.readouterr()
    assert main(["kernels", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(found)
    assert rows["dockyard-pytorch-cuda"]["env"] == "pytorch:cuda"

    assert main(["kernels", "remove", "dockyard-pytorch-cuda"]) == 0
    assert set(_listed(env, prefix)) == {"dockyard-minimal-cpu", *pytorch_all} - {"dockyard-pytorch-cuda"}
    assert main(["kernels", "remove"]) == 0  # all of ours
    assert _listed(env, prefix) == {}
    assert "removed" in capsys.readouterr().out


def test_remove_refuses_foreign_and_unknown_kernels(isolated_jupyter, capsys):
    foreign = isolated_jupyter / "share" / "jupyter" / "kernels" / "dockyard-lookalike"
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text('{"argv": ["python"], "display_name": "not ours", "language": "python"}\n')
    assert main(["kernels", "remove", "dockyard-lookalike"]) == 2
    assert "not installed by dockyard" in capsys.readouterr().err
    assert foreign.exists()
    assert main(["kernels", "remove", "dockyard-nothing-cpu"]) == 2
    assert "No kernel named" in capsys.readouterr().err


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """main(argv) in a forked child running as nobody (root may write anywhere; CI runs as root), with
    everything it imports loaded before the fork: nobody may not read root's Python. (exit code, stderr)"""
    with tempfile.TemporaryDirectory() as warm:  # the same command once as root: every module it needs loaded
        main([*argv[:-1], warm])
    cache = Path(tempfile.mkdtemp(prefix="dockyard-nobody-cache-"))
    cache.chmod(0o777)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ["XDG_CACHE_HOME"] = str(cache)
            with os.fdopen(write, "w") as err, contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except BaseException:
                    traceback.print_exc()  # into the pipe: the test's failure message
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as err:
        text = err.read()
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    shutil.rmtree(cache, ignore_errors=True)
    return code, text


def test_install_where_not_writable_is_a_clear_error(tmp_path, capsys):
    base = Path(tempfile.mkdtemp(prefix="dockyard-unwritable-"))  # not under tmp_path: nobody may enter that
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        argv = ["kernels", "install", "--include-unbuilt", "minimal:cpu", "--prefix", str(locked)]
        if os.geteuid() == 0:
            code, err = _as_nobody(argv)
        else:
            code, err = main(argv), capsys.readouterr().err
        assert code == 2, err
        assert "Cannot install kernelspec" in err
        assert "Permission denied" in err
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_curve_encryption_declared_only_for_ipykernel_7(tmp_envs):
    """jupyter_client encrypts kernel traffic only for kernelspecs that declare CurveZMQ support."""
    path = copy_spec("minimal", tmp_envs)
    s = specs.load("minimal")
    assert kernelspec.kernel_json(s, s.variant())["metadata"]["supported_encryption"] == ["curve"]
    path.write_text(path.read_text().replace("ipykernel==7.4.0", "ipykernel==6.29.5"))
    s = specs.load("minimal")
    assert "supported_encryption" not in kernelspec.kernel_json(s, s.variant())["metadata"]
