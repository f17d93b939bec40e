"""The browser side in a real JupyterLab and a real headless Chromium: widgets driving a
program, a program driving widgets, recovery after a page reload and a kernel restart, and a
flood of values into a page whose main thread is busy."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.browser_harness import chromium, lab_server, notebook

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
WAIT = 60_000  # ms, the bound on every wait in the page

WIDGETS_CELL = """\
from commrouter import program
from commrouter.program.widgets import Button, Label, Select, Slider
slider = Slider(5, min=0, max=10, label="level").show()
button = Button("Press").show()
choice = Select(["red", "green", "blue"], label="colour").show()
label = Label("waiting").show()
choice.on_change(lambda colour: print("program got choice", colour, flush=True))
def moved(value):
    label.value = f"slider at {value}"
    print("program got slider", value, flush=True)
slider.on_change(moved)
button.on_change(lambda clicks: print("program got click", clicks, flush=True))
with program.listen("/test/done") as done:
    next(iter(done))
print("program read slider", program.read(slider.address, timeout=30), flush=True)
slider.value = 2
program.sync()
print("cell done", flush=True)
"""

# The page says go and blocks its main thread for 2 s. 1.2 s later (the page silent for longer
# than heartbeat.request_threshold, so the first send probes it and gets no pong for 0.8 s) the
# cell sets a label 1,000 times in a tight loop, then syncs: the kernel must neither declare the
# busy page dead nor drop values, and sync() must return only once the page has them.
FLOOD_CELL = """\
import json, time
from commrouter import program
from commrouter.program.widgets import Label
label = Label("ready", address="/flood/label").show()
with program.listen("/flood/go") as go:
    program.sync()  # the subscription to /flood/go is in place
    print("ready for go", flush=True)
    next(iter(go))
time.sleep(1.2)  # part of the scenario: the flood starts into a page silent for 1.2 s
started = time.time()
for i in range(1, 1001):
    label.value = f"{i} / 1000"
program.sync()
synced = time.time()
print("flood synced", json.dumps({"started": started * 1000, "synced": synced * 1000}), flush=True)
"""

# Records every value the label's address brings to the page (with its arrival time), says
# go, and right after (a task later) keeps the page's main thread busy for 2 s.
FLOOD_PAGE = """() => {
  const hub = globalThis.commrouter;
  const flood = (globalThis.flood = { seen: [], busyStart: 0, busyEnd: 0 });
  hub.subscribe("/flood/label", value => flood.seen.push([value, Date.now()]));
  hub.send("/flood/go", true);
  setTimeout(() => {
    flood.busyStart = Date.now();
    while (Date.now() - flood.busyStart < 2000) {}
    flood.busyEnd = Date.now();
  }, 0);
}"""

ECHO_CELL = """\
from commrouter import program
from commrouter.program.widgets import Slider
slider = Slider(0, min=0, max=10).show()
with slider.listen() as values:
    print("echo", next(iter(values)), flush=True)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    with lab_server(tmp) as server, chromium(tmp) as browser:
        yield server, browser


class Page:
    """One browser tab on a notebook, recording console errors."""

    def __init__(self, server, browser, name: str, *cells: str, source: Path | None = None):
        self.server = server
        self.name = name
        path = server.root / f"{name}.ipynb"
        if source is not None:
            shutil.copyfile(source, path)
        elif not path.exists():
            path.write_text(json.dumps(notebook(*cells)))
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
        self.kernel_idle()

    def kernel_idle(self) -> None:
        """The status bar says the kernel is connected and idle (the execution indicator
        says 'idle' before the kernel is even connected)."""
        self.page.get_by_text("Python (commrouter) | Idle").wait_for(timeout=WAIT)

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
        slider = self.page.locator(".commrouter-slider input").nth(which)
        slider.wait_for(timeout=WAIT)
        before = slider.input_value()
        box = slider.bounding_box()
        assert box is not None
        slider.click(position={"x": box["width"] * fraction, "y": box["height"] / 2})
        after = slider.input_value()
        assert after != before, f"the click left the slider at {before}"
        return after

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
        """Nothing went to the browser console as an error, and no cell wrote to stderr or
        failed."""
        assert self.errors == []
        stderr = self.page.locator(
            "[data-mime-type='application/vnd.jupyter.stderr'],"
            "[data-mime-type='application/vnd.jupyter.error']"
        )
        assert stderr.count() == 0, stderr.all_inner_texts()

    def close(self) -> None:
        self.screenshot(f"{self.name}-final")  # the final page, pass or fail, as an artifact
        self.page.close()


def test_widgets_drive_the_program_and_the_program_drives_widgets(lab):
    server, browser = lab
    tab = Page(server, browser, "widgets", WIDGETS_CELL)
    try:
        tab.run_cell()
        tab.page.locator(".commrouter-slider input").wait_for(timeout=WAIT)
        tab.hub_open()
        value = tab.slide(0.7)
        tab.text(f"program got slider {value}")
        tab.page.locator(".commrouter-label span", has_text=f"slider at {value}").wait_for(
            timeout=WAIT
        )
        tab.page.locator(".commrouter-button button").click()
        tab.text("program got click 1")
        tab.page.locator(".commrouter-select select").select_option("green")
        tab.text("program got choice green")
        tab.page.evaluate("commrouter.send('/test/done', true)")
        tab.text(f"program read slider {value}")  # answered from the page's synced variable
        tab.text("cell done")
        tab.slider_shows("2")  # the program moved the slider
        tab.kernel_idle()  # the program has exited: its widgets' displays are re-rendered
        saved = tab.save()
        tab.screenshot("widgets")
        html = json.dumps(saved["cells"][0]["outputs"])
        assert "data-commrouter-install" not in html  # the install script is never saved
        assert 'value=\\"2\\"' in html  # the widget's last state is
        tab.no_errors()
    finally:
        tab.close()


def test_a_reloaded_page_works_again_after_re_running_the_cell(lab):
    server, browser = lab
    tab = Page(server, browser, "reload", ECHO_CELL)
    try:
        tab.run_cell()
        tab.hub_open()
        tab.text(f"echo {tab.slide(0.3)}")
        tab.kernel_idle()
        tab.page.reload()  # the page's hub is gone; the kernel lives on with a dead comm
        tab.kernel_idle()
        tab.run_cell()  # the kernel probes the silent link, gets no pong, installs again
        tab.hub_open()
        tab.text(f"echo {tab.slide(0.6)}")
        tab.screenshot("reload")
        tab.no_errors()
    finally:
        tab.close()


def test_after_a_kernel_restart_re_running_the_cell_works(lab):
    server, browser = lab
    tab = Page(server, browser, "restart", ECHO_CELL)
    try:
        tab.run_cell()
        tab.hub_open()
        tab.text(f"echo {tab.slide(0.2)}")
        kernel_id = server.api("GET", "api/sessions")[0]["kernel"]["id"]
        server.api("POST", f"api/kernels/{kernel_id}/restart")
        tab.kernel_idle()
        tab.run_cell()
        tab.page.wait_for_function(
            "globalThis.commrouter.opened && globalThis.commrouter.attempts === 0", timeout=WAIT
        )
        tab.text(f"echo {tab.slide(0.8)}")
        tab.screenshot("restart")
        tab.no_errors()
    finally:
        tab.close()


def test_the_demo_notebook(lab):
    """What `make run` opens: widgets driving a program, a program driving widgets, read."""
    server, browser = lab
    tab = Page(server, browser, "demo", source=ROOT / "docs" / "demo.ipynb")
    try:
        tab.run_cell(0)
        tab.hub_open()
        speed = tab.slide(0.25)
        tab.page.locator(".commrouter-select select").select_option("green")
        tab.page.locator(
            ".commrouter-label span", has_text=f"speed {speed}, colour green"
        ).wait_for(timeout=WAIT)
        tab.page.locator(".commrouter-button button", has_text="Stop").click()
        tab.text(f"stopped at speed {speed} colour green")
        tab.run_cell(1)
        tab.page.locator(".commrouter-label span", has_text="done").wait_for(timeout=WAIT)
        tab.slider_shows("20")
        tab.run_cell(2)
        tab.text(f"the speed slider is at {speed}")
        tab.screenshot("demo")
        tab.no_errors()
    finally:
        tab.close()


def test_a_flood_into_a_busy_page_loses_nothing_and_shows_the_last_value_at_once(lab):
    server, browser = lab
    log_start = server.kernel_log.stat().st_size if server.kernel_log.exists() else 0
    tab = Page(server, browser, "flood", FLOOD_CELL)
    try:
        tab.run_cell()
        tab.text("ready for go")
        tab.hub_open()
        tab.page.evaluate(FLOOD_PAGE)
        tab.text("flood synced")
        cell = json.loads(tab.output("flood synced").inner_text().split("flood synced")[1])
        tab.page.locator(".commrouter-label span", has_text="1000 / 1000").wait_for(timeout=WAIT)
        page = tab.page.evaluate("({...globalThis.flood, counters: commrouter.counters})")
        tab.screenshot("flood")
        tab.no_errors()
    finally:
        tab.close()
    events = [json.loads(line) for line in read_from(server.kernel_log, log_start)]
    trouble = [e for e in events if e["event"] in ("connection.stale", "connection.values_dropped")]
    pings = [e for e in events if e["event"] == "heartbeat.ping_sent"]
    seen = [int(value.split(" / ")[0]) for value, _ in page["seen"]]
    final_at = page["seen"][-1][1]
    measured = {
        "values_at_page": len(seen),
        "busy_ms": page["busyEnd"] - page["busyStart"],
        "loop_to_sync_ms": round(cell["synced"] - cell["started"]),
        "sync_after_busy_ms": round(cell["synced"] - page["busyEnd"]),
        "final_value_after_sync_ms": round(final_at - cell["synced"]),
        "pings": len(pings),
        "hub_counters": page["counters"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "flood.json").write_text(json.dumps(measured, indent=2))
    print("flood:", measured)
    assert page["busyEnd"] - page["busyStart"] >= 2000
    assert cell["started"] < page["busyEnd"]  # the flood met a busy page...
    assert pings  # ...that the kernel probed
    assert seen[-1] == 1000
    assert seen == sorted(set(seen))  # in order, each once (older values may be merged away)
    assert final_at - cell["synced"] <= 1000
    assert trouble == []


def read_from(path: Path, offset: int) -> list[str]:
    """The whole lines written to `path` after `offset` bytes (the kernel may be writing one)."""
    with path.open("rb") as log:
        log.seek(offset)
        data = log.read()
    return data[: data.rfind(b"\n") + 1].decode("utf-8").splitlines()
