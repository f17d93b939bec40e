"""The widget transport at the host edge: the page's link over the link widget's custom messages.

The router's actors do not change: this module translates. Each page view of the link widget
(one model instance per browser tab) is a *window* with its own id, and is one comm for the
router, named `<model id>/<window>`:

- the window's custom message `{window, open: {...}}` becomes a `CommOpenReceived` for that comm
  (with the configured target name and the open's data: kernel id, resume);
- `{window, data}` becomes a `CommMsgReceived`, `{window, close: true}` a `CommCloseReceived`;
- the router's `comm_msg(comm_id, data)` / `comm_close(comm_id)` for such a comm becomes a
  custom message `{window, data}` / `{window, close: true}` on the widget's comm (IOPub reaches
  every tab; each view takes only its window's).

Custom messages are published through the kernel's session with the router's explicit parent
(as every other publish, ipyhost/publisher.py), not through `Widget.send`. The last value of each
address sent to the page is kept (bounded) and served as the widget's `values` state.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from commrouter.config import Settings
from commrouter.ipyhost.publisher import IPyKernelPublisher

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
VALUES_LIMIT = 1000  # addresses whose last value the widget's `values` state holds
WINDOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRANSPORTS_NEEDED = ("ipywidgets", "anywidget")


def widgets_importable() -> bool:
    """True when ipywidgets and anywidget import in this kernel (the widget transport's needs)."""
    try:
        import anywidget  # noqa: F401
        import ipywidgets  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means: not usable here
        return False
    return True


def choose_transport(setting: str, importable: Callable[[], bool] = widgets_importable) -> str:
    """The page transport for `connection.transport`: "widget" or "script". "auto" picks the
    widget when ipywidgets and anywidget import; "widget" without them raises RuntimeError."""
    if setting == "script":
        return "script"
    if importable():
        return "widget"
    if setting == "widget":
        raise RuntimeError(
            "connection.transport = 'widget' needs ipywidgets and anywidget in the kernel "
            "(pip install ipywidgets anywidget), or set it to 'auto' or 'script'"
        )
    return "script"


class LastValues:
    """The last value of each address sent to the page, for the `limit` most recent addresses
    (thread-safe: the router's threads note, the kernel's shell thread reads)."""

    def __init__(self, limit: int = VALUES_LIMIT) -> None:
        self.limit = limit
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, data: Mapping[str, Any]) -> None:
        """Take the values in one comm message's data (a single value or a batch); protocol
        addresses (`#...`) and read requests are not values."""
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        with self._lock:
            for item in items:
                if not isinstance(item, Mapping) or "value" not in item:
                    continue
                address = item.get("address")
                if not isinstance(address, str) or address.startswith("#"):
                    continue
                self._values.pop(address, None)
                self._values[address] = item["value"]
                if len(self._values) > self.limit:
                    self._values.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        """A copy: address -> last value, least recent first."""
        with self._lock:
            return dict(self._values)


class WidgetEdge:
    """Names the widget's windows as router comms and checks the page's custom messages.

    Args:
        model_id: the link widget's model id (its comm id).
        target_name: the router's comm target (`connection.target_name`), put in every open.
        log: a structlog logger (the host sets the router's); a refused message is logged as
            `ipyhost.widget_message_ignored`.
    """

    def __init__(self, model_id: str, target_name: str, log: Any = None) -> None:
        self.model_id = model_id
        self.target_name = target_name
        self.log = log
        self.values = LastValues()
        self._prefix = f"{model_id}/"

    def comm_id(self, window: str) -> str:
        """The router's comm id for `window`."""
        return self._prefix + window

    def window_of(self, comm_id: str) -> str | None:
        """The window a router comm id names, or None for a comm that is not the widget's."""
        if isinstance(comm_id, str) and comm_id.startswith(self._prefix):
            return comm_id[len(self._prefix) :]
        return None

    def install_display(self) -> dict[str, Any]:
        """The mime bundle the router publishes (transiently) to install: a view of the widget."""
        view = {"version_major": 2, "version_minor": 1, "model_id": self.model_id}
        return {WIDGET_VIEW_MIME: view, "text/plain": "commrouter link"}

    def handle(
        self, content: Any, msg: Mapping[str, Any], router: Any, concurrent: bool = False
    ) -> None:
        """One custom message from the page (`content`, in the widget comm message `msg`):
        handed to `router` as the comm message it stands for, or logged and dropped.
        `concurrent`: handled on a subshell, so this window's messages also come while a cell
        runs (`CommRouter.handle_comm_open`)."""
        header = msg.get("header") if isinstance(msg.get("header"), Mapping) else {}
        msg_id = header.get("msg_id")
        reason, window = _check(content)
        if reason is not None:
            if self.log is None:
                return
            self.log.info(
                "ipyhost.widget_message_ignored", reason=reason, window=window, msg_id=msg_id
            )
            return
        assert window is not None and isinstance(content, Mapping)
        comm_id = self.comm_id(window)
        if "open" in content:
            opened = {"comm_id": comm_id, "target_name": self.target_name, "data": content["open"]}
            router.handle_comm_open(opened, parent=msg, msg_id=msg_id, concurrent=concurrent)
        elif "data" in content:
            router.handle_comm_msg({"comm_id": comm_id, "data": content["data"]}, msg, msg_id)
        else:
            router.handle_comm_close({"comm_id": comm_id, "data": {}}, msg, msg_id)


def _check(content: Any) -> tuple[str | None, str | None]:
    """(why `content` is not a channel message, or None; its window, if it names one)."""
    if not isinstance(content, Mapping):
        return "not an object", None
    window = content.get("window")
    if not isinstance(window, str) or not WINDOW_ID.fullmatch(window):
        shown = window[:64] if isinstance(window, str) else None
        return "window id missing or malformed", shown
    kinds = [key for key in ("open", "data", "close") if key in content]
    if len(kinds) != 1:
        return "not exactly one of open, data, close", window
    kind = kinds[0]
    if kind in ("open", "data") and not isinstance(content[kind], Mapping):
        return f"{kind} is not an object", window
    if kind == "close" and content["close"] is not True:
        return "close is not true", window
    return None, window


class WidgetPublisher(IPyKernelPublisher):
    """The router's publisher when the page links through the widget: comm messages for a
    widget window go as that window's custom messages on the widget's comm; the rest (displays,
    streams, a script-transport comm) as `IPyKernelPublisher` does."""

    def __init__(
        self, kernel: Any, edge: WidgetEdge, closed: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(kernel, closed)
        self.edge = edge

    def _custom(self, window: str, body: Mapping[str, Any], parent: Any) -> None:
        content = {"window": window, **body}
        data = {"method": "custom", "content": content}
        self.publish("comm_msg", {"comm_id": self.edge.model_id, "data": data}, parent)

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        window = self.edge.window_of(comm_id)
        if window is None:
            super().comm_msg(comm_id, data, parent)
            return
        self._custom(window, {"data": data}, parent)
        self.edge.values.note(data)

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        window = self.edge.window_of(comm_id)
        if window is None:
            super().comm_close(comm_id, data, parent)
            return
        self._custom(window, {"close": True}, parent)


def widget_config(kernel_id: str, settings: Settings) -> dict[str, Any]:
    """The widget's `config`: what the install script would pass to `commrouter.install`."""
    from commrouter.frontend.install import page_config

    return dict(page_config(kernel_id, settings))
