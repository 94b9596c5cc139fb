"""The command line's contract: one meaning of an environment reference in every command, documented exit codes.

A bare NAME is its default variant (cpu) for build, render, lock, kernels install, devcontainer generate ...;
it used to mean every variant for some of them, so `dockyard build pytorch && dockyard kernels install
pytorch` failed on the unbuilt CUDA variants. Exit status: 0 done, 1 doing it failed, 2 usage error.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from dockyard import specs
from dockyard.cli import main

from .helpers import REPO


def test_a_bare_name_is_the_default_variant_everywhere():
    [(spec, variant)] = specs.expand(["pytorch"])
    assert (spec.name, variant.name) == ("pytorch", "cpu")
    assert specs.resolve("pytorch")[1].ref == variant.ref  # build and render resolve alike
    refs = [v.ref for _, v in specs.expand(["pytorch:cuda", "pytorch", "pytorch:cpu", "minimal"])]
    assert refs == ["pytorch:cuda", "pytorch:cpu", "minimal:cpu"]  # named once each, in order
    assert len(specs.expand([])) == sum(len(s.variants) for s in specs.load_all())  # none: every variant


def test_kernels_install_of_a_bare_name_installs_its_default_variant(tmp_path, capsys):
    assert main(["kernels", "install", "--include-unbuilt", "pytorch", "--prefix", str(tmp_path)]) == 0
    installed = sorted(p.name for p in (tmp_path / "share" / "jupyter" / "kernels").iterdir())
    assert installed == ["dockyard-pytorch-cpu"]


def test_devcontainer_generate_of_a_bare_name_writes_its_default_variant(tmp_path):
    assert main(["devcontainer", "generate", "pytorch", "--workspace", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / ".devcontainer").iterdir()) == ["pytorch"]
    assert main(["devcontainer", "generate", "pytorch:cuda", "--workspace", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / ".devcontainer").iterdir()) == ["pytorch", "pytorch-cuda"]


def test_lock_check_of_a_bare_name_checks_its_default_variant(capsys):
    assert main(["lock", "--check", "pytorch"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "pytorch:cpu" in out or "pytorch-cpu" in out
    assert "cuda" not in out


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["build", "--no-such-flag"], 2),  # argparse's usage error
        (["no-such-command"], 2),
        (["build", "nosuch"], 2),  # a reference that must change
        (["build", "pytorch:nosuch"], 2),
        (["render", "bad ref"], 2),
    ],
)
def test_usage_errors_exit_2_with_one_paragraph(argv, code):
    proc = subprocess.run([sys.executable, "-m", "dockyard", *argv], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failure_to_do_it_exits_1_not_2(monkeypatch):
    """The request is fine, the engine is not there: 1, distinct from a usage error."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/dockyard-test.sock")
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "kernels", "gc"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "Fix:" in proc.stderr


def test_help_documents_references_and_exit_codes():
    out = subprocess.run([sys.executable, "-m", "dockyard", "--help"], capture_output=True, text=True).stdout
    text = " ".join(out.split())
    assert "NAME alone for its default variant" in text
    assert "Exit status: 0 done; 1" in text
    assert "2 usage error" in text
