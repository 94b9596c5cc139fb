"""Helper process for tests/test_kernel_lifecycle.py: owns a container kernel outside pytest.

usage: kernel_script.py hold KERNEL_NAME CWD   start a kernel, print its container as JSON, sleep (to be SIGKILLed)
       kernel_script.py write KERNEL_NAME CWD  start a kernel, write CWD/from_kernel.txt from it, report JSON, shut down
       kernel_script.py run KERNEL_NAME CWD CODE  start a kernel, run CODE, report JSON (its status, stdout), shut down
With DOCKYARD_POOL_SIZE above 0 it first fills the warm pool for the kernel and the kernel claims from it
("pooled" in the JSON says whether it did).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from jupyter_client import KernelManager


def main() -> None:
    mode, kernel_name, cwd = sys.argv[1:4]
    keeper = None
    if os.environ.get("DOCKYARD_POOL_SIZE", "0") != "0":
        from dockyard.config import load_settings
        from dockyard.kernel.pool.fill import fill_for
        from dockyard.kernel.pool.keeper import PoolKeeper

        keeper = PoolKeeper.instance()
        made = fill_for(kernel_name, Path(cwd), 1, load_settings().kernels.pool)
        assert made, keeper.last_error
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=cwd)
    pooled = getattr(km.provisioner, "_pool_dir", None) is not None
    if mode == "hold":
        print(
            json.dumps({"container_id": km.provisioner.container_id, "kernel_id": km.kernel_id, "pooled": pooled}),
            flush=True,
        )
        while True:
            time.sleep(60)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out: list[str] = []
        code = (
            "import os, json; open('from_kernel.txt', 'w').write('hi'); "
            "print(json.dumps({'uid': os.getuid(), 'cwd': os.getcwd()}))"
        )
        if mode == "run":
            code = sys.argv[4]
        reply = kc.execute_interactive(code, timeout=30, output_hook=lambda m: out.append(m["content"].get("text", "")))
        ok = reply["content"]["status"] == "ok"
        report = {"container_id": km.provisioner.container_id, "pooled": pooled}
        if mode == "run":
            report |= {"status": reply["content"]["status"], "stdout": "".join(out), "error": str(reply["content"])}
        else:
            report["kernel"] = json.loads("".join(out)) if ok else {"error": reply["content"]}
        print(json.dumps(report), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
        if keeper is not None:
            keeper.close()


if __name__ == "__main__":
    main()
