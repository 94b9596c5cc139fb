"""Image names: dockyard/ENV:VARIANT-HASH for one exact build, dockyard/ENV:VARIANT for the newest one.

Kept apart from plan.py so front ends can name the moving alias without computing a plan (which reads
CA files and wheels).
"""

from __future__ import annotations

from ..specs import Variant


def image_repository(env_name: str) -> str:
    return f"dockyard/{env_name}"


def image_alias(variant: Variant) -> str:
    """The moving tag that always names the newest build of this variant."""
    return f"{image_repository(variant.env)}:{variant.name}"


def image_tag(variant: Variant, content_hash: str) -> str:
    """The content-addressed tag of one exact build."""
    return f"{image_alias(variant)}-{content_hash}"


def stage_tag(variant: Variant) -> str:
    """The newest build's Python stage (kept for the layer cache, one per variant)."""
    return f"{image_alias(variant)}-stage"
