"""What a cell program imports to talk to the browser through its commrouter kernel.

    from commrouter import program

    program.send("/status", "starting")
    with program.listen("/slider/1") as values:
        for value in values:
            ...

Standard library only. In a cell program started by the reference kernel the link is made on
the first call, from the environment variables the kernel sets (see docs/program-link.md). In
ipykernel with `%load_ext commrouter`, the extension installs an in-process link with
`use_link`, and the whole kernel session is one program. Anywhere else the first call raises
`NotUnderRouter`. Callbacks run on one background daemon thread, in arrival order, and may call
`read` and `sync`; an exception in a callback is printed to stderr with its traceback and
counted (`callback_errors()`). In a coroutine, `await aread(...)`, `async for v in alisten(...)`
and `await async_sync()` wait without blocking the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from commrouter.program.base import _NO_DEFAULT, AsyncListener, BaseLink
from commrouter.program.client import Callback, Link, Listener, Subscription
from commrouter.program.display import html, markdown, new_display_id, png, svg, text
from commrouter.program.errors import (
    FrameTooLarge,
    LinkClosedError,
    LinkTimeout,
    NoPage,
    NotUnderRouter,
    NoValue,
    ProgramLinkError,
    SyncError,
)

__all__ = [
    "AsyncListener",
    "BaseLink",
    "FrameTooLarge",
    "Link",
    "LinkClosedError",
    "LinkTimeout",
    "Listener",
    "NoPage",
    "NoValue",
    "NotUnderRouter",
    "ProgramLinkError",
    "Subscription",
    "SyncError",
    "alisten",
    "aread",
    "async_sync",
    "callback_errors",
    "display",
    "html",
    "kernel_id",
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
    "use_link",
]

_link: BaseLink | None = None
_lock = threading.Lock()


def link() -> BaseLink:
    """This program's link to its kernel: the one installed with `use_link`, else a pipe link
    made on first use from the environment."""
    global _link
    current = _link
    if current is None:
        with _lock:
            if _link is None:
                _link = Link()
            current = _link
    return current


def use_link(new: BaseLink | None) -> BaseLink | None:
    """Install the link every call of this module uses (a host running the program in its own
    process does this, e.g. `commrouter.program.local.LocalLink`); None forgets it (the next
    call makes a pipe link from the environment again). Returns the link it replaced."""
    global _link
    with _lock:
        old, _link = _link, new
    return old


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


def read(address: str, timeout: float | None = None, default: Any = _NO_DEFAULT) -> Any:
    """The front-end's current value at `address`. LinkTimeout (a TimeoutError) after
    `timeout` seconds (default: the kernel's `program.read_timeout`), NoPage at once in a
    headless run; with `default`, that is returned instead of raising."""
    return link().read(address, timeout, default)


def alisten(address: str) -> AsyncListener:
    """`async for value in alisten(address)`: the values sent to `address`, in a coroutine."""
    return link().alisten(address)


async def aread(address: str, timeout: float | None = None, default: Any = _NO_DEFAULT) -> Any:
    """`await aread(address)`: `read` without blocking the event loop."""
    return await link().aread(address, timeout, default)


async def async_sync(timeout: float | None = None) -> None:
    """`await async_sync()`: `sync` without blocking the event loop."""
    await link().async_sync(timeout)


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


def kernel_id() -> str:
    """The id of the Jupyter kernel this program runs in ("" when the kernel did not say): the
    page's widgets use it to bind to that kernel's link when several kernels share a page."""
    return link().kernel_id


def callback_errors() -> int:
    """How many callbacks raised so far (each was printed to stderr with its traceback)."""
    current = _link
    return 0 if current is None else current.callback_errors
