"""The environment panel's REST API (dockyard/frontends/panel/server.py), served by a real `jupyter server`
subprocess on 127.0.0.1 with the extension enabled by the config file the wheel installs, against the real
engine: listing, status, real builds with their progress streamed in order, Jupyter's auth and XSRF rules,
4xx answers with a message, and a server that keeps answering while a build runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dockyard import gpu, specs
from dockyard.config import load_settings
from dockyard.engine import find_image
from dockyard.images.build_mutex import tag_lock
from dockyard.images.plan import make_plan

from .helpers import JupyterProc, copy_spec, install_kernelspecs, restamp_locks, start_jupyter, stop_jupyter

pytestmark = pytest.mark.engine

API = "/dockyard/api"


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory) -> Path:
    return install_kernelspecs(tmp_path_factory.mktemp("panel-kernels"))


@pytest.fixture(scope="module")
def server(jupyter_path, tmp_path_factory, built) -> Iterator[JupyterProc]:
    built("minimal:cpu")
    proc = start_jupyter("server", jupyter_path, tmp_path_factory.mktemp("panel-server"))
    yield proc
    stop_jupyter(proc)


@pytest.fixture
def server_factory(jupyter_path, tmp_path) -> Iterator:
    """Servers started inside a test (after it set DOCKYARD_* variables they must see); all stopped after."""
    started: list[JupyterProc] = []

    def start(**env: str) -> JupyterProc:
        started.append(start_jupyter("server", jupyter_path, tmp_path / f"server{len(started)}", **env))
        return started[-1]

    yield start
    for proc in started:
        stop_jupyter(proc)


def events(server: JupyterProc, build_id: str, *, after: int | None = None, on_event=None) -> list[dict[str, Any]]:
    """Reads a build's server-sent events to the end of the stream (the build's end)."""
    query = f"?after={after}" if after is not None else ""
    out: list[dict[str, Any]] = []
    with server.api("GET", f"{API}/builds/{build_id}/events{query}", stream=True, timeout=600) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in r.iter_lines(decode_unicode=True):
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if "data" in fields:
                event = json.loads(fields["data"])
                assert fields["event"] == event["type"]
                assert int(fields["id"]) == event["seq"]
                out.append(event)
                if on_event:
                    on_event(event)
            fields = {}
    return out


def by_ref(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["ref"]: env for env in answer["environments"]}


def test_lists_every_environment_with_image_kernel_and_gpu_facts(server, docker_client) -> None:
    r = server.api("GET", f"{API}/environments")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine"]["ok"] is True
    assert answer["problems"] == []
    envs = by_ref(answer)
    assert set(envs) == {v.ref for _, v in specs.expand([])}

    minimal = envs["minimal:cpu"]
    spec, variant = specs.resolve("minimal:cpu")
    plan = make_plan(spec, variant, load_settings().build)
    assert minimal["image"]["status"] == "built"
    assert minimal["image"]["tag"] == plan.tag
    assert minimal["image"]["size"] == docker_client.images.get(plan.tag).attrs["Size"]
    assert minimal["image"]["size"] > 10_000_000
    assert minimal["kernel"] == {
        "name": "dockyard-minimal-cpu",
        "display_name": "Python 3.11 minimal (CPU, container)",
        "installed": True,
    }
    assert minimal["framework"] == {"name": "python", "version": "3.11"}
    assert minimal["gpu"] == {"wants": "none", "available": gpu.assess(docker_client, docker_client.info()).usable}
    assert minimal["problems"] == []
    assert minimal["build"] is None
    assert envs["pytorch:cuda"]["gpu"]["wants"] == "optional"
    assert envs["pytorch:cuda"]["framework"] == {"name": "pytorch", "version": "2.13.0"}


def test_one_environment_and_clear_404s_for_unknown_ones(server) -> None:
    r = server.api("GET", f"{API}/environments/minimal:cpu")
    assert r.status_code == 200, r.text
    assert r.json()["environment"]["ref"] == "minimal:cpu"
    assert server.api("GET", f"{API}/environments/minimal").json()["environment"]["ref"] == "minimal:cpu"

    r = server.api("GET", f"{API}/environments/nope:cpu")
    assert r.status_code == 404
    assert "No environment named 'nope'" in r.json()["message"]
    assert "Fix:" in r.json()["message"]
    r = server.api("GET", f"{API}/environments/minimal:gpu")
    assert r.status_code == 404
    assert "has no variant 'gpu'" in r.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/environments"),
        ("GET", "/environments/minimal:cpu"),
        ("GET", "/builds"),
        ("POST", "/builds"),
        ("GET", "/builds/abc/events"),
    ],
)
def test_unauthenticated_requests_are_refused(server, method, path) -> None:
    body = json.dumps({"ref": "minimal:cpu"})
    assert server.api(method, API + path, auth=False, data=body).status_code == 403
    wrong = {"Authorization": "token not-the-token"}
    assert server.api(method, API + path, auth=False, headers=wrong, data=body).status_code == 403
    assert all(
        b["ref"] != "minimal:cpu" or b["state"] != "running"
        for b in server.api("GET", f"{API}/builds").json()["builds"]
    )


def _logged_in(server: JupyterProc) -> requests.Session:
    """A browser-like session: the login form, then only cookies (no token header)."""
    session = requests.Session()
    session.get(f"{server.url}/login", timeout=30).raise_for_status()
    form = {"password": server.token, "_xsrf": session.cookies["_xsrf"]}
    r = session.post(f"{server.url}/login", data=form, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    return session


def test_xsrf_is_enforced_on_post(server) -> None:
    session = _logged_in(server)
    assert session.get(f"{server.url}{API}/environments", timeout=60).status_code == 200  # cookie auth works
    body = json.dumps({"ref": "minimal:cpu"})
    r = session.post(f"{server.url}{API}/builds", data=body, timeout=30)
    assert r.status_code == 403, r.text
    assert "_xsrf" in r.json()["message"]
    assert server.api("GET", f"{API}/builds").json() == {"builds": []}

    r = session.post(f"{server.url}{API}/builds", data=body, headers={"X-XSRFToken": session.cookies["_xsrf"]})
    assert r.status_code == 202, r.text
    # minimal:cpu is built: the build is the no-op answer, streamed like any other.
    [*_, last] = events(server, r.json()["id"])
    assert last["type"] == "succeeded"
    assert last["built"] is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/builds", "not json", 400, "not JSON"),
        ("POST", "/builds", "[]", 400, '"ref"'),
        ("POST", "/builds", "{}", 400, '"ref"'),
        ("POST", "/builds", '{"ref": 3}', 400, '"ref"'),
        ("POST", "/builds", '{"ref": "  "}', 400, '"ref"'),
        ("POST", "/builds", '{"ref": "minimal:cpu", "rebuild": "yes"}', 400, '"rebuild" must be true or false'),
        ("POST", "/builds", '{"ref": "minimal:cpu", "force": true}', 400, "Unknown field(s) force"),
        ("POST", "/builds", '{"ref": "minimal:cpu", "pull": 1}', 400, '"pull" must be true or false'),
        ("GET", "/registry/nope:cpu", None, 404, "No environment named 'nope'"),
        ("POST", "/builds", '{"ref": "nope:cpu"}', 404, "No environment named 'nope'"),
        ("GET", "/builds/0123456789ab", None, 404, "No build with id '0123456789ab'"),
        ("GET", "/builds/0123456789ab/events?after=x", None, 400, "'after' must be an event number"),
        ("GET", "/images", None, 404, "has no '/dockyard/api/images'"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(server, method, path, body, status, words) -> None:
    builds_before = server.api("GET", f"{API}/builds").json()["builds"]
    r = server.api(method, API + path, data=body)
    assert r.status_code == status, r.text
    reply = r.json()
    assert words in reply["message"]
    assert not reply.get("traceback")
    assert server.api("GET", f"{API}/builds").json()["builds"] == builds_before  # nothing started


def _fresh_minimal(tmp_envs: Path, **replace: str) -> Path:
    """A copy of minimal under DOCKYARD_ENVS_PATH whose image does not exist yet: a spec-wide variable
    changes only the image's last layers, so the build is real but quick (its other layers are cached)."""
    path = copy_spec("minimal", tmp_envs)
    text = path.read_text() + f'env:\n  TEST_RUN_NONCE: "{time.time_ns()}"\n'
    for old, new in replace.items():
        text = text.replace(old, new)
    path.write_text(text)
    if replace:
        restamp_locks(path)
    return path


def test_build_streams_progress_in_order_while_the_server_keeps_answering(
    tmp_envs, server_factory, built, docker_client
) -> None:
    original = built("minimal:cpu")
    _fresh_minimal(tmp_envs)
    spec, variant = specs.resolve("minimal:cpu")
    plan = make_plan(spec, variant, load_settings().build)
    server = server_factory()
    try:
        before = server.api("GET", f"{API}/environments/minimal:cpu").json()["environment"]
        assert before["image"]["status"] == "outdated"  # the suite's image is there, this spec's is not
        assert any("dockyard build minimal:cpu" in p for p in before["problems"]), before["problems"]

        # Hold the tag's lock (as a concurrent `dockyard build` would): the build thread waits, the server must not.
        with tag_lock(docker_client, plan.tag, plan.base, lambda _line: None):
            r = server.api("POST", f"{API}/builds", json={"ref": "minimal:cpu"})
            assert r.status_code == 202, r.text
            job = r.json()
            again = server.api("POST", f"{API}/builds", json={"ref": "minimal"})
            assert again.status_code == 200  # one build per variant: the running one
            assert again.json()["id"] == job["id"]
            t0 = time.monotonic()
            assert server.api("GET", "/api/status").status_code == 200
            listed = server.api("GET", f"{API}/environments/minimal:cpu").json()["environment"]
            assert time.monotonic() - t0 < 10
            assert listed["build"] == job["id"]
            assert server.api("GET", f"{API}/builds/{job['id']}").json()["state"] == "running"

        answered_during_steps: list[float] = []

        def during(event: dict[str, Any]) -> None:
            if event["type"] == "step" and event["number"] == 2:
                t = time.monotonic()
                assert server.api("GET", f"{API}/environments").status_code == 200
                answered_during_steps.append(time.monotonic() - t)

        got = events(server, job["id"], on_event=during)
        assert [e["seq"] for e in got] == list(range(len(got)))
        assert got[0] == {"type": "start", "tag": plan.tag, "seq": 0}
        assert any(e["type"] == "output" and "waiting for another build" in e["line"] for e in got)
        steps = [e for e in got if e["type"] == "step"]
        assert [s["number"] for s in steps] == list(range(1, len(steps) + 1))
        assert {s["total"] for s in steps} == {len(steps)}
        assert got[-1]["type"] == "succeeded"
        assert got[-1]["built"] is True
        assert got[-1]["tag"] == plan.tag
        assert answered_during_steps, "the build had no step 2"
        assert answered_during_steps[0] < 10
        assert find_image(docker_client, plan.tag) is not None

        # A follower that reconnects resumes after the last event it saw.
        assert events(server, job["id"], after=len(got) - 3) == got[-2:]
        summary = server.api("GET", f"{API}/builds/{job['id']}").json()
        assert summary["state"] == "succeeded"
        assert summary["log"] == got
        after = server.api("GET", f"{API}/environments/minimal:cpu").json()["environment"]
        assert after["image"]["status"] == "built"
        assert after["build"] is None
    finally:
        docker_client.images.get(original.image_id).tag(plan.alias)  # give the alias back to the suite's image
        if find_image(docker_client, plan.tag):
            docker_client.images.remove(plan.tag)


def test_failed_build_reports_its_failing_step(tmp_envs, server_factory, built, docker_client) -> None:
    built("minimal:cpu")
    # The base has Python 3.11: the image's own check fails at once, with no download.
    _fresh_minimal(tmp_envs, **{'python: "3.11"': 'python: "3.12"', 'version: "3.11"': 'version: "3.12"'})
    server = server_factory()
    r = server.api("POST", f"{API}/builds", json={"ref": "minimal:cpu"})
    assert r.status_code == 202, r.text
    *_, last = events(server, r.json()["id"])
    assert last["type"] == "failed"
    assert last["step"].startswith("RUN python3 -c 'import sys; v = sys.version_info")
    assert "base image has Python 3.11 but the spec asks for 3.12" in last["message"]
    assert "Fix:" in last["message"]
    assert server.api("GET", f"{API}/builds/{r.json()['id']}").json()["state"] == "failed"


def test_daemon_down_is_a_message_not_an_error(server_factory, tmp_path) -> None:
    dead = tmp_path / "no-daemon.sock"
    server = server_factory(DOCKER_HOST=f"unix://{dead}")
    r = server.api("GET", f"{API}/environments")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine"]["ok"] is False
    assert "Cannot reach the Docker engine" in answer["engine"]["error"]
    assert str(dead) in answer["engine"]["error"]
    assert by_ref(answer)["minimal:cpu"]["image"]["status"] == "unknown"
    r = server.api("POST", f"{API}/builds", json={"ref": "minimal:cpu"})
    assert r.status_code == 202
    *_, last = events(server, r.json()["id"])
    assert last["type"] == "failed"
    assert "Cannot reach the Docker engine" in last["message"]


def test_gpu_required_but_absent_is_a_message(server_factory, docker_client) -> None:
    server = server_factory(DOCKYARD_GPU="required")
    envs = by_ref(server.api("GET", f"{API}/environments").json())
    assert any(
        "GPU mode is 'required' but minimal:cpu is a CPU environment" in p for p in envs["minimal:cpu"]["problems"]
    )
    if not gpu.assess(docker_client, docker_client.info()).usable:  # this machine: no GPU for containers
        assert envs["pytorch:cuda"]["gpu"]["available"] is False
        assert any("requires a GPU, but the Docker engine gives none" in p for p in envs["pytorch:cuda"]["problems"])
