"""The widget transport in a real browser: the same widget flow in JupyterLab and in Notebook 7
(a real jupyter_server, a real ipykernel with `%load_ext commrouter`, Debian's headless
Chromium). The page's link goes over the link widget's custom messages on the page's own kernel
connection: no WebSocket of the hub's own. Widgets drive a callback, a busy synchronous cell
hears the page, a read is answered, the saved notebook keeps the widget's state, and after a
reload the link comes back from the widget manager's restore without re-running a cell."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.browser_harness import (
    ARTIFACTS,
    IPYKERNEL,
    WAIT,
    chromium,
    lab_server,
    notebook,
    slide_at,
)
from tests.test_browser import FLOOD_CELL, FLOOD_PAGE, read_from

pytestmark = pytest.mark.timeout(300)

CELLS = (
    "%load_ext commrouter",
    """from commrouter import program
from commrouter.program.widgets import Label, Slider
level = Slider(0, min=0, max=10, label="level", address="/w/level").show()
label = Label("waiting", address="/w/label").show()
level.on_change(lambda v: setattr(label, "value", f"level {v}"))
""",
    """import time
start = level.value
print("looping", flush=True)
deadline = time.monotonic() + 60
while level.value == start and time.monotonic() < deadline:
    pass  # a synchronous loop: the kernel's main shell is busy
print("loop saw", level.value)
""",
    'print("read", program.read("/w/level", timeout=10))',
)

# the kernel of the notebook on this page is connected and idle (JupyterLab and Notebook 7 both
# expose their application as window.jupyterapp)
KERNEL_IDLE = """() => {
  const app = globalThis.jupyterapp;
  const widget = app && app.shell.currentWidget;
  const session = widget && widget.sessionContext && widget.sessionContext.session;
  const kernel = session && session.kernel;
  return Boolean(kernel && kernel.connectionStatus === "connected" && kernel.status === "idle");
}"""
KERNEL_ID = "() => jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
# Notebook 7.6's own page error, thrown by its keyboard-shortcuts settings plugin on every page
# it serves (seen on its file browser page with no notebook open and no settings files): not
# ours, and the only error ignored, in Notebook 7 only
NOTEBOOK7_OWN_ERROR = "pageerror: Cannot read properties of undefined (reading 'schema')"
WINDOW = "id => globalThis.commrouter.links.get(id).channel.windowId"
LINK_DOWN = "id => !globalThis.commrouter.links.get(id).opened"
STREAM = "id => (globalThis.commrouter.links.get(id).position || {}).stream"
LINK_OPEN = """id => {
  const link = globalThis.commrouter && globalThis.commrouter.links.get(id);
  return Boolean(link && link.opened && link.transport === "widget");
}"""


class Tab:
    """One browser tab on a notebook, in JupyterLab or Notebook 7."""

    def __init__(
        self,
        server: Any,
        browser: Any,
        name: str,
        cells: tuple[str, ...] = CELLS,
        *,
        reuse: bool = False,
    ) -> None:
        """`reuse`: open the notebook as it is on disk (a second tab on its running kernel)."""
        self.server = server
        self.path = server.root / f"{name}.ipynb"
        if not reuse:
            self.path.write_text(json.dumps(notebook(*cells, kernel=IPYKERNEL)))
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.errors: list[str] = []
        self.sockets: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        if server.app == "jupyterlab":
            workspace = f"{name}-{uuid.uuid4().hex[:8]}"
            where = f"lab/workspaces/{workspace}/tree/{name}.ipynb?reset&"
        else:
            where = f"notebooks/{name}.ipynb?"
        self.page.goto(f"{server.base}/{where}token={server.token}")
        self.idle()
        self.kernel_id = self.page.evaluate(KERNEL_ID)

    def idle(self) -> None:
        self.page.wait_for_function(KERNEL_IDLE, timeout=WAIT)

    def run_cell(self, index: int) -> None:
        self.page.locator(".jp-CodeCell .jp-InputArea-editor").nth(index).click()
        self.page.keyboard.press("Shift+Enter")

    def text(self, text: str) -> None:
        self.page.locator(".jp-OutputArea-output").get_by_text(text).first.wait_for(timeout=WAIT)

    def label(self, text: str) -> None:
        self.page.locator(".commrouter-label span", has_text=text).wait_for(timeout=WAIT)

    def link_open(self) -> None:
        self.page.wait_for_function(LINK_OPEN, arg=self.kernel_id, timeout=WAIT)

    def slide(self, fraction: float) -> str:
        """Click the slider's track at `fraction` of its width; the value the slider took."""
        return slide_at(self.page.locator(".commrouter-slider input").last, fraction)

    def save(self) -> dict[str, Any]:
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(
            "() => !jupyterapp.shell.currentWidget.context.model.dirty", timeout=WAIT
        )
        return json.loads(self.path.read_text())

    def hub_sockets(self) -> list[str]:
        """WebSockets the hub opened itself (the script transport's, named by its session)."""
        session = self.page.evaluate("globalThis.commrouter.sessionId")
        return [url for url in self.sockets if session in url]

    def no_errors(self) -> None:
        """Nothing went to the browser console as an error (but Notebook 7's own)."""
        own = [NOTEBOOK7_OWN_ERROR] if self.server.app == "notebook" else []
        assert [error for error in self.errors if error not in own] == []

    def close(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        self.page.close()


@pytest.fixture(scope="module", params=["jupyterlab", "notebook"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"widget-{request.param}")
    with lab_server(tmp, app=request.param) as server, chromium(tmp) as browser:
        yield server, browser


def widget_state(saved: dict[str, Any]) -> dict[str, Any]:
    """The saved notebook's widget state of the link widget (by its config)."""
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    links = [m["state"] for m in state.values() if "config" in m["state"]]
    assert len(links) == 1, state
    return links[0]


def test_the_widget_flow_and_a_reload_without_re_running(server):
    lab, browser = server
    name = f"widget-{lab.app}"
    tab = Tab(lab, browser, name)
    try:
        tab.run_cell(0)
        tab.run_cell(1)
        tab.page.locator(".commrouter-slider input").wait_for(timeout=WAIT)
        tab.link_open()
        first = tab.slide(0.3)
        tab.label(f"level {first}")  # page -> kernel callback -> page
        tab.run_cell(2)
        tab.text("looping")
        moved = tab.slide(0.7)
        tab.text(f"loop saw {moved}")  # the page's value reached the busy loop
        tab.label(f"level {moved}")
        tab.run_cell(3)
        tab.text(f"read {moved}")  # the kernel asked the page
        tab.idle()
        assert tab.hub_sockets() == []  # the link used the page's own kernel connection
        saved = tab.save()
        state = widget_state(saved)
        assert state["config"]["kernel_id"] == tab.kernel_id
        assert state["values"]["/w/label"] == f"level {moved}"  # a static render has it
        tab.page.reload()  # the hub is gone; no cell is run again
        tab.idle()
        tab.link_open()  # the widget manager restored the model: its module opened the link
        after = tab.slide(0.15)
        tab.label(f"level {after}")  # the callback of cell 1 still runs, for the new page
        assert tab.hub_sockets() == []
        # a kernel restart: the widget manager drops the model (the link goes down); re-running
        # the cells makes a new widget, whose window links to the new router's new stream
        stream = tab.page.evaluate(STREAM, tab.kernel_id)
        lab.api("POST", f"api/kernels/{tab.kernel_id}/restart")
        tab.page.wait_for_function(LINK_DOWN, arg=tab.kernel_id, timeout=WAIT)
        tab.idle()
        tab.run_cell(0)
        tab.run_cell(1)
        tab.page.wait_for_function(
            f"id => ({STREAM})(id) !== {json.dumps(stream)}", arg=tab.kernel_id, timeout=WAIT
        )
        tab.link_open()
        restarted = tab.slide(0.9)
        tab.label(f"level {restarted}")
        tab.no_errors()
    finally:
        tab.close(name)


def test_a_flood_into_a_busy_page_over_the_widget_loses_nothing(server):
    """tests/test_browser.py's flood (the reference kernel, the install script) over the widget
    transport under ipykernel: 1,000 label values into a page whose main thread is busy for 2 s;
    the kernel probes the busy page without declaring it dead, drops nothing, and sync() returns
    once the page has the last value."""
    lab, browser = server
    name = f"flood-{lab.app}"
    log_start = lab.kernel_log.stat().st_size if lab.kernel_log.exists() else 0
    tab = Tab(lab, browser, name, cells=("%load_ext commrouter", FLOOD_CELL))
    try:
        tab.run_cell(0)
        tab.run_cell(1)
        tab.text("ready for go")
        tab.link_open()
        tab.page.evaluate(FLOOD_PAGE)
        tab.text("flood synced")
        tab.label("1000 / 1000")
        page = tab.page.evaluate("({...globalThis.flood, counters: commrouter.counters})")
        assert tab.hub_sockets() == []
        tab.no_errors()
    finally:
        tab.close(name)
    events = [json.loads(line) for line in read_from(lab.kernel_log, log_start)]
    trouble = [e for e in events if e["event"] in ("connection.stale", "connection.values_dropped")]
    seen = [int(value.split(" / ")[0]) for value, _ in page["seen"]]
    assert page["busyEnd"] - page["busyStart"] >= 2000
    assert any(e["event"] == "heartbeat.ping_sent" for e in events)  # the busy page was probed
    assert seen[-1] == 1000
    assert seen == sorted(set(seen))  # in order, each once (older values may be merged away)
    assert trouble == []


def test_two_tabs_on_one_widget_are_two_windows_that_both_follow_the_program(server):
    """The same notebook in two tabs (one kernel): each tab's widget manager has its own model
    of the link widget, so each is a window of its own; the program's values reach both, and
    either tab's slider drives the program."""
    lab, browser = server
    name = f"tabs-{lab.app}"
    first = Tab(lab, browser, name)
    second = None
    try:
        first.run_cell(0)
        first.run_cell(1)
        first.link_open()
        first.idle()
        first.save()  # the second tab shows the saved outputs: the slider and label
        second = Tab(lab, browser, name, reuse=True)
        assert second.kernel_id == first.kernel_id
        second.link_open()  # its widget manager restored the model: a second window
        windows = {tab.page.evaluate(WINDOW, tab.kernel_id) for tab in (first, second)}
        assert len(windows) == 2
        moved = second.slide(0.6)
        first.label(f"level {moved}")  # the program's answer reaches both windows
        second.label(f"level {moved}")
        again = first.slide(0.2)
        second.label(f"level {again}")
        first.no_errors()
        second.no_errors()
    finally:
        first.close(f"{name}-1")
        if second is not None:
            second.close(f"{name}-2")
