"""Reading specs: envs/NAME.yaml → schema check → cross-field checks → Spec."""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .. import paths
from ..errors import DockyardError, SpecError, shown
from ..gpu.requirements import COMPUTE_FOR_CUDA, DRIVER_FOR_CUDA, CudaNeeds, derive_major
from .data_entries import mount_entries, secret_entries
from .model import Spec, Variant, parse_ref
from .validation import first_error
from .yamlsource import KeyPath, YamlDocument, load_yaml, where

if TYPE_CHECKING:
    import jsonschema

# What each pattern-checked field should look like, for error messages.
_PATTERN_HINTS = {
    "name": "lower-case letters, digits and dashes, starting with a letter (e.g. 'pytorch')",
    "version": "a dotted release number such as '2.13.0'",
    "python": "a Python minor version such as '3.11' (quoted, so YAML keeps it a string)",
    "base": "an image reference such as 'python:3.11-slim-bookworm'",
    "shm_size": "a size such as '2g' or '512m'",
    "memory": "a size such as '8g' or '512m'",
    "package": "a Python distribution name such as 'torch'",
    "min_driver": "a driver version such as '580.65.06' (quoted)",
    "min_compute_capability": "a compute capability such as '7.5' (quoted)",
    # Human-facing text is printed to terminals and shown in launchers: it must look like what it says.
    "display_name": "printable text, without control, bidi-override or zero-width characters",
    "description": "printable text, without control, bidi-override or zero-width characters",
    "pip_extra_index_urls": "an http(s):// or file:// URL without spaces and without user:token@ (credentials would "
    "ship in the image's layers; put the site's index in the dockyard config, or use a wheelhouse)",
    "env": "a value without line breaks or control characters (at most 4096 characters)",
    "mounts.source": "a host path without ',', ':' or control characters (absolute, ~/... or $VAR/...)",
    "mounts.target": "an absolute container path without ',', ':', '$' or control characters",
    "mounts.cache": "a cache name: lower-case letters, digits and dashes, starting with a letter",
    "secrets.name": "a file name: letters, digits, '_', '.', '-' (not starting with '.' or '-'), at most 64",
    "secrets.from_file": "a host path without ',', ':' or control characters (absolute, ~/... or $VAR/...)",
    "secrets.from_env": "a variable name (not DOCKYARD_*, JUPYTER* or JPY_*: those are the server's own)",
    "secrets.env": "a variable name (not DOCKYARD_*)",
    "secrets.service": "text without control characters",
    "secrets.username": "text without control characters",
}
_NAME = re.compile(r"[a-z][a-z0-9-]{0,38}")  # the schema's name pattern
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
_DEFAULT_RESOURCES = {"shm_size": "2g"}
_REQUIRED_IN_EVERY_IMAGE = ("ipykernel", "ipywidgets")
# Baked into an image, these hand the container GPUs whenever 'nvidia' is dockerd's default runtime, so
# `gpu: off` would not turn them off. The device request sets what is needed, only when a GPU is asked for.
_GPU_VARIABLES = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_REQUIRE_CUDA")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(__file__).with_name("env.schema.json").read_text())
    return loaded


def spec_files() -> dict[str, Path]:
    """All env spec files on the search path, by name (first directory wins)."""
    found: dict[str, Path] = {}
    for directory in paths.envs_dirs():
        for path in sorted(directory.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_spec(name: str) -> Path:
    files = spec_files()
    if name in files:
        return files[name]
    close = difflib.get_close_matches(name, files, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    searched = ", ".join(str(d) for d in paths.envs_dirs()) or "(no envs directory found)"
    new_file = f"envs/{name if _NAME.fullmatch(name) else 'NAME'}.yaml"
    raise SpecError(
        f"No environment named {shown(name)} (searched {searched}; known: {', '.join(files) or 'none'})",
        fix=f"{hint}run 'dockyard env list' to see the environments, or add {new_file}",
    )


def load(name_or_path: str | Path) -> Spec:
    """Load and validate a spec by environment name or by file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = find_spec(str(name_or_path))
    return load_file(path)


def resolve(ref: str) -> tuple[Spec, Variant]:
    """'pytorch:cuda' → (the pytorch Spec, its cuda Variant); a bare name gives the default variant."""
    name, variant = parse_ref(ref)
    spec = load(name)
    return spec, spec.variant(variant)


def expand(refs: list[str]) -> list[tuple[Spec, Variant]]:
    """Refs → (spec, variant) pairs, the one meaning of a reference in every command: NAME:VARIANT, or a bare
    NAME for its default variant (as resolve); no refs means every variant. Duplicates are dropped, order kept.

    A bare NAME used to mean all variants for lock, kernels install and devcontainer generate but the cpu
    variant for build and render, so `dockyard build pytorch && dockyard kernels install pytorch` failed on
    the unbuilt CUDA variants; the default variant is what a user on any machine can build and run."""
    if not refs:
        return [(s, v) for s in load_all() for v in s.variants.values()]
    out: list[tuple[Spec, Variant]] = []
    for ref in refs:
        spec, variant = resolve(ref)
        if all(v.ref != variant.ref for _, v in out):
            out.append((spec, variant))
    return out


def load_all() -> list[Spec]:
    return [load_file(p) for p in spec_files().values()]


def load_file(path: Path) -> Spec:
    doc = load_yaml(path, SpecError, "environment spec")
    _check_schema(doc)
    return _to_spec(doc)


def _check_schema(doc: YamlDocument) -> None:
    err = first_error(schema(), doc)
    if err is not None:
        raise schema_error(doc, err)


def dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        if not isinstance(part, int) and not _PLAIN_KEY.fullmatch(part):
            part = shown(part, 40)  # a key with spaces, line breaks or escapes: quoted, escaped, cut short
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _json(value: Any) -> str:
    """A value for a message, as JSON (so "3.11" and 3.11 differ), cut short: values can be 100 KB long."""
    text = json.dumps(value)
    return text if len(text) <= 80 else f"{text[:80]}…"


def schema_error(
    doc: YamlDocument,
    err: jsonschema.ValidationError,
    error: type[DockyardError] = SpecError,
    fmt: str = "the spec format in docs/spec.md",
    hints: dict[str, str] | None = None,
) -> DockyardError:
    """One schema violation as one paragraph: file, line, field, value and the fix. Also used for other YAML
    formats validated the same way (stack files): `error` is their error type, `fmt` where their format is
    described, `hints` what their pattern-checked fields should look like."""
    pattern_hints = {**_PATTERN_HINTS, **(hints or {})}
    at = list(err.absolute_path)
    loc = where(doc.path, doc.line(at))
    field_name = dotted(at)
    value = err.instance
    if "propertyNames" in err.schema_path:
        return error(
            f"{loc}: {field_name} has an invalid key {_json(err.instance)}",
            fix=pattern_hints.get(
                "propertyNames",
                "variant names are 'cpu' or 'cuda', optionally with a suffix such as 'cuda-12'; env names are shell "
                "identifiers, and DOCKYARD_* names are dockyard's own (the image sets them)",
            ),
        )
    if err.validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        unknown = [k for k in value if k not in allowed]
        key = unknown[0]
        loc = where(doc.path, doc.line([*at, key]))
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return error(
            f"{loc}: unknown key {shown(key, 40)} in {field_name}",
            fix=f"{hint}remove it or use one of the allowed keys: {', '.join(allowed)}",
        )
    if err.validator == "required":
        missing = err.message.split("'")[1]
        return error(
            f"{loc}: {field_name} is missing the required field '{missing}'",
            fix=f"add '{missing}:' to {field_name} (see {fmt})",
        )
    if err.validator == "type":
        expected = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        expected_text = {
            "object": "a mapping",
            "array": "a list",
            "string": "a string",
            "number": "a number",
            "integer": "an integer",
            "boolean": "true/false",
        }.get(expected, expected)
        return error(
            f"{loc}: {field_name} is {_json(value)} ({type(value).__name__}), but must be {expected_text}",
            fix=f"write {field_name} as {expected_text}" + (' (quote it, e.g. "3.11")' if expected == "string" else ""),
        )
    if err.validator == "enum":
        options = ", ".join(str(o) for o in err.validator_value)
        return error(
            f"{loc}: {field_name} is {_json(value)}, not one of: {options}",
            fix=f"set {field_name} to one of: {options}",
        )
    if err.validator == "pattern":
        # The field's own hint, else its parent's (a value in a mapping of user-chosen keys, e.g. volumes.data).
        named = [p for p in reversed(at) if isinstance(p, str) and p in pattern_hints]
        if at and isinstance(at[0], str) and isinstance(at[-1], str) and f"{at[0]}.{at[-1]}" in pattern_hints:
            named = [f"{at[0]}.{at[-1]}"]  # a list entry's field (secrets[0].name is not the spec's name)
        hint = pattern_hints[named[0]] if named else f"a value matching {err.validator_value}"
        return error(f"{loc}: {field_name} is {_json(value)}, which is not valid", fix=f"use {hint}")
    if err.validator == "uniqueItems":
        return error(f"{loc}: {field_name} lists the same entry twice", fix="remove the duplicate")
    if err.validator in ("minProperties", "minItems", "minLength"):
        return error(f"{loc}: {field_name} is empty", fix=f"give {field_name} at least one entry")
    message = shown(err.message, 120)[1:-1]
    return error(f"{loc}: {field_name}: {message}", fix=f"correct the value (see {fmt})")


def _requirements(doc: YamlDocument, at: KeyPath, items: list[str]) -> dict[str, Requirement]:
    """Parse pins; dockyard needs exact '==' pins so an image can be rebuilt identically."""
    out: dict[str, Requirement] = {}
    for i, text in enumerate(items):
        loc = where(doc.path, doc.line([*at, i]))
        # A line break (even inside a marker's quotes) would add a line, e.g. an option, to requirements.txt.
        if not (text.isascii() and text.isprintable()):
            raise SpecError(
                f"{loc}: {dotted([*at, i])} is {_json(text)}, which holds a line break or a non-ASCII character",
                fix="write it as NAME==VERSION on one line, e.g. 'numpy==2.4.6'",
            )
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise SpecError(
                f"{loc}: {dotted([*at, i])} is {_json(text)}, not a valid requirement ({str(exc).splitlines()[0]})",
                fix="write it as NAME==VERSION, e.g. 'numpy==2.4.6'",
            ) from None
        specs = list(req.specifier)
        if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise SpecError(
                f"{loc}: {dotted([*at, i])} is {_json(text)}, which is not pinned to one version",
                fix=f"pin it exactly, e.g. '{req.name}==X.Y.Z', so every build installs the same thing",
            )
        key = canonicalize_name(req.name)
        if key in out:
            raise SpecError(f"{loc}: {req.name} is listed twice in {dotted(list(at))}", fix="keep one pin")
        out[key] = req
    return out


def _to_spec(doc: YamlDocument) -> Spec:
    data = doc.data
    path = doc.path
    if data["name"] != path.stem:
        raise SpecError(
            f"{where(path, doc.line(['name']))}: name is '{data['name']}' but the file is {path.name}",
            fix=f"rename the file to {data['name']}.yaml or set name: {path.stem}",
        )
    common = _requirements(doc, ("python_packages",), data.get("python_packages", []))
    fw = data["framework"]
    variants: dict[str, Variant] = {}
    for vname, v in data["variants"].items():
        vpath = ("variants", vname)
        own = _requirements(doc, (*vpath, "python_packages"), v.get("python_packages", []))
        for key in own.keys() & common.keys():
            raise SpecError(
                f"{where(path, doc.line([*vpath, 'python_packages']))}: {key} is pinned both at the top level and in "
                f"variant '{vname}'",
                fix="pin it in one place only",
            )
        merged = {**common, **own}
        for needed in _REQUIRED_IN_EVERY_IMAGE:
            if needed not in merged:
                raise SpecError(
                    f"{where(path, doc.line(['python_packages']))}: variant '{vname}' does not install {needed}, "
                    "which every dockyard image needs",
                    fix=f"add a pin such as '{needed}==X.Y.Z' to python_packages",
                )
        package = fw.get("package")
        if package:
            req = merged.get(canonicalize_name(package))
            if req is None:
                raise SpecError(
                    f"{where(path, doc.line(['framework', 'package']))}: framework.package is '{package}' but "
                    f"variant '{vname}' does not install it",
                    fix=f"add '{package}=={fw['version']}' to python_packages",
                )
            pinned = next(iter(req.specifier)).version
            if pinned.split("+")[0] != fw["version"]:
                raise SpecError(
                    f"{where(path, doc.line(['framework', 'version']))}: framework.version is {fw['version']} but "
                    f"variant '{vname}' pins {req}",
                    fix="make framework.version and the pin agree",
                )
        gpu = v.get("gpu", data.get("gpu", "none" if vname.startswith("cpu") else "optional"))
        if vname.startswith("cpu") and gpu != "none":
            raise SpecError(
                f"{where(path, doc.line([*vpath, 'gpu']))}: variant '{vname}' is a CPU variant but asks for gpu: {gpu}",
                fix="set gpu: none for cpu variants, or name the variant 'cuda'",
            )
        cuda = _cuda_needs(doc, vpath, v, gpu, [str(merged[k]) for k in merged])
        variants[vname] = Variant(
            env=data["name"],
            name=vname,
            base=v["base"],
            description=v.get("description", ""),
            system_packages=tuple(sorted({*data.get("system_packages", []), *v.get("system_packages", [])})),
            python_packages=tuple(str(merged[k]) for k in sorted(merged)),
            pip_extra_index_urls=tuple(v.get("pip_extra_index_urls", [])),
            env_vars={**data.get("env", {}), **v.get("env", {})},
            gpu=gpu,
            cuda=cuda,
        )
    _check_gpu_variables(doc)
    return Spec(
        path=path,
        name=data["name"],
        display_name=data["display_name"],
        description=data["description"],
        framework=fw["name"],
        framework_version=fw["version"],
        python=data["python"],
        resources={**_DEFAULT_RESOURCES, **data.get("resources", {})},
        kernel={
            "language": "python",
            "interrupt_mode": "signal",
            "startup_timeout": 60,
            "env": {},
            **data.get("kernel", {}),
        },
        variants=variants,
        mounts=mount_entries(data.get("mounts", []), lambda i: where(path, doc.line(["mounts", i])), "mounts"),
        secrets=secret_entries(data.get("secrets", []), lambda i: where(path, doc.line(["secrets", i])), "secrets"),
    )


def _cuda_needs(
    doc: YamlDocument, vpath: KeyPath, v: dict[str, Any], gpu: str, packages: list[str]
) -> CudaNeeds | None:
    """The variant's CUDA needs: declared in `cuda:`, else derived from its pins; None for no CUDA code."""
    declared = v.get("cuda")
    vname = vpath[-1]
    loc = where(doc.path, doc.line([*vpath, "cuda"]))
    if gpu == "none":
        if declared is not None:
            raise SpecError(
                f"{loc}: variant '{vname}' has gpu: none but declares cuda needs",
                fix="remove the cuda block, or give the variant a GPU (name it 'cuda...')",
            )
        return None
    declared = declared or {}
    derived = derive_major(packages, v.get("pip_extra_index_urls", []))
    major = declared.get("major", derived)
    if derived is not None and major != derived:
        raise SpecError(
            f"{loc}: variant '{vname}' declares cuda.major {major}, but its pins pull CUDA {derived} wheels",
            fix=f"set cuda.major: {derived}, or pin wheels built for CUDA {major}",
        )
    if major is None:
        if declared:
            raise SpecError(
                f"{loc}: variant '{vname}' declares cuda needs but no cuda.major, and its pins do not tell it",
                fix="add cuda.major (the CUDA major version of the framework wheels)",
            )
        return None  # no CUDA code in the image (e.g. minimal:cuda): only the GPU itself matters
    min_driver = declared.get("min_driver", DRIVER_FOR_CUDA.get(major))
    min_cc = declared.get("min_compute_capability", COMPUTE_FOR_CUDA.get(major))
    if min_driver is None or min_cc is None:
        raise SpecError(
            f"{loc}: dockyard does not know what CUDA {major} needs from the host",
            fix="declare cuda.min_driver and cuda.min_compute_capability for this variant",
        )
    return CudaNeeds(major=major, min_driver=min_driver, min_compute_capability=min_cc)


def _check_gpu_variables(doc: YamlDocument) -> None:
    data = doc.data
    places: list[tuple[list[str | int], dict[str, str]]] = [(["env"], data.get("env", {}))]
    places.append((["kernel", "env"], data.get("kernel", {}).get("env", {})))
    places += [(["variants", n, "env"], v.get("env", {})) for n, v in data["variants"].items()]
    for at, env in places:
        for name in env:
            if name in _GPU_VARIABLES:
                raise SpecError(
                    f"{where(doc.path, doc.line([*at, name]))}: {dotted(at)} sets {name}, which would hand the "
                    "container GPUs wherever 'nvidia' is dockerd's default runtime, even with gpu: off",
                    fix=f"remove {name}: dockyard's device request (`--gpus all`) attaches the GPUs when one is wanted",
                )
