"""dockyard's own look at the registry before the engine talks to it: is it there, is its TLS certificate signed by
the site CA (registry.ca_cert, else the system trust store), does it accept the login from Docker's config?

The engine's own errors for these cases are long and differ between Docker and Podman (and Docker skips TLS
verification for loopback registries altogether); this answers each with one paragraph and its fix first.
"""

from __future__ import annotations

import requests

from ..config import RegistryOptions
from ..errors import RegistryError, shown
from .credentials import Login, login_for

TIMEOUT = 10.0


def engine_ca_path(host: str) -> str:
    """Where Docker (per registry, read at each push and pull: no restart) looks for a registry's CA."""
    return f"/etc/docker/certs.d/{host}/ca.crt"


def check(registry: RegistryOptions, host: str) -> Login | None:
    """Raise RegistryError when the registry cannot serve us; the login used (or None) when it can."""
    url = f"https://{host}/v2/"
    login = login_for(host)
    verify: str | bool = str(registry.ca_cert) if registry.ca_cert else True
    try:
        answer = requests.get(
            url, verify=verify, timeout=TIMEOUT, auth=(login.username, login.password) if login else None
        )
    except requests.exceptions.SSLError as exc:
        trusted = f"the CA in registry.ca_cert ({registry.ca_cert})" if registry.ca_cert else "the system trust store"
        raise RegistryError(
            f"The registry {shown(host)} answered with a TLS certificate that {trusted} does not vouch for "
            f"({shown(_reason(exc), 200)})",
            fix="set registry.ca_cert (DOCKYARD_REGISTRY_CA_CERT) to your site's CA certificate, and let the engine "
            f"trust it too: copy it to {engine_ca_path(host)} (Docker reads it at the next push or pull; Podman: "
            f"/etc/containers/certs.d/{host}/ca.crt)",
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise RegistryError(
            f"No registry answers at {url} ({shown(_reason(exc), 200)})",
            fix="check registry.host (DOCKYARD_REGISTRY) and that the registry runs and is reachable from here; "
            "without a registry, build locally ('dockyard build')",
        ) from None
    if answer.status_code == 401 and answer.headers.get("WWW-Authenticate", "").lower().startswith("basic"):
        # A registry with its own password list (htpasswd): the answer to /v2/ says whether the login is good.
        # Token registries (Bearer) exchange the login for a token in the engine; their refusals come from there.
        if login is None:
            raise RegistryError(
                f"The registry {shown(host)} wants a login and Docker's config holds none for it",
                fix=f"run 'docker login {host}' (it writes Docker's config or credential store, which dockyard "
                "reads; set DOCKER_CONFIG for another config directory)",
            )
        raise RegistryError(
            f"The registry {shown(host)} refused the login of user {shown(login.username)} from Docker's config",
            fix=f"run 'docker login {host}' with the right user and password (or token)",
        )
    return login


def _reason(exc: Exception) -> str:
    """The innermost reason of a requests error (urllib3 wraps it twice), without the URL again."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    return str(reason or inner)
