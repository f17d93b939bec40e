"""The main job: JupyterLab on 127.0.0.1 with the demo notebook on the standard Python kernel.

Installs the reference kernel's spec into this environment (the launcher's "commrouter: each
cell a program"), copies the demo notebook to a working directory outside the repository (so
the tracked `docs/demo.ipynb` is never edited and no checkpoint folder lands in the tree), then
runs JupyterLab in the foreground with a fresh token and prints the URL to open. A restart within
a minute gets the same port back (the probe sets SO_REUSEADDR, as the server does).
JupyterLab and ipykernel are the optional extra `lab`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from commrouter.kernel.spec import install

DEMO = Path(__file__).resolve().parents[1] / "docs" / "demo.ipynb"


def work_dir() -> Path:
    """Where `make run` keeps its working copy of the demo: inside this environment."""
    return Path(sys.prefix) / "share" / "commrouter-lab"


def working_copy(notebook: Path, directory: Path) -> Path:
    """`notebook` copied into `directory`, unless a copy there is newer (the user's edits)."""
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / notebook.name
    if not copy.exists() or copy.stat().st_mtime < notebook.stat().st_mtime:
        shutil.copyfile(notebook, copy)
    return copy


def free_port(preferred: int) -> int:
    """`preferred` if it can be bound (even with old connections in TIME_WAIT), else any."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def main(port: int = 8888, notebook: Path = DEMO, directory: Path | None = None) -> int:
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError:
        print("JupyterLab is not installed: pip install 'commrouter[lab]'", file=sys.stderr)
        return 2
    spec = install(sys_prefix=True)
    copy = working_copy(notebook, directory or work_dir())
    token = secrets.token_hex(16)
    port = free_port(port)
    root = copy.parent
    url = f"http://127.0.0.1:{port}/lab/tree/{copy.name}?token={token}"
    print(f"kernelspec 'commrouter' (each cell a program) installed in {spec}", flush=True)
    print(f"working copy of the demo: {copy} (delete it to start again)", flush=True)
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
