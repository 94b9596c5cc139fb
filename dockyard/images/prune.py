"""Which dockyard images are superseded, and removing them (`dockyard images prune`, sizes in `images`/doctor).

Every spec or settings change makes a new content tag; the old ones stay until removed. Per environment
variant the newest build stays, and so does every image that a container (running or stopped) uses, the
image the moving alias names, the images the current specs and settings would use, and the images that a
stamped notebook in the workspace names (provenance/workspace.py): they reproduce its outputs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from ..labels import LABEL_ENV, LABEL_VARIANT
from .naming import image_repository


@dataclass(frozen=True)
class ImageEntry:
    ref: str  # env:variant
    image: Image
    tags: tuple[str, ...]  # its content tags (dockyard/ENV:VARIANT-HASH)
    keep: str  # why it stays; "" when it is superseded

    @property
    def size(self) -> int:
        return int(self.image.attrs.get("Size", 0))


def survey(
    client: docker.DockerClient,
    *,
    envs: Collection[str] = (),
    current_tags: Collection[str] = (),
    stamped: Mapping[str, Path] | None = None,
) -> list[ImageEntry]:
    """Every dockyard image (of envs, when given), newest first per variant, each with why it stays."""
    used = {c.attrs.get("ImageID", "") for c in client.containers.list(all=True, sparse=True)}
    groups: dict[str, list[Image]] = defaultdict(list)
    for image in client.images.list(filters={"label": LABEL_ENV}):
        labels = image.labels
        env, variant = labels.get(LABEL_ENV, ""), labels.get(LABEL_VARIANT, "")
        if envs and env not in envs:
            continue
        groups[f"{env}:{variant}"].append(image)
    out: list[ImageEntry] = []
    for ref, images in sorted(groups.items()):
        env, _, variant = ref.partition(":")
        prefix = f"{image_repository(env)}:{variant}-"
        alias = f"{image_repository(env)}:{variant}"
        images.sort(key=lambda i: str(i.attrs.get("Created", "")), reverse=True)
        content_tag = re.compile(re.escape(prefix) + r"[0-9a-f]{12}")
        # Only dockyard's own builds: images made FROM them (compose's lab images) inherit the labels.
        images = [i for i in images if any(content_tag.fullmatch(t) for t in i.tags)]
        for n, image in enumerate(images):
            tags = tuple(t for t in image.tags if content_tag.fullmatch(t))
            if n == 0:
                keep = "newest"
            elif image.id in used:
                keep = "a container uses it"
            elif alias in image.tags:
                keep = f"{alias} names it"
            elif any(t in current_tags for t in tags):
                keep = "the current spec and settings use it"
            elif stamped and (notebook := next((stamped[t] for t in tags if t in stamped), None)):
                keep = f"the stamped notebook {notebook} names it"
            else:
                keep = ""
            out.append(ImageEntry(ref, image, tags, keep))
    return out


def reclaimable(entries: list[ImageEntry]) -> int:
    """Bytes that pruning frees at most (images share their base layers, so often less)."""
    return sum(e.size for e in entries if not e.keep)


def remove(client: docker.DockerClient, entries: list[ImageEntry]) -> list[str]:
    """Remove the superseded entries' content tags (the image goes with its last tag); returns the tags removed."""
    removed: list[str] = []
    for entry in entries:
        if entry.keep:
            continue
        for tag in entry.tags:
            try:
                client.images.remove(tag, noprune=False)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError:
                continue  # a container was started from it since the survey: it stays
            removed.append(tag)
    return removed
