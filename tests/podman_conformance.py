"""jupyter_kernel_test's conformance suite against a dockyard container kernel; tests/test_podman.py runs it
as the unprivileged test account on its rootless Podman (not collected by the root pytest run: no test_ prefix).
"""

# ruff: noqa: RUF012  (jupyter_kernel_test is configured through mutable class attributes)

from __future__ import annotations

import os
import unittest

import jupyter_kernel_test as jkt


class DockyardKernelConformance(jkt.KernelTests):
    kernel_name = os.environ.get("DOCKYARD_CONFORMANCE_KERNEL", "dockyard-minimal-cpu")
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('conformance')"
    code_execute_result = [{"code": "1+2+3", "result": "6"}, {"code": "[n*n for n in range(3)]", "result": "[0, 1, 4]"}]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))", "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))", "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"


if __name__ == "__main__":
    unittest.main()
