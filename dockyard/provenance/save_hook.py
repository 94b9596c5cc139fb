"""Writing the stamp: Jupyter's pre-save hook (every front end that saves through a Jupyter server running
dockyard's server extension) and a hook for nbclient (`jupyter execute`, nbconvert --execute, papermill).

The server knows which kernel each notebook's session runs and which image that kernel's provisioner
started, so the stamp names the exact image, whichever front end saved. A notebook without a session, or
whose session runs a kernel that is not dockyard's, keeps the stamp it has: saving alone changes no output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import docker

from .. import engine, specs
from ..config import load_settings
from ..errors import DockyardError
from ..images.inventory import image_state
from . import identity
from .stamp import Stamp, apply

log = logging.getLogger(__name__)


class ServerStamper:
    """The server's pre-save hook: `contents_manager.register_pre_save_hook(ServerStamper(serverapp))`."""

    def __init__(self, serverapp: Any) -> None:
        self.app = serverapp
        self._client: docker.DockerClient | None = None
        # image tag + GPU used → stamp: a content tag never changes meaning, so a save asks the engine once.
        self._stamps: dict[tuple[str, bool], Stamp | None] = {}

    def __call__(self, model: MutableMapping[str, Any], path: str, **_: Any) -> None:
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        try:
            stamp = self.stamp_for(path)
        except Exception as exc:  # a save must never fail over its stamp
            self.app.log.warning("dockyard: %s saved without a provenance stamp: %s", path, exc)
            return
        if stamp is not None:
            apply(model["content"], stamp)

    def stamp_for(self, path: str) -> Stamp | None:
        kernel_id = self.kernel_of(path)
        if kernel_id is None or kernel_id not in self.app.kernel_manager:
            return None
        provisioner = getattr(self.app.kernel_manager.get_kernel(kernel_id), "provisioner", None)
        target = getattr(provisioner, "_target", None)  # DockerProvisioner's KernelTarget; other kernels: none
        if target is None:
            return None
        key = (str(target.image), bool(target.device_requests))
        if key not in self._stamps:
            if self._client is None:
                self._client = engine.client()
            self._stamps[key] = identity.for_image(self._client, key[0], load_settings().build, with_gpu=key[1])
        return self._stamps[key]

    def kernel_of(self, path: str) -> str | None:
        """The kernel of the notebook's session. The save hook is synchronous and the session manager's API
        async; its table is a plain SQLite table, read here directly."""
        cursor = self.app.session_manager.cursor
        wanted = path.strip("/")
        cursor.execute("SELECT kernel_id FROM session WHERE path=? OR path=?", (wanted, "/" + wanted))
        row = cursor.fetchone()
        return str(row[0]) if row and row[0] else None


def install(serverapp: Any) -> None:
    serverapp.contents_manager.register_pre_save_hook(ServerStamper(serverapp))


def stamp_for_kernelspec(
    kernel_name: str, client: docker.DockerClient | None = None, *, ref: str | None = None
) -> Stamp | None:
    """The stamp of what a dockyard kernelspec starts now: its variant's current content tag, if built.

    For runs without a server (nbclient, VS Code's own kernels): what the provisioner resolves at start is
    the spec's current content tag (kernel/target.py), so that is the image that ran."""
    if ref is None:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            metadata = KernelSpecManager().get_kernel_spec(kernel_name).metadata
        except NoSuchKernel:
            return None
        ref = identity.kernelspec_ref(metadata)
        if ref is None:
            return None
    spec, variant = specs.resolve(ref)
    client = client or engine.client()
    settings = load_settings()
    state = image_state(client, spec, variant, settings.build)
    if state.image is None:
        return None
    with_gpu = variant.gpu != "none" and settings.kernels.gpu != "off"
    return identity.for_image(client, state.plan.tag, settings.build, with_gpu=with_gpu)


def stamp_notebook(notebook: MutableMapping[str, Any], *, ref: str | None = None) -> Stamp | None:
    """Stamp a notebook (a JSON dict or nbformat node) from its kernelspec; the stamp written, or None."""
    name = _kernel_name(notebook.get("metadata") or {})
    if ref is None and name is None:
        return None
    stamp = stamp_for_kernelspec(name or "", ref=ref)
    if stamp is not None:
        apply(notebook, stamp)
    return stamp


def nbclient_hook(notebook: MutableMapping[str, Any], **_: Any) -> None:
    """nbclient's on_notebook_complete: `c.NotebookClient.on_notebook_complete = "...nbclient_hook"` is not
    importable by name, so set it in a Python config file (see docs/provenance.md)."""
    try:
        stamp_notebook(notebook)
    except DockyardError as exc:
        log.warning("dockyard: notebook not stamped: %s", exc.text)


def _kernel_name(metadata: Mapping[str, Any]) -> str | None:
    name = (metadata.get("kernelspec") or {}).get("name")
    return name if isinstance(name, str) and name else None
