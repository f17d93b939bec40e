"""What a cell program imports to talk to the browser through its commrouter kernel.

    from commrouter import program

    program.send("/status", "starting")
    with program.listen("/slider/1") as values:
        for value in values:
            ...

Standard library only. The link is made on the first call, from the environment variables the
kernel sets (see docs/program-link.md); outside a commrouter kernel that first call raises
`NotUnderRouter`. Callbacks run on one background daemon thread, in arrival order; an exception
in a callback is printed to stderr with its traceback and counted (`callback_errors()`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from commrouter.program.client import Callback, Link, Listener, Subscription
from commrouter.program.display import html, markdown, new_display_id, png, svg, text
from commrouter.program.errors import (
    FrameTooLarge,
    LinkClosedError,
    LinkTimeout,
    NotUnderRouter,
    ProgramLinkError,
    SyncError,
)

__all__ = [
    "FrameTooLarge",
    "Link",
    "LinkClosedError",
    "LinkTimeout",
    "Listener",
    "NotUnderRouter",
    "ProgramLinkError",
    "Subscription",
    "SyncError",
    "callback_errors",
    "display",
    "html",
    "link",
    "listen",
    "markdown",
    "new_display_id",
    "png",
    "read",
    "send",
    "start",
    "subscribe",
    "svg",
    "sync",
    "text",
    "unsubscribe",
    "update_display",
]

_link: Link | None = None
_lock = threading.Lock()


def link() -> Link:
    """This program's link to its kernel (made on first use from the environment)."""
    global _link
    current = _link
    if current is None:
        with _lock:
            if _link is None:
                _link = Link()
            current = _link
    return current


def send(address: str, value: Any, *, stream: bool = False) -> None:
    """Send `value` to `address` in the front-end. TypeError if it is not JSON data,
    FrameTooLarge (a ValueError) if it is above the link's frame limit.

    While the page lags, a newer value for an address replaces one still waiting (the page
    shows the latest, the merge is counted); `stream=True` keeps every value, in order."""
    link().send(address, value, stream=stream)


def subscribe(address: str, callback: Callback) -> Subscription:
    """Call `callback(value)` for every value the front-end sends to `address`."""
    return link().subscribe(address, callback)


def unsubscribe(subscription: Subscription) -> None:
    link().unsubscribe(subscription)


def listen(address: str) -> Listener:
    """Iterate over the values sent to `address`; close the listener (or use `with`) to stop."""
    return link().listen(address)


def read(address: str, timeout: float | None = None) -> Any:
    """The front-end's current value at `address`. LinkTimeout (a TimeoutError) after
    `timeout` seconds (default: the kernel's `program.read_timeout`)."""
    return link().read(address, timeout)


def sync(timeout: float | None = None) -> None:
    """Wait until the page acknowledged everything sent before; SyncError naming what was
    dropped if anything was. Returns at once in a headless run (no page ever opened)."""
    link().sync(timeout)


def start() -> None:
    """Ask the kernel to install / open the front-end link now (it also happens on demand)."""
    link().start()


def display(
    data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    display_id: str | None = None,
) -> None:
    """Publish rich output, e.g. `display(html("<b>hi</b>"), display_id=new_display_id())`."""
    link().display(data, metadata, display_id)


def update_display(
    display_id: str, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> None:
    """Replace the output displayed earlier with `display_id`."""
    link().update_display(display_id, data, metadata)


def callback_errors() -> int:
    """How many callbacks raised so far (each was printed to stderr with its traceback)."""
    current = _link
    return 0 if current is None else current.callback_errors
