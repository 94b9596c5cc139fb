"""Stage 1: environment specs. envs/NAME.yaml (YAML with line numbers, JSON Schema, cross-field checks) → Spec.

`load`/`resolve` are the way in; everything downstream (images, kernels, front ends) takes a Spec and a Variant.
"""

from ..errors import SpecError
from .loader import expand, find_spec, load, load_all, load_file, resolve, schema, spec_files
from .model import Spec, Variant, parse_ref

__all__ = [
    "Spec",
    "SpecError",
    "Variant",
    "expand",
    "find_spec",
    "load",
    "load_all",
    "load_file",
    "parse_ref",
    "resolve",
    "schema",
    "spec_files",
]
