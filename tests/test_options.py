"""The one table of options (dockyard/options.py): every option read from the config file and the environment
with the same precedence, the docs' table made from it, config errors as good as spec errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard import config, options
from dockyard.config import load_settings
from dockyard.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

# One line per option: a config-file value, a different environment value, and what each reads as. A new option
# without a line here fails test_every_option_has_a_sample.
SAMPLES: dict[str, tuple[Any, str, Any, Any]] = {
    "build.ca_certs": (["/etc/hosts"], "/etc/passwd", (Path("/etc/hosts"),), (Path("/etc/passwd"),)),
    "build.pip_index_url": ("https://a.example/simple", "https://b.example/simple", None, None),
    "build.pip_extra_index_urls": (
        ["https://a.example/s"],
        "https://b.example/s",
        ("https://a.example/s",),
        ("https://b.example/s",),
    ),
    "build.wheelhouse": ("/etc", "/usr", Path("/etc"), Path("/usr")),
    "build.ignore_spec_indexes": (False, "1", False, True),
    "build.proxy.http": ("http://file-proxy:3128", "http://env-proxy:3128", None, None),
    "build.proxy.https": ("http://file-proxy:3128", "http://env-proxy:3128", None, None),
    "build.proxy.no_proxy": ("file.example", "env.example", None, None),
    "build.pull": ("never", "missing", None, None),
    "base_overrides": ({"a:1": "b:1"}, "c:1=d:1", None, {"a:1": "b:1", "c:1": "d:1"}),
    "registry.host": ("registry.example.com:5000", "127.0.0.1:5000", None, None),
    "registry.prefix": ("team/ml", "other", None, None),
    "registry.ca_cert": ("/etc/hosts", "/etc/passwd", Path("/etc/hosts"), Path("/etc/passwd")),
    "registry.pull_first": (False, "1", False, True),
    "kernels.gpu": ("off", "required", None, None),
    "kernels.gpus": ("any-free", "shared:1@0.5", None, None),
    "kernels.gpu_wait": (30, "600", 30, 600),
    "kernels.network": ("bridge", "host", None, None),
    "kernels.workspace_root": ("/opt/team-a", "/opt/team-b", Path("/opt/team-a"), Path("/opt/team-b")),
    "kernels.auto_build": (False, "1", False, True),
    "kernels.pool.size": (3, "5", 3, 5),
    "kernels.pool.max_containers": (7, "", 7, None),
    "kernels.pool.max_memory": ("2g", "", "2g", None),
    "kernels.cull.idle_timeout": (600, "3600", 600, 3600),
    "kernels.cull.gpu_idle_timeout": (300, "900", 300, 900),
    "kernels.cull.busy": (False, "1", False, True),
    "kernels.cull.connected": (False, "1", False, True),
    "kernels.cull.interval": (30, "5", 30, 5),
}


def _write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> pytest.MonkeyPatch:
    """No option set from outside: the test's file and variables only."""
    for option in options.OPTIONS:
        for name in option.env:
            if name != "DOCKYARD_CONFIG":
                monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return monkeypatch


def test_every_option_has_a_sample():
    assert set(SAMPLES) == set(options.BY_KEY)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_the_environment_beats_the_config_file(key, clean_env, tmp_path):
    file_value, env_text, file_read, env_read = SAMPLES[key]
    option = options.BY_KEY[key]
    clean_env.setenv("DOCKYARD_CONFIG", str(_write_config(tmp_path, _nested(key, file_value))))
    assert config._values(Path(os.environ["DOCKYARD_CONFIG"]))[key] == (file_value if file_read is None else file_read)
    if not option.env:
        return
    clean_env.setenv(option.env[0], env_text)
    assert config._values(Path(os.environ["DOCKYARD_CONFIG"]))[key] == (env_text if env_read is None else env_read)


def test_proxy_variables_beat_the_config_files_proxy(clean_env, tmp_path):
    """README's precedence rule (environment over file) holds for proxies too (the file used to win)."""
    path = _write_config(tmp_path, {"build": {"proxy": {"https": "http://file-proxy:3128", "no_proxy": "a.example"}}})
    clean_env.setenv("DOCKYARD_CONFIG", str(path))
    clean_env.setenv("https_proxy", "http://env-proxy:3128")
    proxy = load_settings().build.proxy
    assert proxy == {"https": "http://env-proxy:3128", "no_proxy": "a.example"}


def test_kernel_network_and_search_paths_are_in_the_table():
    names = {name for o in options.OPTIONS for name in o.env}
    assert {"DOCKYARD_KERNEL_NETWORK", "DOCKYARD_ENVS_PATH", "DOCKYARD_STACKS_PATH", "DOCKYARD_CONFIG"} <= names


def test_docs_table_is_the_options_table():
    text = (REPO / "docs" / "configuration.md").read_text()
    start = text.index("<!-- settings table: generated from dockyard/options.py -->\n")
    end = text.index("<!-- end of settings table -->")
    documented = text[start:end].split("\n", 1)[1]
    assert documented == options.markdown_table(), "run: python -m dockyard.options and paste it in the docs"


def test_the_schema_is_made_from_the_table():
    schema = config.CONFIG_SCHEMA
    assert schema["properties"]["kernels"]["properties"]["pool"]["properties"]["size"]["maximum"] == 16
    assert schema["properties"]["build"]["properties"]["proxy"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kernels:\n  netwrok: host\n", ["line 2", "unknown key 'netwrok' in kernels", "did you mean 'network'"]),
        ("kernels: {}\nbiuld: {}\n", ["line 2", "unknown key 'biuld'", "did you mean 'build'"]),
        ("kernels:\n  gpu: always\n", ["line 2", "kernels.gpu", '"always"', "auto, off, required"]),
        ("build:\n  pip_index_url: ftp://x\n", ["line 2", "build.pip_index_url", "http(s)://"]),
        ("kernels:\n  pool:\n    max_memory: lots\n", ["line 3", "kernels.pool.max_memory", "'6g'"]),
    ],
)
def test_config_errors_name_file_line_key_value_and_fix(text, expected, clean_env, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    clean_env.setenv("DOCKYARD_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert str(path) in message
    assert "Fix:" in message
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_a_file_value_is_checked_where_it_is_written(clean_env, tmp_path):
    path = _write_config(tmp_path, {"build": {"wheelhouse": str(tmp_path / "missing")}})
    clean_env.setenv("DOCKYARD_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"config\.yaml, line 2: wheelhouse .* is not a directory"):
        load_settings()


def test_generators_write_into_the_checkout_whatever_the_cwd(tmp_path):
    import subprocess

    for command in (["kernels", "generate", "--check"], ["devcontainer", "generate", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard", *command], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert str(REPO) in proc.stdout
    assert not any(tmp_path.iterdir())


def test_flags_beat_the_environment(clean_env):
    import argparse

    from dockyard.cli.shared import add_build_flags

    clean_env.setenv("DOCKYARD_PIP_INDEX_URL", "https://env.example/simple")
    clean_env.setenv("DOCKYARD_PULL", "missing")
    clean_env.setenv("DOCKYARD_BASE_OVERRIDES", "a:1=b:1")
    clean_env.setenv("DOCKYARD_CA_CERTS", "/etc/passwd")
    parser = argparse.ArgumentParser()
    add_build_flags(parser)
    argv = ["--pip-index-url", "https://flag.example/simple", "--no-pull", "--base-override", "c:1=d:1"]
    args = parser.parse_args([*argv, "--ca-cert", "/etc/hosts", "--ca-cert", "/etc/group"])
    build = load_settings().build.with_flags(**vars(args))
    assert build.pip_index_url == "https://flag.example/simple"
    assert build.pull == "never"
    assert build.base_overrides == {"a:1": "b:1", "c:1": "d:1"}  # a flag adds to the variable's overrides
    assert build.ca_certs == (Path("/etc/hosts"), Path("/etc/group"))
    assert load_settings().build.with_flags(**vars(parser.parse_args([]))) == load_settings().build
    with pytest.raises(ConfigError, match="--pip-index-url: 'ftp://x' is not a package index URL"):
        load_settings().build.with_flags(**vars(parser.parse_args(["--pip-index-url", "ftp://x"])))
