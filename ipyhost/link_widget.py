"""The link widget: an anywidget whose module is the page's hub (imported only when the widget
transport is chosen: it needs ipywidgets and anywidget)."""

from __future__ import annotations

import threading
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
    `on_custom(content, msg, concurrent)` with the whole comm message (its header: msg id) and
    whether it is handled on a subshell's thread (so also while a cell runs).
    """

    _esm = widget_module()
    config = traitlets.Dict().tag(sync=True)
    values = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        on_custom: Callable[[Any, Mapping[str, Any], bool], None],
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
        sends its comms' messages on a subshell per comm target), when it names a subshell this
        kernel has: JupyterLab 4.6 keeps its subshell id across a kernel restart, and the new
        kernel would drop those messages ("Unknown subshell_id"), so they go to the main shell."""
        comm = getattr(self, "comm", None)
        if comm is None or not hasattr(comm, "_reply_subshell_for"):
            return
        thread = getattr(getattr(comm, "kernel", None), "shell_channel_thread", None)
        manager = getattr(thread, "manager", None)
        if manager is None or not hasattr(manager, "list_subshell"):
            return

        def route(data: Any, subshell_id: Any) -> Any:
            return subshell_id if subshell_id in manager.list_subshell() else None

        comm._reply_subshell_for = route

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """The widget's state, with `values` as the host has them now."""
        state = super().get_state(key=key, drop_defaults=drop_defaults)
        if "values" in state or key is None:
            state["values"] = self._last_values()
        return state

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data")
        if isinstance(data, Mapping) and data.get("method") == "custom":
            # on a subshell's thread the router hears the page while a cell runs
            concurrent = threading.current_thread() is not threading.main_thread()
            self._on_custom(data.get("content"), msg, concurrent)
            return
        super()._handle_msg(msg)
