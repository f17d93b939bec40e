"""The main job: JupyterLab on 127.0.0.1 with the commrouter kernel and the demo notebook.

Installs the kernelspec into this environment, then runs JupyterLab in the foreground with a
fresh token and prints the URL to open. JupyterLab is the optional extra `lab`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from commrouter.kernel.spec import install

DEMO = Path(__file__).resolve().parents[1] / "docs" / "demo.ipynb"


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def main(port: int = 8888, notebook: Path = DEMO) -> int:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("JupyterLab is not installed: pip install 'commrouter[lab]'", file=sys.stderr)
        return 2
    spec = install(sys_prefix=True)
    token = secrets.token_hex(16)
    port = _free_port(port)
    root = notebook.parent
    url = f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}"
    print(f"kernelspec 'commrouter' installed in {spec}", flush=True)
    print(f"\n  Open the demo: {url}\n  (Ctrl-C stops the server)\n", flush=True)
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    try:
        return subprocess.call(argv, cwd=root)
    except KeyboardInterrupt:
        return 0
