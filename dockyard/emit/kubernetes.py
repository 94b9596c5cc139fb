"""Kubernetes container fields: the kubelet expands `$(NAME)` in a container's env values, command and args from the
container's other variables (so `$(DB_PASSWORD)` in one value would copy a secret into another), and reduces `$$` to
`$`. Doubling every `$` is its escape: what the process sees is exactly the value written in the spec or stack."""

from __future__ import annotations


def literal(value: str) -> str:
    return value.replace("$", "$$")
