"""A real JupyterLab server on 127.0.0.1 with the commrouter kernel, and Debian's Chromium
driven by Playwright. Every wait is bounded."""

from __future__ import annotations

import json
import os
import re
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

from commrouter.kernel.spec import DISPLAY_NAME, KERNEL_NAME, install

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
WAIT = 60_000  # ms, the bound on every wait in the page
# the two kernels: the standard Python kernel (with `%load_ext commrouter`) and the reference one
IPYKERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
REFERENCE = {"name": KERNEL_NAME, "display_name": DISPLAY_NAME, "language": "python"}

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


def notebook(*sources: str, kernel: dict[str, str] = REFERENCE) -> dict[str, Any]:
    """A notebook whose cells are `sources`, bound to `kernel` (default: the reference one)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": dict(kernel),
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
    app: str = "jupyterlab"  # or "notebook": Notebook 7 (same server, its own pages)

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
                self.app,
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                *(
                    [
                        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: its commands
                    ]
                    if self.app == "jupyterlab"
                    else ["--JupyterNotebookApp.expose_app_in_browser=True"]
                ),
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
def lab_server(
    tmp: Path, app: str = "jupyterlab", env: dict[str, str] | None = None
) -> Iterator[LabServer]:
    """JupyterLab (or Notebook 7: `app="notebook"`) with the commrouter kernel, isolated from
    the user's Jupyter files; `env` adds to the server's (and its kernels') environment."""
    prefix = tmp / "prefix"
    install(prefix=str(prefix))
    root = tmp / "notebooks"
    root.mkdir()
    home = tmp / "home"
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get notified about Jupyter news?" prompt over the page
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    widgets = home / "lab-settings" / "@jupyter-widgets" / "jupyterlab-manager"
    widgets.mkdir(parents=True)  # saved notebooks keep widget state (ipywidgets' option)
    (widgets / "plugin.jupyterlab-settings").write_text('{"saveState": true}')
    extra = env or {}
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
        **extra,
    }
    server = LabServer(
        root, free_port(), uuid.uuid4().hex, tmp / "lab.log", tmp / "kernel.jsonl", env=env, app=app
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


COMM_NOT_FOUND = "Comm not found for comm id "


def refused_widget_control(kernel_log: Path) -> set[str]:
    """The comm ids of `jupyter.widget.control` comms the reference kernel refused."""
    if not kernel_log.exists():
        return set()
    refused = set()
    for line in kernel_log.read_text(encoding="utf-8").splitlines():
        if '"kernel.comm_refused"' not in line:
            continue
        event = json.loads(line)
        if event.get("target_name") == "jupyter.widget.control":
            refused.add(event.get("comm_id"))
    return refused


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


def slide_at(slider: Any, fraction: float) -> str:
    """Click a slider's track at `fraction` of its width, as a user does; returns the value it
    took (the thumb's width makes the exact value depend on layout)."""
    slider.wait_for(timeout=WAIT)
    before = slider.input_value()
    box = slider.bounding_box()
    assert box is not None
    slider.click(position={"x": box["width"] * fraction, "y": box["height"] / 2})
    after = slider.input_value()
    assert after != before, f"the click left the slider at {before}"
    return after


class Page:
    """One browser tab on a notebook, recording console errors."""

    def __init__(
        self,
        server: LabServer,
        browser: Any,
        name: str,
        *cells: str,
        source: Path | None = None,
        kernel: dict[str, str] = REFERENCE,
        running: bool = False,
    ) -> None:
        self.server = server
        self.running = running  # a cell (run from another tab) is running: the kernel is busy
        self.name = name
        path = server.root / f"{name}.ipynb"
        if source is not None:
            shutil.copyfile(source, path)
            kernel = json.loads(path.read_text())["metadata"]["kernelspec"]
        elif not path.exists():
            path.write_text(json.dumps(notebook(*cells, kernel=kernel)))
        self.status = f"{kernel['display_name']} | Idle"
        self.path = path
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.open()

    def open(self) -> None:
        """Open the notebook alone, in a workspace of its own (JupyterLab otherwise restores
        the tabs other pages left open)."""
        workspace = f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.page.goto(
            f"{self.server.base}/lab/workspaces/{workspace}/tree/{self.name}.ipynb"
            f"?reset&token={self.server.token}"
        )
        if self.running:
            self.kernel_connected()
        else:
            self.kernel_idle()

    def kernel_connected(self) -> None:
        """The status bar names the kernel, idle or busy."""
        name = re.escape(self.status.split(" | ")[0])
        self.page.get_by_text(re.compile(rf"^{name} \| (Idle|Busy)$")).wait_for(timeout=WAIT)

    def kernel_idle(self) -> None:
        """The status bar says the kernel is connected and idle (the execution indicator
        says 'idle' before the kernel is even connected)."""
        self.page.get_by_text(self.status).wait_for(timeout=WAIT)

    def run_cell(self, index: int = 0) -> None:
        """Run the `index`-th code cell (markdown cells are not counted)."""
        self.page.locator(".jp-CodeCell .jp-InputArea-editor").nth(index).click()
        self.page.keyboard.press("Shift+Enter")

    def output(self, text: str) -> Any:
        """The first cell output holding `text` (not the cell's source, which may too)."""
        return self.page.locator(".jp-OutputArea-output").get_by_text(text).first

    def text(self, text: str) -> None:
        self.output(text).wait_for(timeout=WAIT)

    def hub_open(self) -> None:
        self.page.wait_for_function(
            "globalThis.commrouter && globalThis.commrouter.opened", timeout=WAIT
        )

    def slide(self, fraction: float, which: int = -1) -> str:
        """Click the slider's track at `fraction` of its width, as a user does; returns the
        value the slider took (the thumb's width makes the exact value depend on layout)."""
        return slide_at(self.page.locator(".commrouter-slider input").nth(which), fraction)

    def slider_shows(self, value: str) -> None:
        self.page.wait_for_function(
            "v => [...document.querySelectorAll('.commrouter-slider input')]"
            ".some(e => e.value === v)",
            arg=value,
            timeout=WAIT,
        )

    def save(self) -> dict:
        self.page.keyboard.press("Control+s")
        self.page.locator(".jp-mod-dirty").wait_for(state="detached", timeout=WAIT)
        return json.loads(self.path.read_text())

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def no_errors(self) -> None:
        """Nothing went to the browser console as an error, and no cell wrote to stderr.

        One error is JupyterLab's, not ours: with ipywidgets installed, each tab's widget manager
        opens a `jupyter.widget.control` comm; the reference kernel refuses it with a comm_close,
        which IOPub brings to every tab, and a tab that did not open that comm logs "Comm not
        found for comm id ...". Only those ids, as the kernel's log names them, are ignored."""
        refused = refused_widget_control(self.server.kernel_log)
        errors = [e for e in self.errors if e.removeprefix(COMM_NOT_FOUND) not in refused]
        assert errors == [], errors
        stderr = self.page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
        assert stderr.count() == 0, stderr.all_inner_texts()

    def close(self) -> None:
        self.screenshot(f"{self.name}-final")  # the final page, pass or fail, as an artifact
        self.page.close()
