"""Kernel secrets: values from the host (a 600 file, a server variable, the keyring) into one kernel, and nowhere else.

The path a value takes: read on the server's host at each start → sent over the stdin of a `docker exec`, run as
the kernel's user in the started container → written to a tmpfs at /run/secrets (mode 700, owned by the host UID;
each file 400) → the kernel's start waits for the marker that all arrived, sets the variables the spec asks for in
its own process, then execs the kernel. So a value is never in the container's config (`docker inspect` shows
Env, Cmd, Mounts), never in a host file a container mounts, never on a disk of the engine (tmpfs, not the
container's layer: `docker cp`/put_archive would write below the tmpfs), never in an image, a kernelspec or a log.
A kernel with secrets does not use the warm pool (kernel/pool/pooled.py template): a value is read at each start,
and an idle pooled container would hold it for a kernel that may never come.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from .. import specs
from ..errors import DockyardError, shown
from ..hostfiles import private_refusal
from ..specs.data_entries import SecretEntry
from .data_mounts import expand

SECRETS_DIR = "/run/secrets"
READY = ".ready"  # written last: the kernel's start waits for it
MAX_VALUE = 64 * 1024  # tokens and keys; a bigger "secret" is data: mount it read-only instead
WAIT_SECONDS = 60  # how long the kernel's start waits for its secrets before it gives up
_EXEC_TIMEOUT = 30.0

# Runs before the kernel (argv: ENV=NAME ... -- KERNEL ARGV): waits for the secrets, sets the asked-for variables in
# this process only, then becomes the kernel (same PID: signals and the process group work as without it).
WAIT_SCRIPT = (
    "import os, sys, time\n"
    "a = sys.argv[1:]; i = a.index('--'); d = " + repr(SECRETS_DIR) + "\n"
    "end = time.monotonic() + " + str(WAIT_SECONDS) + "\n"
    "while not os.path.exists(d + '/" + READY + "'):\n"
    "    if time.monotonic() > end: sys.exit('dockyard: the kernel secrets did not arrive; start the kernel again')\n"
    "    time.sleep(0.02)\n"
    "for p in a[:i]:\n"
    "    var, _, name = p.partition('=')\n"
    "    os.environ[var] = open(d + '/' + name, encoding='utf-8', errors='replace').read().rstrip('\\r\\n')\n"
    "os.execvp(a[i + 1], a[i + 1:])\n"
)
# Run by `docker exec` as the kernel's user: the values come on stdin (JSON, base64), never in argv or Env.
WRITE_SCRIPT = (
    "import base64, json, os, sys\n"
    "d = " + repr(SECRETS_DIR) + "\n"
    "for name, value in json.load(sys.stdin).items():\n"
    "    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)\n"
    "    os.write(fd, base64.b64decode(value)); os.close(fd)\n"
    "os.close(os.open(d + '/" + READY + "', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400))\n"
)


@dataclass(frozen=True)
class Found:
    """A secret's value, or why there is none and the fix. repr never shows the value."""

    entry: SecretEntry
    value: bytes | None = field(default=None, repr=False)
    problem: str = ""
    fix: str = ""


def _file(entry: SecretEntry, environ: Mapping[str, str]) -> Found:
    path = Path(expand(entry.source[1], environ, entry.origin))
    fix = f"create it (e.g. 'install -m 600 /dev/stdin {path}' and paste the value), or change from_file"
    try:
        st = path.stat()
    except OSError as exc:
        return Found(entry, problem=f"{path} cannot be read ({exc.strerror})", fix=fix)
    real = Path(os.path.realpath(path))
    if reason := private_refusal(real):
        return Found(entry, problem=f"{path} {reason}", fix="keep the secret in a file of its own, outside that folder")
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_VALUE:
        return Found(entry, problem=f"{path} is not a regular file of at most {MAX_VALUE} bytes", fix=fix)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return Found(
            entry,
            problem=f"{path} must be owned by you with mode 600 (it has uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o})",
            fix=f"chmod 600 {path} (and chown it to yourself): a secret others can read is no longer one",
        )
    with path.open("rb") as f:
        return Found(entry, f.read(MAX_VALUE))


def _keyring(entry: SecretEntry) -> Found:
    service, user = entry.source[1], entry.source[2]
    try:
        keyring = importlib.import_module("keyring")  # optional: the OS keyring through the `keyring` package
    except ImportError:
        return Found(entry, problem="the keyring package is not installed", fix="pip install keyring, or use from_file")
    try:
        value = keyring.get_password(service, user)
    except Exception as exc:  # a locked or absent backend
        return Found(entry, problem=f"the keyring could not be read ({type(exc).__name__})", fix="unlock the keyring")
    if value is None:
        return Found(
            entry,
            problem=f"the keyring has no password for service {shown(service)}, user {shown(user)}",
            fix=f"keyring set {service} {user}",
        )
    return Found(entry, value.encode())


def find(entry: SecretEntry, environ: Mapping[str, str]) -> Found:
    """The entry's value from its host source, or the problem and fix."""
    kind = entry.source[0]
    if kind == "file":
        try:
            return _file(entry, environ)
        except DockyardError as exc:  # an unset variable in the path
            return Found(entry, problem=exc.problem, fix=exc.fix or "")
    if kind == "env":
        value = environ.get(entry.source[1])
        if not value:
            var = entry.source[1]
            return Found(
                entry,
                problem=f"the Jupyter server's environment does not set {var}",
                fix=f"start Jupyter with {var} set (e.g. 'read -s {var} && export {var}' first)",
            )
        return Found(entry, value.encode())
    return _keyring(entry)


def missing_notice(found: Found) -> str:
    return f"secret {found.entry.name} is missing: {found.problem} (fix: {found.fix})"


def available(
    entries: Sequence[SecretEntry], environ: Mapping[str, str]
) -> tuple[tuple[SecretEntry, ...], tuple[str, ...]]:
    """(the secrets present now, notices for the missing ones); a missing required one stops the start."""
    present: list[SecretEntry] = []
    notices: list[str] = []
    for found in (find(e, environ) for e in entries):
        if found.value is not None:
            present.append(found.entry)
        elif found.entry.required:
            raise DockyardError(
                f"{found.entry.origin}: the kernel needs secret {found.entry.name}, which is missing: {found.problem}",
                fix=found.fix,
            )
        else:
            notices.append(missing_notice(found))
    return tuple(present), tuple(notices)


def read_values(entries: Iterable[SecretEntry], environ: Mapping[str, str]) -> dict[str, bytes]:
    """The values for one start; one that vanished since the target was resolved stops it."""
    out: dict[str, bytes] = {}
    for e in entries:
        found = find(e, environ)
        if found.value is None:
            problem = f"secret {e.name} went missing while the kernel started: {found.problem}"
            raise DockyardError(problem, fix=found.fix)
        out[e.name] = found.value
    return out


def status(entries: Sequence[SecretEntry], environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """For the panel: name, where from, the variable, present, and for a missing one the problem and fix."""
    rows = []
    for found in (find(e, environ) for e in entries):
        e = found.entry
        row: dict[str, Any] = {"name": e.name, "source": e.described, "env": e.env, "present": found.value is not None}
        if found.value is None:
            row |= {"problem": found.problem, "fix": found.fix, "required": e.required}
        rows.append(row)
    return rows


def wrapped_argv(argv: Sequence[str], secrets: Sequence[tuple[str, str | None]]) -> list[str]:
    """The container's command: the waiting start, then the kernel argv (names only; values never in argv)."""
    pairs = [f"{var}={name}" for name, var in secrets if var]
    return [python_of(argv), "-c", WAIT_SCRIPT, *pairs, "--", *argv]


def python_of(argv: Sequence[str]) -> str:
    """The interpreter that runs the waiting start and the writer: the kernel's own when its argv starts with one
    (dockyard's kernelspecs: the image's venv python), else the image's python3."""
    return argv[0] if argv and Path(argv[0]).name.startswith("python") else "python3"


def scrubbed(
    environment: Mapping[str, str], values: Mapping[str, bytes], hidden_names: Iterable[str]
) -> dict[str, str]:
    """The container's environment without the secrets' variables, nor any variable holding a value."""
    texts = [v.decode("utf-8", "replace").strip() for v in values.values()]
    hidden = set(hidden_names)
    return {k: v for k, v in environment.items() if k not in hidden and not any(t and t in v for t in texts)}


def hidden_variables(entries: Iterable[SecretEntry]) -> set[str]:
    """Server variables a secret comes from or a kernel variable it sets: never copied into the container's Env
    (jupyter_client hands a kernel the server's whole environment)."""
    return {n for e in entries for n in ((e.source[1] if e.source[0] == "env" else None), e.env) if n}


def declared_variables() -> set[str]:
    """hidden_variables of every spec on the search path: a server variable one environment's secret comes from
    reaches no other environment's kernel either (a spec that does not load declares nothing)."""
    out: set[str] = set()
    for path in specs.spec_files().values():
        try:
            out |= hidden_variables(specs.load_file(path).secrets)
        except DockyardError:
            continue
    return out


def deliver(client: docker.DockerClient, cid: str, python: str, user: str, values: Mapping[str, bytes]) -> None:
    """Write the values into the started container's /run/secrets over an exec's stdin."""
    payload = json.dumps({k: base64.b64encode(v).decode() for k, v in values.items()}).encode()
    exec_id = client.api.exec_create(cid, [python, "-c", WRITE_SCRIPT], stdin=True, user=user)["Id"]
    sock = client.api.exec_start(exec_id, socket=True)
    raw: socket.socket = getattr(sock, "_sock", sock)
    try:
        raw.settimeout(_EXEC_TIMEOUT)
        raw.sendall(payload)
        raw.shutdown(socket.SHUT_WR)
        output = b""
        while chunk := raw.recv(65536):  # drain until the exec ends
            output += chunk[:4096]
    finally:
        sock.close()
    deadline = time.monotonic() + _EXEC_TIMEOUT
    while (info := client.api.exec_inspect(exec_id)).get("Running") and time.monotonic() < deadline:
        time.sleep(0.05)
    if info.get("ExitCode") != 0:
        text = output.decode("utf-8", "replace")[-600:]  # the script's traceback: names and paths, no values
        raise DockyardError(
            f"Could not write the kernel's secrets into container {cid[:12]} (exit {info.get('ExitCode')})",
            fix=f"check that the image has python on its PATH; the engine said: {text}",
        )
