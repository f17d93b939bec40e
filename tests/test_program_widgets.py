"""Widgets, program side: the persister (one thread re-renders a widget once its page changes
are quiet), and what widgets publish over a real in-process link: their kernel id, labels and
accessible names, the new kinds, layouts, stable addresses, and the end of the program."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from commrouter import program
from commrouter.program import LinkClosedError, widget_base
from commrouter.program.local import LocalLink
from commrouter.program.widgets import (
    Button,
    Checkbox,
    HBox,
    Label,
    Number,
    Progress,
    Select,
    Slider,
    Text,
    VBox,
    _Persister,
    end_all,
)


class StubWidget:
    """Records when it was persisted; only `_persist` is used by the persister."""

    def __init__(self) -> None:
        self.persisted = 0
        self.done = threading.Event()

    def _persist(self) -> None:
        self.persisted += 1
        self.done.set()


def test_a_burst_of_changes_is_persisted_once_after_the_last():
    persister = _Persister()
    widget = StubWidget()
    for _ in range(50):  # a slider drag
        persister.touch(widget, 0.3)
    assert widget.done.wait(5.0)  # bounded real wait: the program library has no virtual time
    assert widget.persisted == 1
    assert widget not in persister._due


def test_a_forgotten_widget_is_not_persisted_and_others_are():
    persister = _Persister()
    closed, open_ = StubWidget(), StubWidget()
    persister.touch(closed, 0.01)
    persister.forget(closed)
    persister.touch(open_, 0.05)
    assert open_.done.wait(5.0)
    assert (closed.persisted, open_.persisted) == (0, 1)


def test_a_failing_persist_is_reported_and_the_thread_goes_on(capsys):
    persister = _Persister()

    class Broken(StubWidget):
        def _persist(self) -> None:
            raise RuntimeError("the link is gone")

    good = StubWidget()
    persister.touch(Broken(), 0.0)
    persister.touch(good, 0.05)
    assert good.done.wait(5.0)
    assert "RuntimeError: the link is gone" in capsys.readouterr().err


def test_a_program_change_does_not_postpone_a_persist_already_due():
    persister = _Persister()
    widget = StubWidget()
    persister.touch(widget, 60.0, postpone=False)
    due = persister._due[widget]
    persister.touch(widget, 60.0, postpone=False)  # a long run of program changes...
    assert persister._due[widget] == due  # ...is still saved now and then
    persister.touch(widget, 60.0)  # a page change postpones it
    assert persister._due[widget] > due
    persister.forget(widget)


def test_flush_persists_what_is_due_now_and_ignores_a_closed_link(capsys):
    persister = _Persister()

    class Unlinked(StubWidget):
        def _persist(self) -> None:
            raise LinkClosedError("the kernel closed the program link")

    widget = StubWidget()
    persister.touch(Unlinked(), 60.0)
    persister.touch(widget, 60.0)
    persister.flush()  # what runs at the program's exit
    assert widget.persisted == 1
    assert persister._due == {}
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------- widgets on an in-process link


@pytest.fixture
def frames() -> Iterator[list[dict[str, Any]]]:
    """What the program sends its kernel, over a real in-process link with a kernel id."""
    sent: list[dict[str, Any]] = []
    link = LocalLink(lambda frame, parent: sent.append(frame), kernel_id="kernel-7")
    previous = program.use_link(link)
    widget_base.displays.take()  # displays other tests showed are not ours to end
    try:
        yield sent
    finally:
        widget_base.displays.take()
        widget_base.persister.take()
        program.use_link(previous)


def html_of(frame: dict[str, Any]) -> str:
    return frame["data"]["text/html"]


def test_a_widget_names_its_kernel_its_label_and_its_accessible_name(frames):
    Slider(3, min=0, max=5, label="level <1>").show()
    display = frames[0]
    assert display["op"] == "display" and display["update"] is False
    markup = html_of(display)
    assert 'data-kernel-id="kernel-7"' in markup
    assert 'hub.kernel("kernel-7")' in markup  # the binding uses that kernel's link
    control = re.search(r'<input type="range" id="([^"]+)"', markup)
    assert control is not None
    assert f'<label class="commrouter-name" for="{control.group(1)}">level &lt;1&gt;</label>' in (
        markup
    )
    assert 'aria-label="level &lt;1&gt;"' in markup
    assert "event.stopPropagation()" in markup  # JupyterLab's shortcuts do not take the keys
    assert "var(--jp-ui-font-color1" in markup and "var(--jp-layout-color1" in markup
    assert "{ send: false }" in markup  # the program has the initial value already
    assert "disabled" not in markup.split("<script>")[0]


def test_every_kind_renders_a_named_control_and_new_kinds_keep_their_values(frames):
    kinds = [
        Slider(1),
        Button("Go"),
        Select(["a", "b"], "b"),
        Text("hi", placeholder="name"),
        Label("note"),
        Progress(1, max=4),
        Checkbox(True, text="on"),
        Number(2.5, min=0, max=10, step=0.5),
    ]
    for widget in kinds:
        widget.show()
    markups = [html_of(frame) for frame in frames if frame["op"] == "display"]
    assert len(markups) == len(kinds)
    for widget, markup in zip(kinds, markups, strict=True):
        assert f"commrouter-{widget.kind}" in markup
        if widget.labelable:
            assert "aria-label=" in markup, widget.kind
    assert " checked" in markups[6] and 'aria-label="on"' in markups[6]
    assert 'min="0" max="10" step="0.5" value="2.5"' in markups[7]
    assert "25%" in markups[5]
    assert '<option value="b" selected>' in markups[2]
    assert "addEventListener('blur', send)" in markups[3]  # Text: Enter and blur send
    assert "event.key === 'Enter'" in markups[3]


def test_a_stable_address_sends_the_programs_value_when_shown(frames):
    Slider(50, address="/demo/speed").show()
    Slider(7).show()  # a fresh address: nothing on the page can hold an older value
    sends = [(f["address"], f["value"]) for f in frames if f["op"] == "send"]
    assert sends == [("/demo/speed", 50)]


def test_a_layout_is_one_display_re_rendered_for_its_widgets(frames):
    level, name = Slider(2, label="level"), Text("x", label="name")
    box = VBox(level, HBox(name, Button("Go"))).show()
    displays = [f for f in frames if f["op"] == "display"]
    assert len(displays) == 1 and displays[0]["display_id"] == box.display_id
    markup = html_of(displays[0])
    assert markup.count("<style>") == 1
    assert 'class="commrouter-box commrouter-vbox"' in markup
    assert 'class="commrouter-box commrouter-hbox"' in markup
    assert markup.count("<script>") == 3
    subscribed = {f["address"] for f in frames if f["op"] == "subscribe"}
    assert subscribed == {w.address for w in box.widgets()}
    name._received("y")  # a page change...
    widget_base.persister.flush()  # ...re-renders the layout's display
    update = frames[-1]
    assert update["update"] is True and update["display_id"] == box.display_id
    assert 'value="y"' in html_of(update)
    with pytest.raises(RuntimeError):
        level.show()  # shown by its layout
    with pytest.raises(ValueError):
        HBox(level)  # already in one


def test_when_the_program_ends_every_display_is_re_rendered_disabled_with_a_hint(frames):
    slider = Slider(4, label="level").show()
    box = HBox(Button("Go"), Checkbox(False)).show()
    label = Label("done").show()
    slider._received(9)  # due to be persisted: the end renders the last value
    frames.clear()
    end_all()
    updates = {f["display_id"]: html_of(f) for f in frames if f["update"]}
    assert set(updates) == {slider.display_id, box.display_id, label.display_id}
    for markup in updates.values():
        before_script = markup.split("<script>")[0]
        assert "data-ended" in before_script and "program ended</small>" in before_script
        assert "root, true)) return;" in markup  # mounted as ended...
        assert "newSyncedVariable" not in markup  # ...and not bound
    assert 'value="9" aria-label="level" disabled>' in updates[slider.display_id]
    assert updates[box.display_id].count(" disabled") == 2
    assert updates[box.display_id].count('class="commrouter-ended commrouter-layout-ended"') == 1
    frames.clear()
    end_all()  # idempotent
    assert frames == []


def test_a_program_knows_its_kernel_id(frames):
    assert program.kernel_id() == "kernel-7"
