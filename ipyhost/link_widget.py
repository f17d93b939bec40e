"""The link widget: an anywidget whose module is the page's hub (imported only when the widget
transport is chosen: it needs ipywidgets and anywidget)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

from commrouter.frontend.install import widget_module


class LinkWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """The page's link to this kernel's router, over the widget's custom messages.

    `config` is what the install script would pass to `commrouter.install`; `values` the last
    value per address (bounded), served fresh from `last_values` whenever the widget manager
    asks for the state (a reload's `request_state`, a save). Custom messages from the page go to
    `on_custom(content, msg)` with the whole comm message (its header: subshell, msg id).
    """

    _esm = widget_module()
    config = traitlets.Dict().tag(sync=True)
    values = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        on_custom: Callable[[Any, Mapping[str, Any]], None],
        last_values: Callable[[], dict[str, Any]],
        **kwargs: Any,
    ) -> None:
        self._on_custom = on_custom
        self._last_values = last_values
        super().__init__(**kwargs)
        self._follow_page_subshell()

    def _follow_page_subshell(self) -> None:
        """ipykernel 7.4 routes a comm's incoming messages to the subshell of the comm's last
        publish (its `_reply_subshell_for`): for this widget, the main shell of the cell that
        created it, behind every running cell. The page's header decides instead (JupyterLab
        sends its comms' messages on a subshell per comm target)."""
        comm = getattr(self, "comm", None)
        if comm is not None and hasattr(comm, "_reply_subshell_for"):
            comm._reply_subshell_for = _header_subshell

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """The widget's state, with `values` as the host has them now."""
        state = super().get_state(key=key, drop_defaults=drop_defaults)
        if "values" in state or key is None:
            state["values"] = self._last_values()
        return state

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data")
        if isinstance(data, Mapping) and data.get("method") == "custom":
            self._on_custom(data.get("content"), msg)
            return
        super()._handle_msg(msg)


def _header_subshell(data: Any, default: Any) -> Any:
    """`_reply_subshell_for` that keeps the subshell the incoming message's header names."""
    return default
