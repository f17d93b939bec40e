"""The widgets' persister: one thread re-renders a widget once its page changes are quiet."""

from __future__ import annotations

import threading

from commrouter.program import LinkClosedError
from commrouter.program.widgets import _Persister


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
