"""Push a built image to the registry, pull one from it: through the engine (the docker SDK, which sends the login
from Docker's own config and credential store), with the registry checked first and every pulled image checked
against this checkout's spec and lock before it gets a local name.

Locally a pulled image looks exactly like a built one (dockyard/ENV:VARIANT-HASH and the alias): kernels, dev
containers and Compose find it as they find a build. The registry's names are transport names only: they are
removed again once the push or pull is done, and at once when it fails, so nothing half-pulled stays tagged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.images import Image

from ..config import RegistryOptions
from ..engine import ensure_tag, find_image
from ..errors import DockyardError, RegistryError
from ..images.plan import BuildPlan
from . import probe
from .naming import RemoteNames, remote_names, require_registry, split
from .refusals import refusal
from .verify import mismatches, refuse_unless_matching

Output = Callable[[str], None]
# Per-layer progress states: shown once per layer would flood a terminal; the rest (done, exists, digest) is shown.
_BUSY = {"Downloading", "Extracting", "Pushing", "Waiting", "Preparing", "Verifying Checksum"}


@dataclass(frozen=True)
class Transfer:
    names: RemoteNames
    image_id: str
    moved: bool  # False: nothing to do (pull: the content tag was here already)


def push(
    client: docker.DockerClient, plan: BuildPlan, registry: RegistryOptions, output: Output = lambda _l: None
) -> Transfer:
    """Push the content tag and the alias of plan's built image."""
    require_registry(registry, "dockyard push")  # before anything else: the fix when none is set
    image = find_image(client, plan.tag)
    if image is None:
        raise RegistryError(
            f"{plan.variant.ref} is not built here (no image {plan.tag})",
            fix=f"build it first: dockyard build {plan.variant.ref}",
        )
    if wrong := mismatches(plan, image.labels):
        # An image from before the lock label, or one retagged by hand: others would refuse it on pull.
        raise RegistryError(
            f"The local image {plan.tag} does not carry the labels a pull checks ({'; '.join(wrong)})",
            fix=f"build it again with this dockyard: dockyard build --rebuild {plan.variant.ref}",
        )
    names = remote_names(registry, plan)
    push_image(client, image, (names.tag, names.alias), registry, output)
    return Transfer(names, image.id, True)


def push_image(
    client: docker.DockerClient, image: Image, refs: Iterable[str], registry: RegistryOptions, output: Output
) -> None:
    """Push image under each of the registry's names refs (also for images that are not an environment's, such as
    Kubernetes' launcher images)."""
    host = require_registry(registry, "dockyard push")
    probe.check(registry, host)
    refs = tuple(refs)
    with _transport_names(client, image, refs):
        for ref in refs:
            output(f"pushing {ref}")
            repository, tag = split(ref)
            _follow("push", ref, host, output, lambda: client.api.push(repository, tag, stream=True, decode=True))  # noqa: B023 (called at once)


def pull_first(
    client: docker.DockerClient, plan: BuildPlan, registry: RegistryOptions, say: Output = lambda _l: None
) -> bool:
    """Before a build: True when the image is here now from the registry (labels checked). False when it was here
    already (the build is the no-op) or the registry cannot give it: say() tells why, and the caller builds."""
    if not registry.host or find_image(client, plan.tag) is not None:
        return False
    try:
        done = pull(client, plan, registry)
    except DockyardError as exc:
        say(f"not pulled: {exc.text} Building instead.")
        return False
    say(f"pulled {plan.tag} from {done.names.tag} (labels checked), no build")
    return True


def pull(
    client: docker.DockerClient, plan: BuildPlan, registry: RegistryOptions, output: Output = lambda _l: None
) -> Transfer:
    """Pull plan's content tag, check its labels, and give it the local content tag and alias (a no-op when the
    content tag is here already). Raises RegistryError with nothing new left tagged when any step fails."""
    host = require_registry(registry, "dockyard pull")
    names = remote_names(registry, plan)
    here = find_image(client, plan.tag)
    if here is not None:
        ensure_tag(here, plan.alias)
        return Transfer(names, here.id, False)
    probe.check(registry, host)
    had_name = find_image(client, names.tag) is not None  # someone's own `docker pull` of it: left alone
    try:
        output(f"pulling {names.tag}")
        _follow("pull", names.tag, host, output, lambda: client.api.pull(*split(names.tag), stream=True, decode=True))
        image = client.images.get(names.tag)
        refuse_unless_matching(plan, image.labels, names.tag)
    except (RegistryError, docker.errors.ImageNotFound):
        if not had_name:
            _untag(client, names.tag)  # a refused image goes with its name (its layers too, if nothing else uses them)
        raise
    for name in (plan.tag, plan.alias):
        # Qualified: Podman resolves a short name to any local image of that path, here the registry's name itself
        # (tagging "dockyard/ENV:TAG" would be a no-op). Docker writes docker.io/dockyard/... as dockyard/...
        ensure_tag(image, f"docker.io/{name}")
    if not had_name:
        _untag(client, names.tag)
    return Transfer(names, image.id, True)


def has_tag(client: docker.DockerClient, plan: BuildPlan, registry: RegistryOptions) -> bool | None:
    """Does the registry hold plan's content tag? None: cannot tell (no registry, unreachable, an engine without the
    distribution endpoint such as Podman). Asks the engine, so its login and trust apply."""
    if not registry.host:
        return None
    try:
        client.api.inspect_distribution(remote_names(registry, plan).tag)
    except docker.errors.APIError as exc:
        text = f"{exc.explanation or ''}".strip()
        if text.lower() == "not found":  # the endpoint itself is missing (Podman): cannot tell
            return None
        return False if exc.status_code == 404 or "manifest unknown" in text else None
    except docker.errors.DockerException:
        return None
    return True


def _follow(action: str, ref: str, host: str, output: Output, start: Callable[[], Iterable[dict[str, Any]]]) -> None:
    """Run a push or pull stream to its end; the engine's error (raised or streamed) becomes one paragraph."""
    try:
        shown: set[tuple[str, str]] = set()
        for chunk in start():
            if "error" in chunk:
                raise refusal(action, ref, host, chunk.get("errorDetail", {}).get("message") or chunk["error"])
            status, layer = str(chunk.get("status", "")), str(chunk.get("id", ""))
            if status and status not in _BUSY and (layer, status) not in shown:
                shown.add((layer, status))
                output(f"{layer}: {status}" if layer else status)
    except docker.errors.APIError as exc:
        raise refusal(action, ref, host, f"{exc.explanation or exc}") from None


@contextlib.contextmanager
def _transport_names(client: docker.DockerClient, image: Image, refs: Iterable[str]) -> Iterator[None]:
    """Give image the registry's names for a push; take those it did not have away again afterwards, whatever
    happens."""
    added = []
    try:
        for ref in refs:
            if find_image(client, ref) is None:
                added.append(ref)
            ensure_tag(image, ref)
        yield
    finally:
        for ref in added:
            _untag(client, ref)


def _untag(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
        client.images.remove(ref)
