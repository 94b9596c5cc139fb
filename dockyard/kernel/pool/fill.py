"""Fill the pool for a kernelspec now (`dockyard kernels pool fill`, benches): the container comes from the
provisioner itself (pre_launch without a launch), so it is exactly what a kernel start would create.

Apart from keeper.py so that the keeper, which the provisioner uses, does not import the provisioner back.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_client.manager import KernelManager
from jupyter_core.utils import run_sync

from ...config import PoolOptions
from ...errors import DockyardError
from ..provisioner import DockerProvisioner
from . import pooled as pool
from .keeper import PoolKeeper


def fill_for(kernel_name: str, cwd: Path, count: int, options: PoolOptions) -> list[pool.Pooled]:
    """Fill `count` pooled containers for kernels of kernelspec kernel_name started in cwd, owned by this
    process's keeper, and wait until they are ready. The container is described by the provisioner itself
    (pre_launch without a launch), so it is exactly what a kernel start would create."""
    km = KernelManager(kernel_name=kernel_name)
    try:
        cmd, kw = km.pre_start_kernel(cwd=str(cwd))
    except NoSuchKernel:
        raise DockyardError(
            f"No kernel named {kernel_name} is installed where Jupyter looks",
            fix="install it with 'dockyard kernels install' (see 'dockyard kernels list')",
        ) from None
    try:
        prov = km.provisioner
        if not isinstance(prov, DockerProvisioner):
            raise DockyardError(
                f"Kernel {kernel_name} is not a dockyard container kernel",
                fix="name a kernel 'dockyard kernels list' shows",
            )
        cold, modules = prov.pool_request(cmd, Path(cwd), kw.get("env") or {})
    finally:
        km.cleanup_resources()
        if km.provisioner is not None:
            run_sync(km.provisioner.cleanup)(restart=False)
    keeper = PoolKeeper.instance()
    keeper.want(cold, modules, replace(options, size=count, max_containers=max(options.max_containers, count)))
    return keeper.top_up()
