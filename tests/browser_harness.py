"""A real JupyterLab server on 127.0.0.1 with the commrouter kernel, and Debian's Chromium
driven by Playwright. Every wait is bounded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commrouter.kernel.spec import install

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebook(*sources: str) -> dict[str, Any]:
    """A notebook whose cells are `sources`, bound to the commrouter kernel."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "commrouter",
                "display_name": "Python (commrouter)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": uuid.uuid4().hex[:8],
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for source in sources
        ],
    }


@dataclass
class LabServer:
    root: Path
    port: int
    token: str
    log_file: Path
    kernel_log: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.url(path),
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start(self, timeout: float = 90.0) -> None:
        out = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {self.log_file.read_text()[-2000:]}")
            try:
                self.api("GET", "api/status")
                return
            except OSError:
                time.sleep(0.2)  # bounded: polling a starting server
        raise TimeoutError(f"jupyter lab not answering within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.process = None


@contextmanager
def lab_server(tmp: Path) -> Iterator[LabServer]:
    """JupyterLab with the commrouter kernel, isolated from the user's Jupyter files."""
    prefix = tmp / "prefix"
    install(prefix=str(prefix))
    root = tmp / "notebooks"
    root.mkdir()
    home = tmp / "home"
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get notified about Jupyter news?" prompt over the page
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {
        **os.environ,
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "COMMROUTER_LOG_FILE": str(tmp / "kernel.jsonl"),
        "COMMROUTER_LOG_CONSOLE": "false",
        "COMMROUTER_LOG_LEVEL": "debug",
    }
    server = LabServer(
        root, free_port(), uuid.uuid4().hex, tmp / "lab.log", tmp / "kernel.jsonl", env=env
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium(tmp: Path) -> Iterator[Any]:
    """A Playwright browser on Debian's Chromium (Playwright gives it a fresh profile)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
