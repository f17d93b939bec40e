"""Widgets as people use them, in a real JupyterLab and headless Chromium: every widget driven
from the keyboard inside JupyterLab, in the light and the dark theme (screenshots kept in
artifacts/browser/), shown ended once their program ends (on the page and in the saved
notebook); and two notebooks on two kernels side by side in one page, each driving and
following its own program."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser_harness import (
    ARTIFACTS,
    IPYKERNEL,
    WAIT,
    Page,
    chromium,
    lab_server,
    notebook,
)

KEYS_CELL = """\
from commrouter import program
from commrouter.program.widgets import (
    Button, Checkbox, HBox, Label, Number, Progress, Select, Slider, Text, VBox,
)
slider = Slider(5, min=0, max=10, label="level")
choice = Select(["red", "green", "blue"], label="colour")
name = Text("", label="name", placeholder="your name")
count = Number(3, min=0, max=10, label="count")
flag = Checkbox(False, text="enabled", label="flag")
go, stop = Button("Go"), Button("Stop")
bar = Progress(0, max=4, label="progress")
status = Label("ready", label="status")
VBox(slider, choice, name, count, flag, HBox(go, stop), bar, status).show()
for widget in (slider, choice, name, count, flag, go):
    widget.on_change(lambda value, kind=widget.kind: print("got", kind, repr(value), flush=True))
go.on_change(lambda clicks: setattr(bar, "value", clicks))
name.on_change(lambda text: setattr(status, "value", f"hello {text}"))
with stop.listen() as stops:
    next(iter(stops))
import time
started = time.monotonic()
try:
    program.read("/nothing/here", timeout=30)  # no widget holds it: the page says so at once
except program.NoValue as error:
    print(f"read failed after {time.monotonic() - started:.3f} s: {error}", flush=True)
print("program ends", flush=True)
"""

WIDGET_COUNT = 9  # in KEYS_CELL
STDOUT = "[data-mime-type='application/vnd.jupyter.stdout']"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pages")
    with lab_server(tmp) as server, chromium(tmp) as browser:
        yield server, browser


def command(tab: Page, name: str, args: dict) -> None:
    """Run a JupyterLab command (the server exposes the app as `window.jupyterapp`)."""
    tab.page.wait_for_function("globalThis.jupyterapp && jupyterapp.commands", timeout=WAIT)
    tab.page.evaluate("([name, args]) => jupyterapp.commands.execute(name, args)", [name, args])


def press(tab: Page, selector: str, *keys: str) -> None:
    """Focus the control and press `keys`, as a keyboard user inside JupyterLab does."""
    tab.page.locator(selector).focus()
    for key in keys:
        tab.page.keyboard.press(key)


def test_every_widget_works_from_the_keyboard_in_both_themes_and_ends_disabled(lab):
    server, browser = lab
    tab = Page(server, browser, "keys", KEYS_CELL)
    try:
        tab.run_cell()
        tab.page.locator(".commrouter-label span", has_text="ready").wait_for(timeout=WAIT)
        tab.hub_open()
        first_render = tab.page.locator(".commrouter-slider").get_attribute("id")
        press(tab, ".commrouter-slider input", "ArrowRight")
        tab.text("got slider 6")
        press(tab, ".commrouter-slider input", "End")
        tab.text("got slider 10")
        press(tab, ".commrouter-slider input", "Home")
        tab.text("got slider 0")
        press(tab, ".commrouter-select select", "ArrowDown")
        tab.text("got select 'green'")
        press(tab, ".commrouter-text input", "A", "d", "a", "Enter")
        tab.text("got text 'Ada'")
        tab.page.locator(".commrouter-label span", has_text="hello Ada").wait_for(timeout=WAIT)
        press(tab, ".commrouter-text input", "End", "!", "Tab")  # sent on blur
        tab.text("got text 'Ada!'")
        press(tab, ".commrouter-number input", "ArrowUp")
        tab.text("got number 4")
        press(tab, ".commrouter-number input", "Control+a", "8", "Enter")
        tab.text("got number 8")
        press(tab, ".commrouter-checkbox input", "Space")
        tab.text("got checkbox True")
        go = ".commrouter-button button >> text=Go"
        press(tab, go, "Enter")
        tab.text("got button 1")
        press(tab, go, "Space")
        tab.text("got button 2")
        tab.page.locator(".commrouter-progress output", has_text="50%").wait_for(timeout=WAIT)
        assert tab.page.locator(".commrouter-progress progress").get_attribute("value") is not None

        look = {"light": themed(tab)}
        tab.screenshot("widgets-light")
        command(tab, "apputils:change-theme", {"theme": "JupyterLab Dark"})
        tab.page.wait_for_selector(
            "body[data-jp-theme-light='false']", state="attached", timeout=WAIT
        )
        tab.page.wait_for_function(
            "() => getComputedStyle(document.body).getPropertyValue('--jp-layout-color1')"
            ".trim() !== " + json.dumps(look["light"]["layout"]),
            timeout=WAIT,
        )
        tab.page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=WAIT)
        look["dark"] = themed(tab)
        tab.screenshot("widgets-dark")
        command(tab, "apputils:change-theme", {"theme": "JupyterLab Light"})
        (ARTIFACTS / "widgets-theme.json").write_text(json.dumps(look, indent=2))
        for theme in ("light", "dark"):  # the widgets take the theme's colours
            assert look[theme]["text"] == look[theme]["font"], look
            assert look[theme]["input"] == look[theme]["layout"], look
        assert look["light"]["input"] != look["dark"]["input"]

        # the program re-rendered the layout for the notebook; the page kept its live elements
        tab.page.evaluate("document.activeElement.blur()")  # keys in a widget stay in it
        saved = json.dumps(tab.save()["cells"][0]["outputs"])
        assert "commrouter-slider-" in saved and first_render not in saved
        assert tab.page.locator(".commrouter-slider").get_attribute("id") == first_render
        press(tab, ".commrouter-button button >> text=Stop", "Enter")
        tab.text("program ends")
        stdout = tab.output("read failed").inner_text()
        found = re.search(r"read failed after ([0-9.]+) s.*", stdout)
        assert found is not None
        failed, took = found.group(0), float(found.group(1))
        print("read of an address no widget holds:", failed)
        assert took < 2.0, failed  # not the 30 s timeout
        assert "no synced variable for /nothing/here on this page" in failed
        tab.kernel_idle()
        ended = tab.page.locator(".commrouter-widget[data-ended]")
        tab.page.wait_for_function(
            "n => document.querySelectorAll('.commrouter-widget[data-ended]').length === n",
            arg=WIDGET_COUNT,
            timeout=WAIT,
        )
        assert "program ended" in (ended.first.get_attribute("title") or "").lower()
        controls = tab.page.locator(
            ".commrouter-widget input, .commrouter-widget select, .commrouter-widget button"
        )
        assert controls.count() == 7
        assert all(controls.nth(i).is_disabled() for i in range(controls.count()))
        note = tab.page.locator(".commrouter-layout-ended")  # one note for the layout
        note.scroll_into_view_if_needed()
        assert note.is_visible() and note.inner_text() == "program ended"
        tab.screenshot("widgets-ended")
        saved = json.dumps(tab.save()["cells"][0]["outputs"])
        assert saved.count("data-ended title=") == WIDGET_COUNT
        assert saved.count("program ended</small>") == WIDGET_COUNT + 1  # and the layout's
        assert 'value=\\"8\\"' in saved and "hello Ada!" in saved  # the last values are saved
        tab.no_errors()
    finally:
        tab.close()


def themed(tab: Page) -> dict[str, str]:
    """The theme's colours and the widgets' computed ones, as `rgb(...)` strings."""
    return tab.page.evaluate(
        """() => {
          const probe = (variable) => {
            const element = document.createElement("div");
            element.style.color = `var(${variable})`;
            document.body.appendChild(element);
            const color = getComputedStyle(element).color;
            element.remove();
            return color;
          };
          const style = (selector) => getComputedStyle(document.querySelector(selector));
          return {
            layout: probe("--jp-layout-color1"),
            font: probe("--jp-ui-font-color1"),
            text: style(".commrouter-slider").color,
            input: style(".commrouter-text input").backgroundColor,
          };
        }"""
    )


# The same address in both notebooks: a page that followed one kernel would mix them up.
CELL_A = """\
# notebook A, on the reference kernel
from commrouter import program
from commrouter.program.widgets import Label, Slider, VBox
level = Slider(0, min=0, max=10, label="A level", address="/shared/level")
said = Label("A waiting", label="A says", address="/shared/said")
VBox(level, said).show()
def moved(value):
    said.value = f"A got {value}"
    print("A got", value, flush=True)
level.on_change(moved)
with program.listen("/shared/done") as done:
    next(iter(done))
"""

CELL_B = """\
# notebook B, on ipykernel
from commrouter import program
from commrouter.program.widgets import Label, Slider, VBox
level = Slider(0, min=0, max=10, label="B level", address="/shared/level")
said = Label("B waiting", label="B says", address="/shared/said")
VBox(level, said).show()
def moved(value):
    said.value = f"B got {value}"
    print("B got", value, flush=True)
level.on_change(moved)
"""


def test_two_notebooks_on_two_kernels_in_one_page_each_follow_their_own_program(lab):
    server, browser = lab
    path_b = server.root / "two-b.ipynb"
    path_b.write_text(json.dumps(notebook("%load_ext commrouter", CELL_B, kernel=IPYKERNEL)))
    tab = Page(server, browser, "two-a", CELL_A)
    try:
        command(tab, "docmanager:open", {"path": "two-b.ipynb", "options": {"mode": "split-right"}})
        tab.page.get_by_text(f"{IPYKERNEL['display_name']} | Idle").wait_for(timeout=WAIT)
        cell_a = tab.page.locator(".jp-CodeCell", has_text="# notebook A")
        cell_b = tab.page.locator(".jp-CodeCell", has_text="# notebook B")
        load_b = tab.page.locator(".jp-CodeCell", has_text="%load_ext commrouter")
        for cell in (load_b, cell_b, cell_a):  # Ctrl+Enter: run in place
            cell.locator(".jp-InputArea-editor").click()
            tab.page.keyboard.press("Control+Enter")
        cell_a.locator(".commrouter-slider input").wait_for(timeout=WAIT)
        cell_b.locator(".commrouter-slider input").wait_for(timeout=WAIT)
        kernels = {
            s["path"]: s["kernel"]["id"]
            for s in server.api("GET", "api/sessions")
            if s["path"] in ("two-a.ipynb", "two-b.ipynb")
        }
        assert len(set(kernels.values())) == 2
        tab.page.wait_for_function(
            "ids => ids.every(id => commrouter.links.has(id) && commrouter.kernel(id).opened)",
            arg=list(kernels.values()),
            timeout=WAIT,
        )
        kernel_of = tab.page.evaluate(
            "() => [...document.querySelectorAll('.commrouter-slider')]"
            ".map(element => element.dataset.kernelId)"
        )
        assert sorted(kernel_of) == sorted(kernels.values())  # each widget names its kernel

        cell_a.locator(".commrouter-slider input").focus()
        tab.page.keyboard.press("End")
        cell_b.locator(".commrouter-slider input").focus()
        tab.page.keyboard.press("ArrowRight")
        cell_a.locator(".commrouter-label span", has_text="A got 10").wait_for(timeout=WAIT)
        cell_b.locator(".commrouter-label span", has_text="B got 1").wait_for(timeout=WAIT)
        cell_a.locator(STDOUT, has_text="A got 10").wait_for(timeout=WAIT)
        cell_b.locator(STDOUT, has_text="B got 1").wait_for(timeout=WAIT)
        outputs = {
            name: cell.locator(STDOUT).all_inner_texts()
            for name, cell in (("A", cell_a), ("B", cell_b))
        }
        assert not any(re.search(r"A got 1\b", text) for text in outputs["A"]), outputs
        assert not any("B got 10" in text for text in outputs["B"]), outputs
        assert cell_a.locator(".commrouter-slider input").input_value() == "10"
        assert cell_b.locator(".commrouter-slider input").input_value() == "1"

        tab.page.evaluate(  # A's program ends; B's widgets stay live
            "id => commrouter.kernel(id).send('/shared/done', true)",
            kernels["two-a.ipynb"],
        )
        cell_a.locator(".commrouter-widget[data-ended]").first.wait_for(timeout=WAIT)
        assert cell_b.locator(".commrouter-widget[data-ended]").count() == 0
        cell_b.locator(".commrouter-slider input").focus()
        tab.page.keyboard.press("ArrowRight")
        cell_b.locator(".commrouter-label span", has_text="B got 2").wait_for(timeout=WAIT)
        tab.screenshot("two-kernels")
        tab.no_errors()
    finally:
        tab.close()
