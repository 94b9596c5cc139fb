"""Helper process for tests/test_data_mounts_engine.py: runs one cell in a container kernel as whoever runs it.

usage: data_kernel_script.py KERNEL_NAME CWD CODE   prints JSON {"status", "stdout", "container_id"}, shuts down
"""

from __future__ import annotations

import json
import sys

from jupyter_client import KernelManager


def main() -> None:
    kernel_name, cwd, code = sys.argv[1:4]
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
            "error": f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}",
        }
        print(json.dumps(report), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


if __name__ == "__main__":
    main()
