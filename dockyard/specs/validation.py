"""JSON Schema validation, remembered per distinct (schema, document text).

Importing jsonschema costs over a second where its format extras are installed (as with Jupyter),
and a no-op `dockyard build` must answer well under a second; so an unchanged, already-valid file
is not validated again.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .. import paths
from .yamlsource import YamlDocument

if TYPE_CHECKING:  # imported lazily at run time: see the module docstring
    import jsonschema


def first_error(schema: dict[str, Any], doc: YamlDocument) -> jsonschema.ValidationError | None:
    """The first jsonschema.ValidationError of doc (ordered by line), or None when valid."""
    # The salt names the validator's semantics: a document cached valid under looser rules is checked again.
    salt = b"ecma-dollar\0"
    key = hashlib.sha256(salt + json.dumps(schema, sort_keys=True).encode() + b"\0" + doc.text.encode()).hexdigest()
    marker = paths.cache_dir() / "valid" / key
    if marker.exists():
        return None
    validator = _strict_validator_class()(schema)
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: (doc.line(list(e.absolute_path)) or 0, str(e.path)))
    if errors:
        return errors[0]
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return None


@lru_cache(maxsize=1)
def _strict_validator_class() -> Any:
    """Draft 2020-12 with JSON Schema's (ECMA-262) meaning of a final '$': the end of the string.

    jsonschema matches patterns with Python's re, where '$' also matches before a trailing newline,
    so 'python:3.11\\n' would pass '^[a-z0-9][a-z0-9._/:@-]*$' and break the Dockerfile line it lands in.
    """
    import jsonschema

    base = jsonschema.Draft202012Validator

    def pattern(validator: Any, patrn: str, instance: Any, schema: dict[str, Any]) -> Any:
        strict = patrn[:-1] + r"\Z" if patrn.endswith("$") and not patrn.endswith("\\$") else patrn
        if validator.is_type(instance, "string") and not re.search(strict, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    return jsonschema.validators.extend(base, {"pattern": pattern})
