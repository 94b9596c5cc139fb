"""Build the launcher image (launcher_image.py's Dockerfile) on an environment image: a no-op when its tag exists."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import docker

from ...config import PROXY_VARIABLES, BuildOptions
from ...engine import ensure_tag, find_image
from ...errors import BuildError
from .launcher_image import dockerfile, launcher_alias, launcher_tag


def _context() -> io.BytesIO:
    data = dockerfile().encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_launcher(
    client: docker.DockerClient,
    env_tag: str,
    env_alias: str,
    options: BuildOptions,
    output: Callable[[str], None] = lambda _line: None,
) -> tuple[str, bool]:
    """(launcher content tag, whether it was built). env_tag must name a built environment image."""
    tag = launcher_tag(env_tag)
    alias = launcher_alias(env_alias)
    image = find_image(client, tag)
    built = image is None
    if image is None:
        buildargs = {"ENV_IMAGE": env_tag}
        for key, names in PROXY_VARIABLES.items():
            if key in options.proxy:
                buildargs |= dict.fromkeys(names, options.proxy[key])  # predefined ARGs: never in the image
        lines: list[str] = []
        stream = client.api.build(
            fileobj=_context(),
            custom_context=True,
            tag=tag,
            buildargs=buildargs,
            labels={"org.dockyard.launcher-for": env_tag},
            rm=True,
            forcerm=True,  # no intermediate containers left behind, even when a step fails
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                message = (chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip()
                tail = "".join(lines[-30:]).rstrip()
                raise BuildError(
                    f"Building the launcher image {tag} on {env_tag} failed: {message}\n--- output ---\n{tail}\n---",
                    fix="read the output above; for TLS or index errors fix the environment image's site settings "
                    "(--ca-cert, --pip-index-url) and build it again",
                )
            text = chunk.get("stream")
            if text:
                lines.append(text)
                output(text.rstrip("\n"))
        image = find_image(client, tag)
        if image is None:
            raise BuildError(f"The engine reported no image {tag} after building it", fix="run the command again")
    ensure_tag(image, alias)
    return tag, built
