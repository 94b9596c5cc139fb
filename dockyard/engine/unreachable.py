"""Why no engine answers at DOCKER_HOST, told from the exception's own cause, with the fix for that cause.

A missing socket, a socket nobody listens on, a socket the user may not open, ssh:// without paramiko and
an address that answers but is no engine need different fixes; the SDK's message hides the cause inside
nested exceptions, so the chain is walked for the OSError (or the SDK's own words) that names it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

from ..errors import EngineError

DEFAULT_HOST = "unix:///var/run/docker.sock"
_DOCTOR = "; 'dockyard doctor' checks all of this"
_START = (
    "start the Docker daemon ('sudo systemctl start docker', or 'sudo dockerd &'; rootless Podman: "
    "'systemctl --user start podman.socket', see docs/podman.md)"
)


def describe_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and every exception behind it: __cause__, __context__, and exceptions carried in args or .reason
    (requests and urllib3 wrap the socket's OSError that way)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        x = todo.pop(0)
        if id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        inner = [x.__cause__, x.__context__, getattr(x, "reason", None), *getattr(x, "args", ())]
        todo.extend(i for i in inner if isinstance(i, BaseException))


def diagnose(exc: BaseException, host: str | None = None) -> EngineError:
    """One EngineError naming the cause of exc and the fix for that cause."""
    host = host or describe_host()
    reason, fix = _reason_and_fix(exc, host)
    return EngineError(f"Cannot reach the Docker engine at {host} ({reason})", fix=fix + _DOCTOR)


def _reason_and_fix(exc: BaseException, host: str) -> tuple[str, str]:
    url = urlparse(host)
    where = url.path if url.scheme == "unix" else url.netloc or host
    chain = list(causes(exc))
    if url.scheme == "ssh" and any("paramiko" in str(x) for x in chain):
        return (
            "ssh:// needs the paramiko package, which is not installed",
            "install it where dockyard runs ('pip install paramiko'), or reach the engine another way "
            "(DOCKER_HOST=unix://... on that machine, or an ssh tunnel to its socket)",
        )
    ssh_error = next((x for x in chain if type(x).__module__.startswith("paramiko")), None)
    if url.scheme == "ssh" and ssh_error is not None:
        return (
            f"ssh to {where} failed: {_first_line(ssh_error)}",
            f"check that 'ssh {where} docker version' works (the host key in known_hosts, your key loaded, docker "
            "on the remote PATH)",
        )
    os_error = next((x for x in chain if isinstance(x, OSError) and x.errno is not None), None)
    if os_error is not None and os_error.errno and (found := _by_errno(os_error.errno, url.scheme, where)):
        return found
    if any(isinstance(x, socket.timeout | TimeoutError) or "timed out" in str(x).lower() for x in chain):
        return (
            f"no answer from {where}: the connection timed out",
            "check that the engine runs there and that the network (firewall, VPN, ssh) lets you reach it",
        )
    if any(type(x).__name__ in ("NotFound", "HTTPError", "APIError") for x in chain):
        return (
            f"{where} answered, but not as a Docker engine",
            "check DOCKER_HOST; if a proxy caught the request (HTTP_PROXY), add the engine's host to NO_PROXY",
        )
    return _first_line(exc), _START + ", or point DOCKER_HOST at a running engine"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _by_errno(code: int, scheme: str, where: str) -> tuple[str, str] | None:
    if code == errno.ENOENT:
        return (
            f"no socket at {where}: no engine is running there",
            _START + ", or point DOCKER_HOST at the socket of a running engine (rootless Docker: "
            "unix://$XDG_RUNTIME_DIR/docker.sock)",
        )
    if code == errno.ECONNREFUSED:
        if scheme == "unix":
            return (
                f"the socket {where} exists, but no engine accepts connections on it: the daemon stopped or crashed",
                "start the daemon again ('sudo systemctl restart docker' or 'sudo dockerd &') and read its log "
                "('journalctl -u docker') for why it stopped",
            )
        return (
            f"connection refused at {where}: nothing listens there",
            "start the engine on that machine, or correct the port in DOCKER_HOST",
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on the socket {where}",
            "let your user use the engine: add it to the 'docker' group ('sudo usermod -aG docker $USER', then log "
            "in again), or use rootless Docker or Podman (docs/podman.md)",
        )
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
        return (
            f"{where} cannot be reached over the network ({os.strerror(code)})",
            "check the host name in DOCKER_HOST and the network (firewall, VPN)",
        )
    return None
