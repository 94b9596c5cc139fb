"""Helper process for tests/test_data_mounts_engine.py: runs one cell in a container kernel as whoever runs it.

usage: data_kernel_script.py KERNEL_NAME CWD CODE   prints JSON (status, stdout, container_id, pooled), shuts down
With DOCKYARD_POOL_SIZE above 0 it first fills the warm pool for the kernel, which then claims from it if it can.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from jupyter_client import KernelManager


def main() -> None:
    kernel_name, cwd, code = sys.argv[1:4]
    keeper = None
    if os.environ.get("DOCKYARD_POOL_SIZE", "0") != "0":
        from dockyard.config import load_settings
        from dockyard.kernel.pool.fill import fill_for
        from dockyard.kernel.pool.keeper import PoolKeeper

        keeper = PoolKeeper.instance()
        fill_for(kernel_name, Path(cwd), 1, load_settings().kernels.pool)
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=cwd)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
        report = {
            "status": reply["content"]["status"],
            "stdout": "".join(out),
            "container_id": km.provisioner.container_id,
            "pooled": getattr(km.provisioner, "_pool_dir", None) is not None,
            "error": f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}",
        }
        print(json.dumps(report), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
        if keeper is not None:
            keeper.close()


if __name__ == "__main__":
    main()
