"""The kernelspec: `commrouter kernel install [--user | --sys-prefix | --prefix P]`."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "commrouter"
DISPLAY_NAME = "commrouter: each cell a program"  # a Python kernel is ipykernel + %load_ext


def kernel_json(python: str | None = None) -> dict[str, object]:
    """The kernel.json that starts this kernel with `python` (default: this interpreter)."""
    return {
        "argv": [python or sys.executable, "-m", "commrouter.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "message",  # interrupt_request on the control channel
        "metadata": {"debugger": False},
    }


def install(*, user: bool = False, prefix: str | None = None, sys_prefix: bool = False) -> Path:
    """Write the kernelspec where jupyter_client looks for it; returns its directory.

    `user`: the user's Jupyter data dir; `sys_prefix`: this environment's `share/jupyter`;
    `prefix`: `<prefix>/share/jupyter`. With none of them, the system-wide location.
    """
    from jupyter_client.kernelspec import KernelSpecManager  # optional dependency

    if sys_prefix:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / KERNEL_NAME
        source.mkdir()
        (source / "kernel.json").write_text(json.dumps(kernel_json(), indent=2) + "\n")
        destination = KernelSpecManager().install_kernel_spec(
            str(source), KERNEL_NAME, user=user, prefix=prefix
        )
    return Path(destination)


def uninstall(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
