"""The browser side in a real JupyterLab and a real headless Chromium: widgets driving a
program, a program driving widgets, recovery after a page reload and a kernel restart, and a
flood of values into a page whose main thread is busy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser_harness import ARTIFACTS, IPYKERNEL, WAIT, Page, chromium, lab_server

ROOT = Path(__file__).resolve().parents[1]

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
    """What `make run` opens, on ipykernel: widgets driving callbacks, a cell driving widgets,
    state across cells and read, and a busy synchronous cell that still hears the page."""
    server, browser = lab
    tab = Page(server, browser, "demo", source=ROOT / "docs" / "demo.ipynb")
    try:
        tab.run_cell(0)  # %load_ext commrouter
        tab.run_cell(1)
        tab.hub_open()
        # ipywidgets and anywidget are installed: the demo links over the widget transport
        assert tab.page.evaluate("globalThis.commrouter.current.transport") == "widget"
        speed = tab.slide(0.25, which=0)
        tab.page.locator(".commrouter-select select").select_option("green")
        tab.page.locator(
            ".commrouter-label span", has_text=f"speed {speed}, colour green"
        ).wait_for(timeout=WAIT)
        tab.run_cell(2)
        tab.page.locator(".commrouter-label span", has_text="done").wait_for(timeout=WAIT)
        tab.slider_shows("20")
        tab.run_cell(3)
        tab.text(f"the speed slider is at {speed} - the page says {speed}")
        tab.run_cell(4)
        tab.page.locator(".commrouter-button button", has_text="Stop").click()
        tab.text(f"stopped at speed {speed} colour green")
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


IPYTHON_WIDGETS = """from commrouter import program
from commrouter.program.widgets import Label, Slider
level = Slider(0, min=0, max=10, label="level", address="/b/level").show()
label = Label("waiting").show()
level.on_change(lambda v: setattr(label, "value", f"level {v}"))
"""

IPYTHON_BUSY = """import time
start = level.value
print("looping", flush=True)
deadline = time.monotonic() + 60
while level.value == start and time.monotonic() < deadline:
    pass  # a synchronous loop: the kernel's main shell is busy
print("loop saw", level.value)
"""


def test_ipykernel_a_busy_cell_sees_the_slider_and_earlier_widgets_stay_live(lab):
    server, browser = lab
    tab = Page(
        server,
        browser,
        "ipython",
        # the install script's transport here (the widget transport: tests/test_browser_widget.py)
        "%env COMMROUTER_CONNECTION_TRANSPORT=script\n%load_ext commrouter",
        IPYTHON_WIDGETS,
        IPYTHON_BUSY,
        'print("read", program.read("/b/level", timeout=10))',
        kernel=IPYKERNEL,
    )
    try:
        tab.run_cell(0)
        tab.run_cell(1)
        tab.page.locator(".commrouter-slider input").wait_for(timeout=WAIT)
        tab.hub_open()
        assert tab.page.evaluate("globalThis.commrouter.current.transport") == "socket"
        assert tab.page.evaluate("globalThis.commrouter.subshellId")  # the link uses a subshell
        tab.run_cell(2)
        tab.text("looping")
        moved = tab.slide(0.7)
        tab.text(f"loop saw {moved}")  # the page's value reached the busy loop
        again = tab.slide(0.2)  # the widgets and callback of cell 1 still work
        tab.page.locator(".commrouter-label span", has_text=f"level {again}").wait_for(timeout=WAIT)
        tab.run_cell(3)
        tab.text(f"read {again}")
        tab.screenshot("ipython")
        tab.no_errors()
    finally:
        tab.close()
