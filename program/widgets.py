"""Widgets on top of the address/value channel.

    from commrouter.program.widgets import Button, Checkbox, HBox, Label, Number, Progress
    from commrouter.program.widgets import Select, Slider, Text, VBox

Each widget has an address (`/<kind>/<id>`, or a stable one given with `address=`) and is
displayed as HTML whose script binds its element to a synced variable on the page: the one of
its own kernel's link (a page may show notebooks of several kernels). Values flow both ways:
the program sets `widget.value` (sent to the page), the page's changes arrive in
`widget.value`, `on_change` callbacks and `listen()`. `HBox`/`VBox` (also `Row`/`Column`) show
several widgets in one display.

What the notebook saves is the widget's last state, never the install script: a change sends
only the value; the widget's own display is re-rendered with the value in its HTML once the
changes are quiet (page changes: 0.5 s after the last, so a drag is not interrupted; program
changes: at most once per 0.5 s while they go on). When the program ends (the reference
kernel: its process exits; ipykernel: the kernel shuts down or the extension is unloaded)
every display is re-rendered disabled, with a "program ended" note: a dead widget never looks
live, on the page or in the saved notebook.

Keyboard: arrows, Page Up/Down, Home/End, Enter and Space work inside JupyterLab (the widget
stops JupyterLab's shortcuts from taking them). Colours follow JupyterLab's theme variables.
"""

from __future__ import annotations

from commrouter.program.widget_base import (
    WHEN_READY,
    Widget,
    _Persister,
    end_all,
)
from commrouter.program.widget_kinds import (
    Button,
    Checkbox,
    Label,
    Number,
    Progress,
    Select,
    Slider,
    Text,
)
from commrouter.program.widget_layout import Box, Column, HBox, Row, VBox

__all__ = [
    "WHEN_READY",
    "Box",
    "Button",
    "Checkbox",
    "Column",
    "HBox",
    "Label",
    "Number",
    "Progress",
    "Row",
    "Select",
    "Slider",
    "Text",
    "VBox",
    "Widget",
    "_Persister",
    "end_all",
]
