"""What a kernel container looks like: pure functions from launch settings to docker SDK arguments.

Kept free of I/O against the engine so every security-relevant choice (no privileges, loopback-only
ports, read-only connection file, filtered environment) can be unit-tested without a daemon.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, Mount

from ..engine.capabilities import DOCKER, EngineCaps
from ..errors import DockyardError
from ..hostfiles import mount_refusal
from ..labels import LABEL_ENV, LABEL_KERNEL_ID, LABEL_OWNER, LABEL_POOL_DIR, LABEL_POOL_KEY, LABEL_VARIANT
from . import data_mounts, kernel_secrets

RUN_DIR = "/run/dockyard"
CONNECTION_FILE = f"{RUN_DIR}/kernel.json"  # where the kernel reads its (read-only) connection file
HOME = "/home/dockyard-user"  # a private tmpfs: the host UID has no home inside the image
# Run inside the container with a signal number: signals the process group of every child of PID 1 (the
# init), i.e. the kernel and a cell's subprocesses. For inits that forward to the child alone (Podman's
# catatonit); the image's python does it, as the shell's kill may not take a negative PID.
GROUP_SIGNAL_ARGV = (
    "python3",
    "-c",
    "import os, sys; [os.killpg(int(p), int(sys.argv[1])) for p in open('/proc/1/task/1/children').read().split()]",
)
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")

# Host variables that describe the host, not the kernel: paths that do not exist in the image, the
# parent-PID poller (it would kill the kernel: its parent in the container is docker-init), secrets
# of the Jupyter server, and the user's dockyard/docker settings.
_HOST_ONLY = frozenset(
    [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "PWD",
        "OLDPWD",
        "HOSTNAME",
        "TMPDIR",
        "TEMP",
        "TMP",
        "MAIL",
        "VIRTUAL_ENV",
        "VIRTUAL_ENV_PROMPT",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONEXECUTABLE",
        "PYTHONPYCACHEPREFIX",
        "JPY_PARENT_PID",
        "SSH_AUTH_SOCK",
        "SSH_AGENT_PID",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "KRB5CCNAME",
        "GNUPGHOME",
        "_",
    ]
)
_HOST_ONLY_PREFIXES = (
    "LD_",
    "DYLD_",
    "CONDA",
    "_CE_",
    "PYENV",
    "XDG_",
    "DOCKER_",
    "JUPYTER_",
    "DOCKYARD_",
    "LC_",
    "DBUS_",
    "SSH_",
    "MAMBA",
)
# Read by the NVIDIA runtime/hook. Where 'nvidia' is dockerd's default runtime, NVIDIA_VISIBLE_DEVICES in
# a container's environment (from the host, or an nvidia/cuda base image) attaches GPUs without any
# request; so a container without a device request gets 'void' (no GPUs, no driver files), and one with
# a request gets what dockerd derives from the request itself.
_NVIDIA_VARIABLES = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_REQUIRE_CUDA")


@dataclass(frozen=True)
class KernelContainer:
    """Everything needed to create one kernel container."""

    image: str
    env_name: str
    variant: str
    kernel_id: str
    owner: str
    argv: list[str]
    environment: dict[str, str]
    workspace: Path  # the directory bind-mounted at the same path
    cwd: Path  # the kernel's working directory (inside workspace)
    connection_file: Path  # host file mounted at CONNECTION_FILE, read-only unless connection_file_writable
    ports: tuple[int, ...]
    network: str = "host"
    uid: int = 0
    gid: int = 0
    shm_size: str | None = None
    memory: str | None = None
    cpus: float | None = None
    device_requests: list[DeviceRequest] = field(default_factory=list)
    connection_file_writable: bool = False  # only for a private copy (see DockerProvisioner._connection_file)
    # A pooled container (kernel/pool/pooled.py): its own run directory (connection file, claim FIFO) is mounted at
    # RUN_DIR instead of the connection file alone, and it is labelled with its pool key and that directory.
    pool_key: str | None = None
    run_dir: Path | None = None
    pool_name: str | None = None
    # docs/data-and-secrets.md: the spec's and site's mounts, and the secrets (name, kernel variable) it gets
    data_mounts: tuple[data_mounts.DataMount, ...] = ()
    secrets: tuple[tuple[str, str | None], ...] = ()

    @property
    def name(self) -> str:
        return self.pool_name or container_name(self.env_name, self.variant, self.kernel_id)


def container_name(env_name: str, variant: str, kernel_id: str) -> str:
    raw = f"dockyard-{env_name}-{variant}-{kernel_id[:8]}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)


def container_argv(spec_argv: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The kernelspec argv as run inside the image: '{connection_file}' → the mounted file.

    Unlike KernelManager.format_kernel_cmd, 'python' is kept (the image's PATH finds its venv python;
    the host's sys.executable does not exist there). Host-only placeholders are refused.
    """
    out = []
    for arg in [*spec_argv, *extra]:
        arg = arg.replace("{connection_file}", CONNECTION_FILE)
        if m := re.search(r"\{(resource_dir|prefix)\}", arg):
            raise DockyardError(
                f"The kernelspec argv uses {{{m.group(1)}}}, a host path that does not exist inside the kernel "
                "container",
                fix="regenerate the kernelspec with 'dockyard kernels install'",
            )
        out.append(arg)
    return out


def kernel_environment(
    requested: Mapping[str, str],
    *,
    kernelspec_env: Mapping[str, str],
    image_env: Sequence[str],
    secret: str,
    user: str,
) -> dict[str, str]:
    """The container's environment from what the KernelManager asked for.

    The kernelspec's own variables always pass. Other variables pass unless they describe the host
    (see _HOST_ONLY) or the image already sets them (its PATH, DOCKYARD_ENV, CA bundle paths win).
    Nothing whose value contains the session key passes.
    """
    image_names = {item.partition("=")[0] for item in image_env}
    out: dict[str, str] = {}
    for name, value in requested.items():
        host_only = name in _HOST_ONLY or name.startswith(_HOST_ONLY_PREFIXES) or name in image_names
        if host_only and name not in kernelspec_env:
            continue
        if secret and secret in value:
            continue
        out[name] = value
    out.update({"HOME": HOME, "USER": user, "LOGNAME": user})  # getpass and ~ work for an unknown UID
    return out


def check_loopback(ip: str) -> None:
    """Kernel ports are for this machine only; the HMAC key is all that guards them."""
    try:
        loopback = ip == "localhost" or ipaddress.ip_address(ip).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DockyardError(
            f"The kernel would listen on {ip}, which is not a loopback address; dockyard kernels only listen on "
            "127.0.0.1",
            fix="remove the KernelManager.ip / --ip setting (it defaults to 127.0.0.1)",
        )


def workspace_mount(cwd: Path, root: Path | None) -> Path:
    """The directory to bind-mount: the configured workspace root if any, else the kernel's cwd."""
    cwd = Path(os.path.realpath(cwd))
    if not cwd.is_dir():
        raise DockyardError(
            f"The kernel's working directory {cwd} does not exist", fix="open the notebook from an existing directory"
        )
    mount = cwd
    if root is not None:
        root = Path(os.path.realpath(root))
        if not root.is_dir():
            raise DockyardError(
                f"The kernel workspace root {root} does not exist",
                fix=(
                    "create it, or change DOCKYARD_WORKSPACE_ROOT / kernels.workspace_root / the kernelspec's "
                    "workspace_root"
                ),
            )
        if cwd != root and root not in cwd.parents:
            raise DockyardError(
                f"The notebook directory {cwd} is outside the kernel workspace root {root}, so the kernel could not "
                "see it",
                fix=(
                    f"open notebooks under {root}, or change DOCKYARD_WORKSPACE_ROOT / kernels.workspace_root / the "
                    "kernelspec's workspace_root"
                ),
            )
        mount = root
    reason = mount_refusal(mount)
    if reason:
        raise DockyardError(
            f"Refusing to mount {mount} into a kernel container: {reason}",
            fix="start Jupyter (or set the workspace root) in a project directory, e.g. under your home directory",
        )
    return mount


def gpu_environment(environment: Mapping[str, str], device_requests: Sequence[DeviceRequest]) -> dict[str, str]:
    """The environment with the NVIDIA variables the device request (or its absence) implies."""
    out = {k: v for k, v in environment.items() if k not in _NVIDIA_VARIABLES}
    if not device_requests:
        out["NVIDIA_VISIBLE_DEVICES"] = "void"
    return out


def kernel_banner_args(argv: Sequence[str], notices: Sequence[str]) -> list[str]:
    """Extra ipykernel arguments that put notices into the kernel's banner (shown by consoles at connect)."""
    if not notices or not any("ipykernel" in a for a in argv):
        return []
    text = "\n".join(f"dockyard: {n}" for n in notices)
    return [f"--InteractiveShell.banner2={text}\n"]


def create_kwargs(kc: KernelContainer, caps: EngineCaps = DOCKER) -> dict[str, Any]:
    """Arguments for engine.create_container() (client.containers.create() plus Podman's user namespace)."""
    run = (
        Mount(target=RUN_DIR, source=kc.run_dir.as_posix(), type="bind")
        if kc.run_dir is not None
        else Mount(
            target=CONNECTION_FILE,
            source=kc.connection_file.as_posix(),
            type="bind",
            read_only=not kc.connection_file_writable,
        )
    )
    mounts = [Mount(target=kc.workspace.as_posix(), source=kc.workspace.as_posix(), type="bind"), run]
    pool_labels = (
        {LABEL_POOL_KEY: kc.pool_key, LABEL_POOL_DIR: kc.run_dir.as_posix()}
        if kc.pool_key and kc.run_dir is not None
        else {}
    )
    kwargs: dict[str, Any] = {
        "image": kc.image,
        "command": kc.argv,  # a list: never a shell string
        "name": kc.name,
        "labels": {
            LABEL_KERNEL_ID: kc.kernel_id,
            LABEL_ENV: kc.env_name,
            LABEL_VARIANT: kc.variant,
            LABEL_OWNER: kc.owner,
            **pool_labels,
        },
        # Read by docker-init (tini 0.19), which is PID 1: it forwards signals to the kernel's whole process
        # group, not just the kernel, as jupyter_client's LocalProvisioner does with killpg. Without it an
        # interrupt never reaches a cell's children: os.system('sleep 20') ignores SIGINT in the kernel
        # while it waits, so the cell ran on to the end. tini makes the kernel a group leader (setpgid).
        "environment": {**gpu_environment(kc.environment, kc.device_requests), "TINI_KILL_PROCESS_GROUP": "1"},
        "working_dir": kc.cwd.as_posix(),
        "user": f"{kc.uid}:{kc.gid}",
        "init": True,  # docker-init (tini) as PID 1 forwards signals to the kernel's process group, reaps zombies
        "mounts": mounts,
        "tmpfs": {HOME: caps.tmpfs_options(kc.uid, kc.gid, "rw,nosuid,nodev,mode=0700")},
        "privileged": False,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "stdin_open": False,
        "tty": False,
        "detach": True,
        "device_requests": list(kc.device_requests),
    }
    if kc.network == "host":
        kwargs["network_mode"] = "host"  # the kernel binds the 127.0.0.1 ports its connection file names
    else:
        kwargs["network_mode"] = "bridge"
        kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1", p) for p in kc.ports}  # published on loopback only
    if caps.keep_id:
        # Rootless Podman: the host user keeps its UID inside, so the workspace, the 0600 connection file and
        # what the kernel writes belong to the user (else UID 1234 inside is an unrelated subordinate UID).
        kwargs["userns_mode"] = "keep-id"
    if kc.shm_size:
        kwargs["shm_size"] = kc.shm_size
    if kc.memory and caps.memory_limits:  # one the engine cannot apply is reported by the provisioner instead
        kwargs["mem_limit"] = kc.memory
    if kc.cpus and caps.cpu_limits:
        kwargs["nano_cpus"] = int(kc.cpus * 1e9)
    _add_data_and_secrets(kwargs, kc, caps)
    return kwargs


def _add_data_and_secrets(kwargs: dict[str, Any], kc: KernelContainer, caps: EngineCaps) -> None:
    """The data mounts (bind, as the workspace), and for secrets a private tmpfs plus the start that waits for them
    (kernel/kernel_secrets.py: the values arrive over an exec's stdin, never through these arguments)."""
    kwargs["mounts"] += data_mounts.docker_mounts(kc.data_mounts)
    if kc.secrets:
        options = caps.tmpfs_options(kc.uid, kc.gid, "rw,nosuid,nodev,noexec,size=4m,mode=0700")
        kwargs["tmpfs"][kernel_secrets.SECRETS_DIR] = options
        kwargs["command"] = kernel_secrets.wrapped_argv(kc.argv, kc.secrets)
