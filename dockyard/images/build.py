"""BuildPlan → image, through the docker SDK, streaming steps to a reporter and a full log."""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import docker
import docker.errors
import requests
import urllib3

from .. import paths
from ..config import PROXY_VARIABLES, BuildOptions
from ..engine import ensure_tag, find_image
from ..errors import BuildError, EngineError
from . import preflight
from .build_mutex import tag_lock
from .plan import BuildPlan
from .render import FINAL_STAGE
from .steps import StepParser, count_instructions, plain

# The image a step made: Docker's " ---> ID", buildah's "--> ID".
_LAYER = re.compile(r"^\s*-{2,3}> ([0-9a-f]{12,64})$")


class Reporter(Protocol):
    """Receives build progress; the CLI draws it with rich; other front ends pass their own."""

    def step(self, number: int, total: int, text: str) -> None: ...
    def output(self, line: str) -> None: ...


class NullReporter:
    def step(self, number: int, total: int, text: str) -> None:
        pass

    def output(self, line: str) -> None:
        pass


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    built: bool
    seconds: float
    log_path: Path | None
    size: int = 0  # bytes, as `docker images` shows them


def log_path_for(plan: BuildPlan) -> Path:
    directory = paths.cache_dir() / "logs"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{plan.spec.name}-{plan.variant.name}-{plan.content_hash}.log"


def _ensure_base(client: docker.DockerClient, plan: BuildPlan, options: BuildOptions, reporter: Reporter) -> None:
    if find_image(client, plan.base) is not None:
        return
    override_hint = (
        f"dockyard build {plan.variant.ref} --base-override '{plan.variant.base}=LOCAL_IMAGE' "
        "(or DOCKYARD_BASE_OVERRIDES / base_overrides in the config file)"
    )
    if options.pull == "never":
        raise BuildError(
            f"Base image '{plan.base}' of {plan.variant.ref} is not available locally, and pulling is off (pull: "
            "never)",
            fix=(
                "load or build that image locally, or map the base to a local image without editing the spec: "
                f"{override_hint}"
            ),
        )
    reporter.output(f"Pulling base image {plan.base} ...")
    try:
        client.images.pull(plan.base)
    except docker.errors.APIError as exc:
        raise BuildError(
            f"Base image '{plan.base}' of {plan.variant.ref} is not available locally and could not be pulled "
            f"({exc.explanation or exc})",
            fix=(
                f"pull it ('docker pull {plan.base}'), or map it to a local image without editing the spec: "
                f"{override_hint}"
            ),
        ) from None


def _remove_if_untagged(client: docker.DockerClient, image_id: str | None) -> None:
    if image_id is None:
        return
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id, noprune=False)
    except (docker.errors.ImageNotFound, docker.errors.APIError):
        pass  # gone already, or another build is using it right now


def _keep_stage(client: docker.DockerClient, plan: BuildPlan, image_id: str | None) -> None:
    """The Python stage's image (the venv before COPY --from) would stay behind untagged, as big as the venv
    plus the wheels. One per variant is kept, tagged, so a change to the image's last layers (variables, kit)
    rebuilds in seconds; the one it replaces is removed."""
    if image_id is None:
        return
    previous = find_image(client, plan.stage_tag)
    stage = client.images.get(image_id)
    ensure_tag(stage, plan.stage_tag)
    if previous is not None and previous.id != stage.id:
        _remove_if_untagged(client, previous.id)


def build(
    client: docker.DockerClient,
    plan: BuildPlan,
    options: BuildOptions,
    reporter: Reporter | None = None,
    *,
    rebuild: bool = False,
) -> BuildResult:
    """Build plan's image unless an image with its content tag exists (then it is a no-op)."""
    if plan.lock_error is not None:
        raise plan.lock_error  # before any download: a missing or stale lock, or CUDA in a CPU variant
    reporter = reporter or NullReporter()
    start = time.monotonic()
    image = None if rebuild else find_image(client, plan.tag)
    if image is None:
        _ensure_base(client, plan, options, reporter)  # also the image the lock's container runs
        # One build per tag at a time on this engine, whoever asks (any user, any host of a remote engine):
        # a second `dockyard build`, kernel auto-build or dev container opening waits, then finds the image
        # (concurrent classic builds of the same Dockerfile race in the daemon and can leave intermediate
        # containers behind).
        with tag_lock(client, plan.tag, plan.base, reporter.output):
            image = None if rebuild else find_image(client, plan.tag)
            if image is None:
                reporter.output("Checking the package indexes the build uses ...")
                preflight.check(client, plan.spec, plan.variant, plan.base, options)  # seconds, not minutes of retries
                return _build(client, plan, options, reporter, rebuild=rebuild, start=start)
    ensure_tag(image, plan.alias)
    return BuildResult(plan.tag, image.id, False, time.monotonic() - start, None, image.attrs.get("Size", 0))


def _build(
    client: docker.DockerClient,
    plan: BuildPlan,
    options: BuildOptions,
    reporter: Reporter,
    *,
    rebuild: bool,
    start: float,
) -> BuildResult:
    log_path = log_path_for(plan)
    previous = find_image(client, plan.tag) if rebuild else None
    buildargs: dict[str, str] = {}
    for key, names in PROXY_VARIABLES.items():
        if key in options.proxy:
            buildargs |= dict.fromkeys(names, options.proxy[key])  # predefined ARGs: not baked into the image
    steps = StepParser(count_instructions(plan.dockerfile), len(plan.labels))
    image_id = None
    layer = None  # the image the last step made ("---> ID")
    stage_image = None  # the python-packages stage's last layer: untagged once the build ends
    with tempfile.TemporaryFile() as ctx, log_path.open("w", encoding="utf-8") as log:
        plan.write_context(ctx)
        ctx.seek(0)
        stream = client.api.build(
            fileobj=ctx,
            custom_context=True,
            tag=plan.tag,
            labels=plan.labels,
            buildargs=buildargs,
            rm=True,
            forcerm=True,  # remove intermediate containers even when a step fails
            nocache=rebuild,
            decode=True,
        )
        try:
            for chunk in stream:
                if "error" in chunk:
                    message = plain(chunk.get("errorDetail", {}).get("message") or chunk["error"])
                    log.write(f"ERROR: {message}\n")
                    step_text, step_lines = steps.failure(message)
                    output = "\n".join(step_lines[-60:]).rstrip()
                    _remove_if_untagged(client, stage_image)
                    raise BuildError(
                        f"Building {plan.variant.ref} failed at '{step_text}': {message.strip()}\n"
                        f"--- output of that step ---\n{output}\n---",
                        fix=f"read the step's output above (full log: {log_path} ); for TLS/certificate errors add "
                        "your CA with --ca-cert, "
                        "for unreachable package indexes use --pip-index-url or --wheelhouse",
                    )
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text = plain(chunk.get("stream") or "")  # raw escapes would show as text ("[91m") in every front end
                if not text:
                    continue
                log.write(text)
                for line in text.splitlines():
                    if (layer_match := _LAYER.match(line)) is not None:
                        layer = layer_match.group(1)
                    if step := steps.feed(line):
                        if step.text == FINAL_STAGE:
                            stage_image = layer
                        reporter.step(step.number, step.total, step.text)
                    elif line.strip():
                        reporter.output(line)
        except docker.errors.APIError as exc:
            _remove_if_untagged(client, stage_image)
            raise BuildError(
                f"The Docker engine refused the build of {plan.variant.ref}: {exc.explanation or exc}",
                fix=f"see {log_path}",
            ) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise EngineError(
                f"Lost the connection to the Docker engine while building {plan.variant.ref} ({type(exc).__name__})",
                fix=(
                    "check that dockerd is still running ('dockyard doctor'), then build again; partial log: "
                    f"{log_path}"
                ),
            ) from None
    _keep_stage(client, plan, stage_image)
    image = client.images.get(image_id or plan.tag)
    ensure_tag(image, plan.alias)
    if previous is not None and previous.id != image.id:
        _remove_if_untagged(client, previous.id)  # --rebuild took its tags: nothing would name it any more
    return BuildResult(plan.tag, image.id, True, time.monotonic() - start, log_path, image.attrs.get("Size", 0))
