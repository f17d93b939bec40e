"""Layouts: several widgets in one display, side by side (`HBox`) or one under another (`VBox`).

    controls = VBox(Slider(5, label="speed"), HBox(Button("Start"), Button("Stop"))).show()

A layout is displayed (and re-rendered, and ended) as one output; each widget in it keeps its
own address, value and callbacks. Labels line up in one column (the label width is the CSS
variable `--commrouter-label-width`, 120px by default).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import commrouter.program as program
from commrouter.program.widget_base import (
    ENDED_NOTE,
    STYLE,
    Widget,
    displays,
    hub_bootstrap,
    persister,
)


class Box:
    """Widgets (and other boxes) shown together in one display."""

    direction: ClassVar[str] = "vbox"

    def __init__(self, *children: Widget | Box) -> None:
        for child in children:
            if not isinstance(child, Widget | Box):
                raise TypeError(f"a layout holds widgets and layouts, got {child!r}")
            if child._container is not None:
                raise ValueError(f"{child!r} is already in a layout")
        self.children: tuple[Widget | Box, ...] = children
        self.id = uuid.uuid4().hex[:12]
        self.display_id = f"commrouter-{self.direction}-{self.id}"
        self._container: Box | None = None
        for child in children:
            child._container = self

    def show(self) -> Box:
        """Display every widget of the layout in the cell's output and follow the page."""
        if self._container is not None:
            raise RuntimeError(f"{self!r} is shown by its layout; show the outer layout")
        program.display(self._html(), display_id=self.display_id)
        displays.add(self)
        self._follow()
        return self

    def widgets(self) -> list[Widget]:
        """Every widget in the layout, inner layouts included, in display order."""
        found: list[Widget] = []
        for child in self.children:
            found.extend(child.widgets() if isinstance(child, Box) else [child])
        return found

    def close(self) -> None:
        """Stop following the page, for every widget of the layout."""
        for widget in self.widgets():
            widget.close()
        persister.forget(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.children))})"

    # ---------------------------------------------------------------------- internals

    def _follow(self) -> None:
        for child in self.children:
            child._follow()

    def _end(self) -> None:
        for child in self.children:
            child._end()

    def _persist(self) -> None:
        if self._container is not None:
            self._container._persist()
        else:
            program.update_display(self.display_id, self._html())

    def _html(self) -> dict[str, Any]:
        widgets = self.widgets()
        hub = hub_bootstrap(self.display_id, bool(widgets) and widgets[0]._ended)
        return {"text/html": STYLE + hub + self._markup(), "text/plain": repr(self)}

    def _markup(self) -> str:
        inner = "".join(child._markup() for child in self.children)
        box = f'<div class="commrouter-box commrouter-{self.direction}">{inner}</div>'
        if self._container is None and self.widgets() and self.widgets()[0]._ended:
            # one note for the layout (its widgets' own notes are hidden by the stylesheet)
            box += f'<small class="commrouter-ended commrouter-layout-ended">{ENDED_NOTE}</small>'
        return box


class HBox(Box):
    """Widgets side by side (wrapping when the output is narrow)."""

    direction = "hbox"


class VBox(Box):
    """Widgets one under another, their labels in one column."""

    direction = "vbox"


Row = HBox
Column = VBox
