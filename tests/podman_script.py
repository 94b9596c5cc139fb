"""Helper process for tests/test_podman.py, run as the unprivileged test account against its rootless Podman.

usage: podman_script.py lifecycle KERNEL_NAME CWD   start a kernel in CWD, write a file there, interrupt a busy
                                                     loop, restart, shut down; print one JSON report
       podman_script.py start KERNEL_NAME CWD       start a kernel; print {"error": message} or {"started": true}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from jupyter_client import BlockingKernelClient, KernelManager


def run(kc: BlockingKernelClient, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        out.append(content.get("text", "") or content.get("ename", ""))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


def lifecycle(km: KernelManager) -> dict[str, Any]:
    report: dict[str, Any] = {"container_ids": [km.provisioner.container_id]}
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        code = (
            "import os, json; open('from_kernel.txt', 'w').write('hi'); "
            "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd()}))"
        )
        reply, out = run(kc, code)
        report["kernel"] = json.loads(out) if reply["status"] == "ok" else reply
        # A busy loop never yields to the event loop: only a SIGINT delivered into the container stops it.
        msg_id = kc.execute("while True: pass")
        time.sleep(2)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=30)
        report["interrupt"] = {"ename": reply["content"].get("ename"), "seconds": time.monotonic() - t0}
        # A cell waiting for a child process: the kernel ignores SIGINT meanwhile, so the child must get it too
        # (its process group); uninterrupted, the child would create the file 20 s later.
        msg_id = kc.execute("import os; os.system('sleep 20 && touch child_finished')")
        time.sleep(2)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        report["child_finished"] = run(kc, "print(os.path.exists('child_finished'))")[1].strip()
        reply, out = run(kc, "print(6 * 7)")
        report["after_interrupt"] = out.strip()
        run(kc, "survivor = 'set before restart'")
    finally:
        kc.stop_channels()
    km.restart_kernel(now=True)
    report["container_ids"].append(km.provisioner.container_id)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "print('survivor' in globals())")
        report["after_restart"] = out.strip()
    finally:
        kc.stop_channels()
    return report


def main() -> None:
    mode, kernel_name, cwd = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # the provisioner's warnings, for the test
    km = KernelManager(kernel_name=kernel_name)
    try:
        km.start_kernel(cwd=cwd)
    except Exception as exc:  # the one-paragraph error the user would see, for the test to check
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}), flush=True)
        return
    try:
        report = lifecycle(km) if mode == "lifecycle" else {"started": True}
    finally:
        km.shutdown_kernel(now=False)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
