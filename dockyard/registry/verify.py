"""Is a pulled image the one this checkout's spec and lock describe? Its labels say (no I/O).

The content tag already names the spec, lock and site settings the image was built from, but a tag is only a
name: anyone who can push can put other content under it. The labels the build wrote (content hash, lock
sha256, environment and variant) must match what this checkout computes, or the image is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import RegistryError, shown
from ..images.plan import BuildPlan
from ..labels import LABEL_ENV, LABEL_HASH, LABEL_LOCK_SHA256, LABEL_VARIANT


def mismatches(plan: BuildPlan, labels: Mapping[str, str] | None) -> list[str]:
    """'label: image says X, this checkout expects Y' for each label that differs (empty: it matches)."""
    found = dict(labels or {})
    expected = {
        LABEL_HASH: plan.content_hash,
        LABEL_LOCK_SHA256: plan.lock_sha256,
        LABEL_ENV: plan.spec.name,
        LABEL_VARIANT: plan.variant.name,
    }
    return [
        f"{name}: the image says {shown(found.get(name, '(none)'), 80)}, this checkout expects {want}"
        for name, want in expected.items()
        if found.get(name) != want
    ]


def refuse_unless_matching(plan: BuildPlan, labels: Mapping[str, str] | None, ref: str) -> None:
    if wrong := mismatches(plan, labels):
        raise RegistryError(
            f"Refused {shown(ref, 200)}: it is not the image of {plan.variant.ref} that this spec and lock describe "
            f"({'; '.join(wrong)}); it was removed again and nothing was tagged",
            fix="someone pushed other content under this content tag: push the right one from a good build "
            "('dockyard build', then 'dockyard push'), or build here ('dockyard build')",
        )
