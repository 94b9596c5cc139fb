"""The CLI imports only what the command given needs (its start-up time is measured in bench/cli_bench.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("docker", "requests", "rich", "jupyter_client", "paramiko", "jsonschema")


def _modules_after(code: str, **env: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_version_imports_nothing_heavy():
    loaded = _modules_after("from dockyard.cli import main\nmain(['--version'])")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_a_command_imports_only_its_own_module():
    code = "from dockyard.cli import main\ntry:\n    main(['env', 'list'])\nexcept SystemExit:\n    pass"
    loaded = _modules_after(code)
    assert "dockyard.cli.env_cmd" in loaded
    assert not {"dockyard.cli.kernels_cmd", "dockyard.cli.k8s_cmd", "dockyard.cli.doctor_cmd"} & loaded
    assert "jupyter_client" not in loaded
    assert "docker" not in loaded  # reading specs needs no engine (gpu/ loads its engine parts on first use)


PROGRAM = """
import sys
sys.argv = ["dockyard", "images", "--help"]
from dockyard.cli import main
try:
    main()
except SystemExit:
    pass
"""


def test_run_as_a_program_the_sdk_skips_paramiko_unless_the_engine_is_ssh():
    unix = _modules_after(PROGRAM, DOCKER_HOST="unix:///x.sock")
    assert "docker" in unix
    assert not [m for m in unix if m.split(".")[0] == "paramiko"]
    assert "paramiko" in _modules_after(PROGRAM, DOCKER_HOST="ssh://someone@127.0.0.1")
