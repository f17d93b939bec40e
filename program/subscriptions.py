"""A program link's subscriptions and the ways to wait for values (standard library only):
`Subscription` (one callback), `Listener` (an iterator), `AsyncListener` (an async iterator)
and `Answer` (one awaited read or sync)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from commrouter.program.errors import LinkTimeout

if TYPE_CHECKING:
    from commrouter.program.base import BaseLink

Callback = Callable[[Any], None]


class Subscription:
    """One local callback on one address. `close()` (or `unsubscribe(sub)`) removes it.

    `inline` callbacks (listeners, read answers) never block: they run in order on the
    callback thread, or on the receiving side at once while that thread waits for an answer.
    `context` is what the link captured when it was made (the host's output context, for the
    in-process link)."""

    __slots__ = ("_link", "address", "callback", "context", "inline")

    def __init__(
        self, link: BaseLink, address: str, callback: Callback, inline: bool, context: Any
    ) -> None:
        self._link = link
        self.address = address
        self.callback = callback
        self.inline = inline
        self.context = context

    @property
    def active(self) -> bool:
        return self._link._is_subscribed(self)

    def close(self) -> None:
        self._link.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Subscription({self.address!r}, active={self.active})"


class _Listening:
    """What both listeners do with the link: subscribe, end when the link closes or no page
    will ever send (a headless run), and close. A subclass says how a value is queued
    (`_put`) and what ends it (`_end`)."""

    address: str

    def _listen(self, link: BaseLink, address: str) -> None:
        self.address = address
        self._closed = False
        self._link = link
        self._subscription = link._subscribe(address, self._put, inline=True)
        link._on_close(self._end)
        if link._no_page is not None:  # a headless run: no value will ever come
            self._end()

    def _put(self, value: Any) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._subscription.close()
            self._link._off_close(self._end)
            self._end()


class Listener(_Listening):
    """The values sent to one address, as an iterator. Close it (or use `with`) to stop.

    Values wait in memory until taken. Iteration ends when the listener or the link closes.
    """

    _END = object()

    def __init__(self, link: BaseLink, address: str) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._listen(link, address)

    def _put(self, value: Any) -> None:
        self._queue.put(value)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        value = self._queue.get()  # interruptible: SIGINT raises KeyboardInterrupt here
        if value is Listener._END:
            self._queue.put(value)  # stays ended
            raise StopIteration
        return value

    def get(self, timeout: float | None = None) -> Any:
        """The next value; raises LinkTimeout after `timeout` seconds, StopIteration at end."""
        try:
            value = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise LinkTimeout(f"no value at {self.address!r} within {timeout} s") from None
        if value is Listener._END:
            self._queue.put(value)
            raise StopIteration
        return value

    def _end(self) -> None:
        self._queue.put(Listener._END)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncListener(_Listening):
    """`async for value in program.alisten(address)`: the values sent to one address, for a
    coroutine. Made inside a running event loop; close it (or use `async with`) to stop."""

    _END = object()

    def __init__(self, link: BaseLink, address: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listen(link, address)

    def _put(self, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, value)

    def _end(self) -> None:
        self._put(AsyncListener._END)

    def __aiter__(self) -> AsyncListener:
        return self

    async def __anext__(self) -> Any:
        value = await self._queue.get()
        if value is AsyncListener._END:
            self._queue.put_nowait(value)
            raise StopAsyncIteration
        return value

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Answer:
    """One awaited answer (a read's value or a sync's ack), settled by the receiving side."""

    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self.event.is_set():
            self.value = value
            self.event.set()

    def fail(self, error: BaseException) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()

    def wait(self, timeout: float, what: str) -> Any:
        if not self.event.wait(timeout):
            raise LinkTimeout(f"{what}: no answer from the kernel within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.value
