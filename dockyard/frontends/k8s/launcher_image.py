"""The launcher image: an environment's image plus gateway_provisioners' kernel bootstrap, for the remote engines.

A derived image (one layer on the environment's content tag, as compose's JupyterLab image is) rather than a change
to every image: kernels, dev containers and stacks stay as they are, and the launcher's pins move on their own.
gateway_provisioners itself (with paramiko, pexpect, ...) is installed in a throwaway venv of a first stage only to
run `jupyter image-bootstrap install`; the image keeps the files it writes (bootstrap-kernel.sh, the Python
launcher) and the one package they import that ipykernel does not bring (pycryptodomex, for the callback's
encryption). pip reaches the index through the environment image's own site settings (CA bundle, /etc/pip.conf).
No I/O here: the build is cli/k8s_cmd.py's.
"""

from __future__ import annotations

import hashlib

from ...emit.dockerfile import exec_form
from ...images.render import VENV
from .manifest_parts import KERNEL_GID, KERNEL_UID, LAUNCHER_SUFFIX, MARKER

GATEWAY_PROVISIONERS = "gateway_provisioners==0.5.0"
PYCRYPTODOMEX = "pycryptodomex==3.24.2"
BOOTSTRAP = "/usr/local/bin/bootstrap-kernel.sh"
LAUNCHERS = "/usr/local/bin/kernel-launchers"
HOME = "/tmp"  # any UID may write it; on Kubernetes an emptyDir (the root file system is read-only)


def dockerfile() -> str:
    return (
        f"# {MARKER}: gateway_provisioners' kernel bootstrap on an environment image (ENV_IMAGE).\n"
        "ARG ENV_IMAGE\n"
        "FROM ${ENV_IMAGE} AS bootstrap\n"
        "USER root\n"
        "RUN python -m venv /tmp/gp \\\n"
        f"    && /tmp/gp/bin/pip install --no-cache-dir {GATEWAY_PROVISIONERS} \\\n"
        "    && /tmp/gp/bin/jupyter image-bootstrap install --languages python \\\n"
        f"    && chmod 0755 {BOOTSTRAP} && chmod -R a+rX {LAUNCHERS}\n"
        "\n"
        "FROM ${ENV_IMAGE}\n"
        "USER root\n"
        f"COPY --from=bootstrap {BOOTSTRAP} {BOOTSTRAP}\n"
        f"COPY --from=bootstrap {LAUNCHERS} {LAUNCHERS}\n"
        f"RUN {VENV}/bin/pip install --no-cache-dir {PYCRYPTODOMEX} && {VENV}/bin/pip check\n"
        "# The engines' image contract: KERNEL_LANGUAGE, the bootstrap as command, a non-root user, HOME writable.\n"
        f"ENV KERNEL_LANGUAGE=python HOME={HOME}\n"
        f"USER {KERNEL_UID}:{KERNEL_GID}\n"
        f"CMD {exec_form([BOOTSTRAP])}\n"
    )


def launcher_tag(env_tag: str) -> str:
    """dockyard/ENV:VARIANT-HASH-gp-HASH: the environment's content tag plus the launcher layer's own."""
    return f"{env_tag}-{LAUNCHER_SUFFIX}-{hashlib.sha256(dockerfile().encode()).hexdigest()[:8]}"


def launcher_alias(env_alias: str) -> str:
    """dockyard/ENV:VARIANT-gp: follows the newest launcher build (what the generated manifests name)."""
    return f"{env_alias}-{LAUNCHER_SUFFIX}"
