"""`commrouter kernel install` writes a kernelspec jupyter_client finds by name."""

from __future__ import annotations

import json
import subprocess
import sys

from jupyter_client.kernelspec import KernelSpecManager


def test_install_with_prefix_is_found_by_jupyter_client(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "commrouter", "kernel", "install", "--prefix", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    assert str(kernels / "commrouter") in done.stdout
    spec = KernelSpecManager(kernel_dirs=[str(kernels)]).get_kernel_spec("commrouter")
    assert spec.argv[1:] == ["-m", "commrouter.kernel", "-f", "{connection_file}"]
    assert spec.interrupt_mode == "message"
    assert json.loads((kernels / "commrouter" / "kernel.json").read_text())["language"] == "python"
    assert spec.display_name == "commrouter: each cell a program"  # not mistaken for Python's
