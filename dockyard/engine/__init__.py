"""The container engine behind DOCKER_HOST: the connection, what the engine is, and what it says about GPUs.

- connection.py: a connected client with one clear error (and its cause) when no engine answers;
  the few engine calls the SDK gets wrong (Podman's keep-id, tags with a registry prefix)
- capabilities.py: Docker or Podman, rootful or rootless, which limits hold (read once per client)
- gpu_info.py: the GPU-relevant part of `docker info`, no local-disk guesses

"""

from __future__ import annotations

from .connection import client, create_container, ensure_tag, find_image
from .unreachable import describe_host

__all__ = ["client", "create_container", "describe_host", "ensure_tag", "find_image"]
