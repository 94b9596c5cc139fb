"""Helper process for tests/test_kernel_lifecycle.py: owns a container kernel outside pytest.

usage: kernel_script.py hold KERNEL_NAME CWD   start a kernel, print its container as JSON, sleep (to be SIGKILLed)
       kernel_script.py write KERNEL_NAME CWD  start a kernel, write CWD/from_kernel.txt from it, report JSON, shut down
"""

from __future__ import annotations

import json
import sys
import time

from jupyter_client import KernelManager


def main() -> None:
    mode, kernel_name, cwd = sys.argv[1:4]
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=cwd)
    if mode == "hold":
        print(json.dumps({"container_id": km.provisioner.container_id, "kernel_id": km.kernel_id}), flush=True)
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
        reply = kc.execute_interactive(code, timeout=30, output_hook=lambda m: out.append(m["content"].get("text", "")))
        kernel = json.loads("".join(out)) if reply["content"]["status"] == "ok" else {"error": reply["content"]}
        print(json.dumps({"kernel": kernel, "container_id": km.provisioner.container_id}), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


if __name__ == "__main__":
    main()
