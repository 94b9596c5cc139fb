"""The engine's words for a failed push or pull, as one paragraph with the fix (no I/O).

Docker and Podman pass the registry's answer on as text ("manifest unknown", "unauthorized: ...",
"x509: ...", "connection refused"); these are the cases a user can act on.
"""

from __future__ import annotations

import re

from ..errors import RegistryError, shown
from .probe import engine_ca_path

_MISSING = re.compile(r"manifest unknown|not found|manifest for .* not found|name unknown", re.I)
_AUTH = re.compile(r"unauthorized|authentication required|no basic auth credentials|denied|401", re.I)
_TLS = re.compile(r"x509|certificate|tls:", re.I)
_UNREACHABLE = re.compile(r"connection refused|no such host|i/o timeout|dial tcp|no route to host", re.I)


def refusal(action: str, ref: str, host: str, message: str) -> RegistryError:
    """action: 'push' or 'pull'; ref: the registry's name of the image; message: the engine's words."""
    said = shown(message.strip(), 300)
    if action == "pull" and _MISSING.search(message):
        return RegistryError(
            f"The registry {shown(host)} has no image {shown(ref, 200)} (the engine said: {said})",
            fix="the environment's spec, lock or site settings differ from what was pushed, or it was never pushed: "
            "build it ('dockyard build'), and push it for the others ('dockyard push')",
        )
    if _AUTH.search(message):
        return RegistryError(
            f"The registry {shown(host)} refused the {action} of {shown(ref, 200)} (the engine said: {said})",
            fix=f"run 'docker login {host}' as a user allowed to {action} there (dockyard uses Docker's own config "
            "and credential store)",
        )
    if _TLS.search(message):
        return RegistryError(
            f"The engine does not trust the TLS certificate of the registry {shown(host)} (it said: {said})",
            fix=f"copy your site's CA certificate to {engine_ca_path(host)} on the engine's host (Podman: "
            f"/etc/containers/certs.d/{host}/ca.crt)",
        )
    if _UNREACHABLE.search(message):
        return RegistryError(
            f"The engine cannot reach the registry {shown(host)} (it said: {said})",
            fix="check registry.host (DOCKYARD_REGISTRY) and that the registry is reachable from the engine's host",
        )
    return RegistryError(
        f"The {action} of {shown(ref, 200)} failed (the engine said: {said})",
        fix="see the engine's log; try again, or build locally ('dockyard build')",
    )
