"""Is this variant's image built (for these site settings)? The one answer the CLI, kernels and doctor share."""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.models.images import Image

from ..config import BuildOptions
from ..engine import find_image
from ..specs import Spec, Variant
from .plan import BuildPlan, make_plan


@dataclass(frozen=True)
class ImageState:
    plan: BuildPlan
    image: Image | None  # the image with the plan's content tag
    older: Image | None  # the moving alias, looked up only when the content tag is missing

    @property
    def built(self) -> bool:
        return self.image is not None

    @property
    def status(self) -> str:
        if self.image is not None:
            return "built"
        # The alias without the content tag: the spec or the site settings changed since that build.
        return "outdated" if self.older is not None else "not built"


def image_state(client: docker.DockerClient, spec: Spec, variant: Variant, options: BuildOptions) -> ImageState:
    plan = make_plan(spec, variant, options)
    image = find_image(client, plan.tag)
    return ImageState(plan, image, None if image is not None else find_image(client, plan.alias))
