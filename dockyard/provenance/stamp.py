"""The stamp: `metadata.dockyard` of a notebook, the exact environment whose kernel made its outputs.

No I/O but the schema file. It holds no time, host or user, so saving a notebook twice in one environment
writes the same bytes (notebooks do not churn in git); it changes only when the environment does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

KEY = "dockyard"  # notebook.metadata[KEY]
VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("stamp.schema.json")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class Stamp:
    env: str
    variant: str
    content_hash: str
    lock_sha256: str
    framework: str
    framework_version: str
    cuda_wheels: dict[str, str] = field(default_factory=dict)
    gpu_driver: str = ""
    gpu_name: str = ""

    @property
    def ref(self) -> str:
        return f"{self.env}:{self.variant}"

    @property
    def content_tag(self) -> str:
        return f"dockyard/{self.env}:{self.variant}-{self.content_hash}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stamp_version": VERSION,
            "ref": self.ref,
            "env": self.env,
            "variant": self.variant,
            "content_tag": self.content_tag,
            "content_hash": self.content_hash,
            "lock_sha256": self.lock_sha256,
            "framework": {"name": self.framework, "version": self.framework_version},
        }
        if self.cuda_wheels:
            data["cuda_wheels"] = dict(sorted(self.cuda_wheels.items()))
        if self.gpu_driver:
            data["gpu"] = {"driver": self.gpu_driver, **({"name": self.gpu_name} if self.gpu_name else {})}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stamp:
        """A stamp read back; raises ValueError (one sentence) when it does not follow the schema."""
        problems = errors(data)
        if problems:
            raise ValueError(problems[0])
        gpu = data.get("gpu") or {}
        return cls(
            env=data["env"],
            variant=data["variant"],
            content_hash=data["content_hash"],
            lock_sha256=data["lock_sha256"],
            framework=data["framework"]["name"],
            framework_version=data["framework"]["version"],
            cuda_wheels=dict(data.get("cuda_wheels") or {}),
            gpu_driver=gpu.get("driver", ""),
            gpu_name=gpu.get("name", ""),
        )


def errors(data: object) -> list[str]:
    """What is wrong with a stamp, per the schema (empty: valid)."""
    import jsonschema  # imported here: it costs over a second on some installs, and `dockyard diff` must be fast

    validator = jsonschema.Draft202012Validator(schema())
    found = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"metadata.{KEY}{''.join(f'.{p}' for p in e.absolute_path)}: {e.message}" for e in found]


def read(notebook: Mapping[str, Any]) -> Stamp | None:
    """The notebook's stamp, None when it has none; ValueError when it has a malformed one."""
    data = (notebook.get("metadata") or {}).get(KEY)
    return None if data is None else Stamp.from_json(data)


def apply(notebook: MutableMapping[str, Any], stamp: Stamp) -> bool:
    """Write the stamp into the notebook (a JSON dict); False, and nothing touched, when it is already there."""
    metadata = notebook.setdefault("metadata", {})
    new = stamp.to_json()
    if metadata.get(KEY) == new:
        return False
    metadata[KEY] = new
    return True
