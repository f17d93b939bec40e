"""Several windows on one kernel, in a real JupyterLab and headless Chromium: the same notebook
in a second tab, then the first tab reloaded, while the program lives. Each tab links itself
from the saved widget output (no re-run), is shown the current state at once, drives the
program, and follows what the other tab does (docs/protocol.md, "Windows"). And a re-run cell
whose slider was moved: the page, the program and the saved notebook agree on the code's
value."""

from __future__ import annotations

import json
import time

import pytest

from tests.browser_harness import WAIT, Page, chromium, lab_server

CELL = """\
from commrouter import program
from commrouter.program.widgets import Label, Slider
slider = Slider(5, min=0, max=10, label="level", address="/w/level").show()
label = Label("waiting", address="/w/label").show()
def moved(value):
    label.value = f"slider at {value}"
    print("program got slider", value, flush=True)
slider.on_change(moved)
with program.listen("/w/done") as done:
    next(iter(done))
print("cell done", flush=True)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("windows")
    with lab_server(tmp) as server, chromium(tmp) as browser:
        yield server, browser


def saved_outputs(tab: Page) -> str:
    """Save while the cell runs (its displays keep changing, so the notebook stays dirty) and
    return the first cell's outputs once the file holds the widgets."""
    # (by command: the focus is in a widget, which keeps keys from JupyterLab)
    tab.page.wait_for_function("globalThis.jupyterapp && jupyterapp.commands", timeout=WAIT)
    tab.page.evaluate("jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + WAIT / 1000
    while time.monotonic() < deadline:
        cells = json.loads(tab.path.read_text())["cells"]
        html = json.dumps(cells[0]["outputs"])
        if "commrouter-slider" in html:
            return html
        time.sleep(0.1)
    raise AssertionError("the notebook was not saved with the widgets")


def shows(tab: Page, slider: str, label: str) -> None:
    """The tab's slider and label show these values (sent to it, not typed in it)."""
    tab.slider_shows(slider)
    tab.page.locator(".commrouter-label span", has_text=label).wait_for(timeout=WAIT)


def test_a_second_tab_and_a_reloaded_tab_link_themselves_and_share_the_state(lab):
    server, browser = lab
    first = Page(server, browser, "windows", CELL)
    second = None
    try:
        first.run_cell()
        first.hub_open()
        level = first.slide(0.8)
        first.text(f"program got slider {level}")
        shows(first, level, f"slider at {level}")
        html = saved_outputs(first)  # the running cell's widget outputs, with the hub
        assert "commrouter.connect(" in html and "data-commrouter-install" not in html

        second = Page(server, browser, "windows", running=True)  # the notebook in a 2nd tab
        second.hub_open()  # linked from the saved output: nothing was re-run
        shows(second, level, f"slider at {level}")  # the state, as it is now
        moved = second.slide(0.2)
        first.text(f"program got slider {moved}")  # the program's output is in the first tab
        shows(first, moved, f"slider at {moved}")  # the first tab follows the second
        shows(second, moved, f"slider at {moved}")

        first.page.reload()  # the first tab reloads while the program lives
        first.kernel_connected()
        first.hub_open()
        shows(first, moved, f"slider at {moved}")
        again = first.slide(0.5)
        shows(second, again, f"slider at {again}")

        second.page.evaluate("commrouter.send('/w/done', true)")
        second.kernel_idle()
        first.no_errors()
        second.no_errors()
    finally:
        first.close()
        if second is not None:
            second.close()


RERUN_CELL = """\
from commrouter import program
from commrouter.program.widgets import Slider
slider = Slider(5, min=0, max=10, label="level", address="/r/level").show()
slider.on_change(lambda value: print("program got slider", value, flush=True))
with program.listen("/r/done") as done:
    next(iter(done))
print("program ends with", slider.value, flush=True)
"""


def test_a_re_run_leaves_page_program_and_saved_notebook_agreeing(lab):
    """The slider (a stable address) is moved, then the cell re-run: the code's value wins,
    in the page, in the program and in the saved notebook."""
    server, browser = lab
    tab = Page(server, browser, "rerun", RERUN_CELL)
    try:
        tab.run_cell()
        tab.hub_open()
        moved = tab.slide(0.9)
        assert moved != "5"
        tab.text(f"program got slider {moved}")
        tab.page.evaluate("commrouter.send('/r/done', true)")
        tab.text(f"program ends with {moved}")
        tab.kernel_idle()
        tab.run_cell()  # the same code again: its slider starts at 5
        tab.slider_shows("5")
        tab.page.evaluate("commrouter.send('/r/done', true)")
        tab.text("program ends with 5")
        tab.kernel_idle()
        saved = json.dumps(tab.save()["cells"][0]["outputs"])
        assert 'value=\\"5\\"' in saved and f'value=\\"{moved}\\"' not in saved
        tab.no_errors()
    finally:
        tab.close()
