"""Widgets on top of the address/value channel: Button, Slider, Select, Text and Label.

Each widget has a unique address (`/<kind>/<id>`) and is displayed as HTML whose script binds
its element to a synced variable of the page's commrouter hub. Values flow both ways: the
program sets `widget.value` (sent to the page), the page's changes arrive in `widget.value`,
`on_change` callbacks and `listen()`.

What the notebook saves is the widget's last state, never the install script: a change sends
only the value; the widget's own display is re-rendered with the value in its HTML once the
changes are quiet (page changes: 0.5 s after the last, so a drag is not interrupted; program
changes: at most once per 0.5 s while they go on), and at the program's exit.
"""

from __future__ import annotations

import atexit
import html
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import commrouter.program as program

# Runs a widget's binding once the page's hub exists (the install script may come later).
_WHEN_READY = (
    "(cb => globalThis.commrouter ? cb(globalThis.commrouter) : "
    "(globalThis.commrouterPending = globalThis.commrouterPending || []).push(cb))"
)


class _Persister:
    """One daemon thread for every widget of the program: re-renders a widget `persist_after`
    seconds after a change (a page change postpones it, so a drag is not interrupted; a program
    change does not, so a long run of them is still saved now and then). No thread is started
    per value, and what is still due is re-rendered when the program exits (`flush`)."""

    def __init__(self) -> None:
        self._due: dict[Widget, float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def touch(self, widget: Widget, delay: float, postpone: bool = True) -> None:
        """Persist `widget` `delay` seconds from now; a later touch postpones it, unless
        `postpone` is false (then a persist already due keeps its time)."""
        with self._cond:
            if postpone or widget not in self._due:
                self._due[widget] = time.monotonic() + delay
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="commrouter-widgets", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def forget(self, widget: Widget) -> None:
        with self._cond:
            self._due.pop(widget, None)

    def flush(self) -> None:
        """Persist every widget that is due, now (at the program's exit)."""
        with self._cond:
            due = list(self._due)
            self._due.clear()
        for widget in due:
            try:
                widget._persist()
            except program.ProgramLinkError:
                pass  # the kernel ended the link: there is no display left to update
            except Exception:  # noqa: BLE001 - reported; the other widgets are still saved
                traceback.print_exc(file=sys.stderr)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                ready = [w for w, at in self._due.items() if at <= now]
                for widget in ready:
                    del self._due[widget]
                if not ready:
                    wait = min(self._due.values(), default=now + 3600.0) - now
                    self._cond.wait(wait)
                    continue
            for widget in ready:  # outside the lock: publishing may block on the pipe
                try:
                    widget._persist()
                except program.ProgramLinkError:
                    pass  # the link ended (unloaded, closed): no display left to update
                except Exception:  # noqa: BLE001 - reported; the other widgets keep persisting
                    traceback.print_exc(file=sys.stderr)


_persister = _Persister()
atexit.register(_persister.flush)


class Widget:
    """Base of every widget. Subclasses give `kind`, the element and its binding script."""

    kind: ClassVar[str] = "widget"
    persist_after: ClassVar[float] = 0.5  # seconds of quiet before a user change is persisted

    def __init__(self, value: Any, label: str = "", address: str | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        # a stable address lets other cells (other programs) find the widget's value
        self.address = address or f"/{self.kind}/{self.id}"
        self.display_id = f"commrouter-{self.kind}-{self.id}"
        self.label = label
        self._value = value
        self._callbacks: list[Callable[[Any], None]] = []
        self._subscription: program.Subscription | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------- program API

    def show(self) -> Widget:
        """Display the widget in the cell's output and follow the page's changes."""
        program.display(self._html(), display_id=self.display_id)
        if self._subscription is None:
            self._subscription = program.subscribe(self.address, self._received)
        return self

    @property
    def value(self) -> Any:
        with self._lock:
            return self._value

    @value.setter
    def value(self, value: Any) -> None:
        """Send `value` to the page; the saved display follows within `persist_after`."""
        with self._lock:
            self._value = value
        program.send(self.address, value)
        _persister.touch(self, self.persist_after, postpone=False)

    def on_change(self, callback: Callable[[Any], None]) -> None:
        """Call `callback(value)` (on the program's callback thread) for every page change."""
        self._callbacks.append(callback)

    def listen(self) -> program.Listener:
        """Iterate over the page's changes to this widget."""
        return program.listen(self.address)

    def close(self) -> None:
        """Stop following the page."""
        if self._subscription is not None:
            program.unsubscribe(self._subscription)
            self._subscription = None
        _persister.forget(self)

    # ---------------------------------------------------------------------- internals

    def _received(self, value: Any) -> None:
        with self._lock:
            self._value = value
        _persister.touch(self, self.persist_after)
        for callback in self._callbacks:
            callback(value)

    def _persist(self) -> None:
        """Re-render the widget's display with its current value (what the notebook saves)."""
        program.update_display(self.display_id, self._html())

    def _html(self) -> dict[str, str]:
        element_id = f"{self.display_id}-{uuid.uuid4().hex[:6]}"
        label = f"<label>{html.escape(self.label)}</label> " if self.label else ""
        binding = self.binding(json.dumps(element_id), json.dumps(self.address))
        markup = (
            f'<div class="commrouter-widget commrouter-{self.kind}" id="{element_id}" '
            f'data-address="{html.escape(self.address)}">{label}{self.element()}</div>\n'
            f"<script>{_WHEN_READY}(hub => {{ const root = document.getElementById("
            f"{json.dumps(element_id)}); if (!root) return; {binding} }});</script>"
        )
        return {"text/html": markup, "text/plain": f"{type(self).__name__}({self.value!r})"}

    def element(self) -> str:
        raise NotImplementedError

    def binding(self, element_id: str, address: str) -> str:
        """JavaScript run with `hub` and `root` (the widget's element) in scope."""
        raise NotImplementedError

    @staticmethod
    def attr(value: Any) -> str:
        return html.escape(str(value), quote=True)


class Slider(Widget):
    """A range slider; `value` is a number, both ways."""

    kind = "slider"

    def __init__(
        self,
        value: float = 0,
        *,
        min: float = 0,
        max: float = 100,
        step: float = 1,
        label: str = "",
        address: str | None = None,
    ) -> None:
        super().__init__(value, label, address)
        self.min, self.max, self.step = min, max, step

    def element(self) -> str:
        return (
            f'<input type="range" min="{self.attr(self.min)}" max="{self.attr(self.max)}" '
            f'step="{self.attr(self.step)}" value="{self.attr(self.value)}"> '
            f"<output>{html.escape(str(self.value))}</output>"
        )

    def binding(self, element_id: str, address: str) -> str:
        return (
            f"const input = root.querySelector('input'); const out = root.querySelector('output');"
            f"const v = hub.newSyncedVariable({address}, Number(input.value));"
            "const show = x => { input.value = x; out.textContent = x; };"
            "show(v.get()); v.subscribe(show);"
            "input.addEventListener('input', () => v.set(Number(input.value)));"
        )


class Button(Widget):
    """A button; `value` is how many times it was clicked."""

    kind = "button"

    def __init__(self, text: str = "Click", *, label: str = "", address: str | None = None):
        super().__init__(0, label, address)
        self.text = text

    @property
    def clicks(self) -> int:
        return int(self.value or 0)

    def element(self) -> str:
        return f"<button>{html.escape(self.text)}</button>"

    def binding(self, element_id: str, address: str) -> str:
        return (
            f"const v = hub.newSyncedVariable({address}, {json.dumps(self.clicks)});"
            "root.querySelector('button').addEventListener('click', () => v.set(v.get() + 1));"
        )


class Select(Widget):
    """A drop-down of options (strings); `value` is the selected option."""

    kind = "select"

    def __init__(
        self,
        options: Sequence[str],
        value: str | None = None,
        *,
        label: str = "",
        address: str | None = None,
    ) -> None:
        options = [str(option) for option in options]
        if not options:
            raise ValueError("Select needs at least one option")
        super().__init__(value if value is not None else options[0], label, address)
        self.options = options

    def element(self) -> str:
        choices = "".join(
            f'<option value="{self.attr(o)}"{" selected" if o == self.value else ""}>'
            f"{html.escape(o)}</option>"
            for o in self.options
        )
        return f"<select>{choices}</select>"

    def binding(self, element_id: str, address: str) -> str:
        return (
            "const select = root.querySelector('select');"
            f"const v = hub.newSyncedVariable({address}, select.value);"
            "const show = x => { select.value = x; }; show(v.get()); v.subscribe(show);"
            "select.addEventListener('change', () => v.set(select.value));"
        )


class Text(Widget):
    """A one-line text box; `value` is its text, both ways (sent when it changes)."""

    kind = "text"

    def __init__(self, value: str = "", *, label: str = "", address: str | None = None):
        super().__init__(value, label, address)

    def element(self) -> str:
        return f'<input type="text" value="{self.attr(self.value)}">'

    def binding(self, element_id: str, address: str) -> str:
        return (
            "const input = root.querySelector('input');"
            f"const v = hub.newSyncedVariable({address}, input.value);"
            "const show = x => { input.value = x; }; show(v.get()); v.subscribe(show);"
            "input.addEventListener('change', () => v.set(input.value));"
        )


class Label(Widget):
    """Text the program updates (`label.value = "..."`); the page only shows it."""

    kind = "label"

    def __init__(self, value: str = "", *, label: str = "", address: str | None = None):
        super().__init__(value, label, address)

    def element(self) -> str:
        return f"<span>{html.escape(str(self.value))}</span>"

    def binding(self, element_id: str, address: str) -> str:
        return (
            "const span = root.querySelector('span');"
            f"const v = hub.newSyncedVariable({address}, span.textContent);"
            "const show = x => { span.textContent = x; }; show(v.get()); v.subscribe(show);"
        )
