"""The widget kinds: Slider, Button, Select, Text, Label, Progress, Checkbox and Number.

Each gives its element (HTML, with `disabled` once its program ended) and its binding: the
JavaScript that binds the element to the page's synced variable `v` for its address on its
kernel's link `k` (see `widget_base.Widget`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from commrouter.program.widget_base import Widget

# JavaScript: the text box sends on Enter and when it loses the focus (set sends only changes).
_SEND_ON_ENTER_AND_BLUR = (
    "input.addEventListener('keydown', event => { if (event.key === 'Enter') send(); });"
    "input.addEventListener('blur', send); input.addEventListener('change', send);"
)


class Slider(Widget):
    """A range slider; `value` is a number, both ways. Keys: arrows, Page Up/Down, Home/End."""

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

    def element(self, control_id: str) -> str:
        return (
            f'<input type="range" id="{control_id}" min="{self.attr(self.min)}" '
            f'max="{self.attr(self.max)}" step="{self.attr(self.step)}" '
            f'value="{self.attr(self.value)}"{self.aria("slider")}{self.disabled()}>'
            f'<output for="{control_id}">{html.escape(str(self.value))}</output>'
        )

    def binding(self) -> str:
        return (
            "const input = control.querySelector('input');"
            "const out = control.querySelector('output');"
            f"{self.synced()}"
            "const show = x => { input.value = x; out.textContent = x; };"
            "show(v.get()); v.subscribe(show);"
            "input.addEventListener('input', () => v.set(Number(input.value)));"
        )


class Button(Widget):
    """A button; `value` is how many times it was clicked (Enter and Space click it too)."""

    kind = "button"

    def __init__(self, text: str = "Click", *, label: str = "", address: str | None = None):
        super().__init__(0, label, address)
        self.text = text

    @property
    def clicks(self) -> int:
        return int(self.value or 0)

    def element(self, control_id: str) -> str:
        return (
            f'<button id="{control_id}"{self.aria(self.text)}{self.disabled()}>'
            f"{html.escape(self.text)}</button>"
        )

    def binding(self) -> str:
        return (
            f"{self.synced()}"
            "control.querySelector('button').addEventListener('click',"
            " () => v.set((Number(v.get()) || 0) + 1));"
        )


class Select(Widget):
    """A drop-down of options (strings); `value` is the selected option (arrows change it)."""

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

    def element(self, control_id: str) -> str:
        choices = "".join(
            f'<option value="{self.attr(o)}"{" selected" if o == self.value else ""}>'
            f"{html.escape(o)}</option>"
            for o in self.options
        )
        return f'<select id="{control_id}"{self.aria("choice")}{self.disabled()}>{choices}</select>'

    def binding(self) -> str:
        return (
            "const select = control.querySelector('select');"
            f"{self.synced()}"
            "const show = x => { select.value = x; }; show(v.get()); v.subscribe(show);"
            "select.addEventListener('change', () => v.set(select.value));"
        )


class Text(Widget):
    """A one-line text box; `value` is its text, both ways (sent on Enter and on blur)."""

    kind = "text"

    def __init__(
        self,
        value: str = "",
        *,
        label: str = "",
        placeholder: str = "",
        address: str | None = None,
    ):
        super().__init__(value, label, address)
        self.placeholder = placeholder

    def element(self, control_id: str) -> str:
        hint = f' placeholder="{self.attr(self.placeholder)}"' if self.placeholder else ""
        return (
            f'<input type="text" id="{control_id}" value="{self.attr(self.value)}"{hint}'
            f"{self.aria('text')}{self.disabled()}>"
        )

    def binding(self) -> str:
        return (
            "const input = control.querySelector('input');"
            f"{self.synced()}"
            "const show = x => { input.value = x; }; show(v.get()); v.subscribe(show);"
            f"const send = () => v.set(input.value); {_SEND_ON_ENTER_AND_BLUR}"
        )


class Label(Widget):
    """Text the program updates (`label.value = "..."`); the page only shows it."""

    kind = "label"
    labelable = False

    def __init__(self, value: str = "", *, label: str = "", address: str | None = None):
        super().__init__(value, label, address)

    def element(self, control_id: str) -> str:
        return f'<span id="{control_id}" aria-live="polite">{html.escape(str(self.value))}</span>'

    def binding(self) -> str:
        return (
            "const span = control.querySelector('span');"
            f"{self.synced()}"
            "const show = x => { span.textContent = x; }; show(v.get()); v.subscribe(show);"
        )


class Progress(Widget):
    """A progress bar the program moves (`bar.value = 42`), from 0 to `max`."""

    kind = "progress"

    def __init__(
        self,
        value: float = 0,
        *,
        max: float = 100,
        label: str = "",
        address: str | None = None,
    ) -> None:
        if not max > 0:
            raise ValueError(f"Progress needs max > 0, got {max!r}")
        super().__init__(value, label, address)
        self.max = max

    def percent(self) -> str:
        try:
            return f"{round(100 * float(self.value) / self.max)}%"
        except (TypeError, ValueError):
            return ""

    def element(self, control_id: str) -> str:
        return (
            f'<progress id="{control_id}" max="{self.attr(self.max)}" '
            f'value="{self.attr(self.value)}"{self.aria("progress")}></progress>'
            f"<output>{self.percent()}</output>"
        )

    def binding(self) -> str:
        return (
            "const bar = control.querySelector('progress');"
            "const out = control.querySelector('output');"
            f"{self.synced()} const max = {json.dumps(self.max)};"
            "const show = x => { bar.value = x;"
            " out.textContent = Math.round((100 * x) / max) + '%'; };"
            "show(v.get()); v.subscribe(show);"
        )


class Checkbox(Widget):
    """A check box; `value` is True or False, both ways (Space toggles it)."""

    kind = "checkbox"

    def __init__(
        self,
        value: bool = False,
        *,
        text: str = "",
        label: str = "",
        address: str | None = None,
    ) -> None:
        super().__init__(bool(value), label, address)
        self.text = text

    def element(self, control_id: str) -> str:
        checked = " checked" if self.value else ""
        text = f'<label for="{control_id}">{html.escape(self.text)}</label>' if self.text else ""
        return (
            f'<input type="checkbox" id="{control_id}"{checked}'
            f"{self.aria(self.text or 'check box')}{self.disabled()}>{text}"
        )

    def binding(self) -> str:
        return (
            "const input = control.querySelector('input');"
            f"{self.synced()}"
            "const show = x => { input.checked = Boolean(x); }; show(v.get()); v.subscribe(show);"
            "input.addEventListener('change', () => v.set(input.checked));"
        )


class Number(Widget):
    """A number box; `value` is a number, both ways (arrows step it; sent on Enter, on blur and
    on each step). Values typed outside `min`..`max` are brought inside."""

    kind = "number"

    def __init__(
        self,
        value: float = 0,
        *,
        min: float | None = None,
        max: float | None = None,
        step: float = 1,
        label: str = "",
        address: str | None = None,
    ) -> None:
        super().__init__(value, label, address)
        self.min, self.max, self.step = min, max, step

    def element(self, control_id: str) -> str:
        bounds = "".join(
            f' {name}="{self.attr(bound)}"'
            for name, bound in (("min", self.min), ("max", self.max))
            if bound is not None
        )
        return (
            f'<input type="number" id="{control_id}"{bounds} step="{self.attr(self.step)}" '
            f'value="{self.attr(self.value)}"{self.aria("number")}{self.disabled()}>'
        )

    def binding(self) -> str:
        low = json.dumps(self.min if self.min is not None else None)
        high = json.dumps(self.max if self.max is not None else None)
        return (
            "const input = control.querySelector('input');"
            f"{self.synced()} const low = {low}, high = {high};"
            "const show = x => { input.value = x; }; show(v.get()); v.subscribe(show);"
            "const send = () => { let x = input.valueAsNumber;"
            " if (!Number.isFinite(x)) { show(v.get()); return; }"
            " if (low !== null && x < low) x = low; if (high !== null && x > high) x = high;"
            " show(x); v.set(x); };"
            f"{_SEND_ON_ENTER_AND_BLUR}"
        )
