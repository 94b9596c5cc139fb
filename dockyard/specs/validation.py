"""JSON Schema validation, remembered per distinct (schema, document text).

Importing jsonschema costs over a second where its format extras are installed (as with Jupyter),
and a no-op `dockyard build` must answer well under a second; so an unchanged, already-valid file
is not validated again.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .. import paths
from .yamlsource import YamlDocument

if TYPE_CHECKING:  # imported lazily at run time: see the module docstring
    import jsonschema


def first_error(schema: dict[str, Any], doc: YamlDocument) -> jsonschema.ValidationError | None:
    """The first jsonschema.ValidationError of doc (ordered by line), or None when valid."""
    key = hashlib.sha256(json.dumps(schema, sort_keys=True).encode() + b"\0" + doc.text.encode()).hexdigest()
    marker = paths.cache_dir() / "valid" / key
    if marker.exists():
        return None
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: (doc.line(list(e.absolute_path)) or 0, str(e.path)))
    if errors:
        return errors[0]
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return None
