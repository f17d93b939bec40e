"""What every program link does, whatever carries its frames (standard library only).

`BaseLink` holds the program API (send, subscribe, listen, read, sync, display and their async
forms), the subscriptions and the awaited answers. A transport subclass says how a request
frame leaves (`_transmit`) and feeds what the kernel sends to `_receive`. The pipe link
(`client.Link`) and the in-process link (`local.LocalLink`) are the two transports.

Threads: user callbacks, listeners and read answers run on ONE callback thread, in arrival
order, fed through a small bounded hand-off (`callbacks.CallbackRunner`); sync acks are
settled by the receiving side. While the callback thread itself waits (`read()` or `sync()`
inside a callback), the receiving side settles read answers and feeds listeners at once, so
the answer does not queue behind the callback that waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from commrouter.program import wire
from commrouter.program.callbacks import CallbackRunner
from commrouter.program.errors import (
    FrameTooLarge,
    LinkClosedError,
    LinkTimeout,
    NoPage,
    NoValue,
    SyncError,
)
from commrouter.program.subscriptions import (
    Answer,
    AsyncListener,
    Callback,
    Listener,
    Subscription,
)

__all__ = ["AsyncListener", "BaseLink", "Callback", "Listener", "Subscription"]

DEFAULT_MAX_FRAME = 1024 * 1024
DEFAULT_TIMEOUT = 5.0
DEFAULT_SYNC_TIMEOUT = 60.0
_PLAIN = (str, int, float, bool, type(None))
_NO_DEFAULT: Any = object()


class BaseLink:
    """A program's link to its kernel; subclasses carry the frames (see the module doc)."""

    def __init__(
        self,
        *,
        timeout: float,
        max_frame_bytes: int,
        program_id: str = "",
        sync_timeout: float = DEFAULT_SYNC_TIMEOUT,
        kernel_id: str = "",
        page: str = "",
    ) -> None:
        self.program_id = program_id
        self.kernel_id = kernel_id  # the Jupyter kernel's id ("" when not known)
        self.page = page  # the page hub's config for this kernel (JSON text; "" when not known)
        self.timeout = timeout
        self.sync_timeout = sync_timeout
        self.max_frame_bytes = max_frame_bytes
        self.callback_errors = 0
        self._state = threading.RLock()  # subscriptions, answers, closers
        self._closed: str | None = None  # why the kernel side is gone
        self._no_page: str | None = None  # why no page will answer (a headless run)
        self._reads: dict[str, list[Answer]] = {}  # reads waiting, by address
        self._subs: dict[str, list[Subscription]] = {}
        self._syncs: dict[int, Answer] = {}
        self._sync_ids = itertools.count(1)
        self._closers: list[Callable[[], None]] = []
        self._runner = CallbackRunner(self._run_callback)

    # -------------------------------------------------------------------- public API

    def send(self, address: str, value: Any, *, stream: bool = False) -> None:
        """Send `value` (JSON data) to `address` in the front-end.

        While the page lags, a newer value for the same address replaces one still waiting
        (the page shows the latest); with `stream=True` every value is kept, in order."""
        _check_address(address)
        frame = {"op": "send", "address": address, "value": value}
        if stream:
            frame["stream"] = True
        self._write(frame, f"value for {address!r}")

    def subscribe(self, address: str, callback: Callback) -> Subscription:
        """Call `callback(value)` (on the link's callback thread) for each value sent to
        `address`. The callback may call `read` and `sync`."""
        return self._subscribe(address, callback, inline=False)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove one callback; the kernel hears of it when the address's last one goes."""
        address = subscription.address
        with self._state:
            subs = self._subs.get(address)
            if not subs or subscription not in subs:
                return
            subs.remove(subscription)
            if subs:
                return
            del self._subs[address]
            if self._closed is None and self._writable():
                with contextlib.suppress(LinkClosedError):  # gone with the link anyway
                    self._write({"op": "unsubscribe", "address": address})

    def listen(self, address: str) -> Listener:
        """An iterator of the values sent to `address` (close it, or use it in `with`)."""
        _check_address(address)
        return Listener(self, address)

    def alisten(self, address: str) -> AsyncListener:
        """An async iterator of the values sent to `address`, for `async for` in a coroutine."""
        _check_address(address)
        return AsyncListener(self, address)

    def read(self, address: str, timeout: float | None = None, default: Any = _NO_DEFAULT) -> Any:
        """Ask the front-end for the value at `address` and return the first one that comes.

        Without an answer (`LinkTimeout` after `timeout` seconds, or `NoPage` at once in a
        headless run) it returns `default` if one is given, else raises."""
        _check_address(address)
        wait = self._wait_bound(timeout)
        try:
            return self._read(address, wait)
        except (LinkTimeout, NoPage, NoValue):
            if default is _NO_DEFAULT:
                raise
            return default

    def _read(self, address: str, wait: float) -> Any:
        if self._no_page is not None:
            raise NoPage(self._no_page)
        answer = Answer()
        # waiting before the request leaves: in a callback, the answer must not queue behind it
        with self._runner.waiting():
            sub = self._subscribe(address, answer.set, inline=True)
            closer = self._on_close(lambda: answer.fail(self._no_answer()))
            with self._state:
                self._reads.setdefault(address, []).append(answer)
            try:
                self._write({"op": "read", "address": address})
                return answer.wait(wait, f"read {address!r}")
            finally:
                with self._state:
                    waiting = self._reads.get(address, [])
                    if answer in waiting:
                        waiting.remove(answer)
                    if not waiting:
                        self._reads.pop(address, None)
                self._off_close(closer)
                self.unsubscribe(sub)

    async def aread(
        self, address: str, timeout: float | None = None, default: Any = _NO_DEFAULT
    ) -> Any:
        """`read` for a coroutine: the event loop keeps running while the page answers."""
        return await asyncio.to_thread(self.read, address, timeout, default)

    def sync(self, timeout: float | None = None) -> None:
        """Return once the page acknowledged everything sent before; raise `SyncError` naming
        what was dropped, if anything was. In a headless run (no page) it returns at once.
        Waits `timeout` seconds, by default the kernel's `program.sync_timeout`."""
        wait = self.sync_timeout if timeout is None else timeout
        answer = Answer()
        with self._state:
            sync_id = next(self._sync_ids)
            self._syncs[sync_id] = answer
            if self._closed is not None:
                answer.fail(LinkClosedError(self._closed))
        try:
            self._write({"op": "sync", "id": sync_id})
            with self._runner.waiting():
                error = answer.wait(wait, f"sync {sync_id}")
        finally:
            with self._state:
                self._syncs.pop(sync_id, None)
        if error is not None:
            raise SyncError(f"sync {sync_id} failed: {error}")

    async def async_sync(self, timeout: float | None = None) -> None:
        """`sync` for a coroutine: the event loop keeps running while it waits."""
        await asyncio.to_thread(self.sync, timeout)

    def start(self) -> None:
        """Ask the kernel to make sure the front-end is installed and answering (no reply)."""
        self._write({"op": "start"})

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        display_id: str | None = None,
        *,
        update: bool = False,
    ) -> None:
        """Publish rich output (`{mime type: data}`), or update the output `display_id`."""
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise TypeError(f"display data must be a {{mime type: data}} mapping, got {data!r:.80}")
        if display_id is not None and (not isinstance(display_id, str) or not display_id):
            raise ValueError(f"display_id must be a non-empty string, got {display_id!r}")
        if update and display_id is None:
            raise ValueError("update_display needs the display_id of the output to update")
        frame = {
            "op": "display",
            "data": dict(data),
            "metadata": dict(metadata or {}),
            "display_id": display_id,
            "update": update,
        }
        self._write(frame, "display data")

    def update_display(
        self, display_id: str, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> None:
        self.display(data, metadata, display_id, update=True)

    @property
    def closed(self) -> bool:
        """True once the kernel closed the link."""
        return self._closed is not None

    # ------------------------------------------------------------- for the transports

    def _transmit(self, frame: dict[str, Any], data: bytes) -> None:
        """Carry one request to the kernel: `frame`, and `data`, its encoded frame."""
        raise NotImplementedError

    def _writable(self) -> bool:
        """False once writing is known to be impossible."""
        return True

    def _capture(self) -> Any:
        """The context a new subscription keeps (the in-process link: whose output it is)."""
        return None

    def _callback_scope(self, sub: Subscription) -> contextlib.AbstractContextManager[Any]:
        """Entered around each callback (the in-process link: its output's destination)."""
        return contextlib.nullcontext()

    def _write(self, frame: dict[str, Any], what: str = "frame") -> None:
        try:
            data = wire.encode(frame, self.max_frame_bytes, what)
        except FrameTooLarge:
            raise
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{what} is not JSON data: type {_offending_type(frame)} cannot be encoded "
                f"({error})"
            ) from None
        self._transmit(frame, data)

    def _receive(self, message: Mapping[str, Any], *, block: bool = True) -> bool:
        """Handle one message from the kernel. With `block=False`, returns False (and handles
        nothing) when the callback thread has no room; `_room()` is then called later."""
        op = message.get("op")
        if op == "value":
            address = message.get("address")
            value = message.get("value")
            if not block and not self._runner.has_room():
                return False
            with self._state:
                subs = tuple(self._subs.get(address, ()))  # type: ignore[arg-type]
            queued = subs  # in order, on the callback thread: a read returns after the
            # callbacks of the same value, as a listener's values come in order with them
            if self._runner.waiting_now():  # ...unless the callback thread waits for an answer
                queued = tuple(sub for sub in subs if not sub.inline)
                for sub in subs:
                    if sub.inline:
                        sub.callback(value)
            if queued:
                self._runner.put((queued, value), block=block)
        elif op == "read_failed":
            with self._state:
                answers = list(self._reads.get(message.get("address"), ()))  # type: ignore[arg-type]
            for answer in answers:
                answer.fail(NoValue(f"read {message.get('address')!r}: {message.get('reason')}"))
        elif op == "no_page":
            self._no_page_notice(str(message.get("reason") or "no page"))
        elif op == "sync_ack":
            with self._state:
                answer = self._syncs.get(message.get("id"))  # type: ignore[arg-type]
            if answer is not None:
                answer.set(message.get("error"))
        else:
            print(f"commrouter.program: ignored a frame with op {op!r}", file=sys.stderr)
        return True

    def _no_page_notice(self, reason: str) -> None:
        """A headless run: listeners end and waiting reads fail (they may return a default)."""
        with self._state:
            self._no_page = reason
            closers = list(self._closers)
        for close in closers:
            close()

    def _no_answer(self) -> Exception:
        """Why a waiting read was ended: the link closed, or no page will answer."""
        if self._closed is not None:
            return LinkClosedError(self._closed)
        return NoPage(self._no_page or "no page")

    def _kernel_gone(self, reason: str) -> None:
        with self._state:
            self._closed = reason
            closers, self._closers = self._closers, []
            answers = list(self._syncs.values())
        for answer in answers:
            answer.fail(LinkClosedError(reason))
        for close in closers:
            close()
        self._runner.stop()

    # ------------------------------------------------------------------------ internals

    def _subscribe(self, address: str, callback: Callback, *, inline: bool) -> Subscription:
        _check_address(address)
        if not callable(callback):
            raise TypeError(f"callback for {address!r} must be callable, got {callback!r}")
        sub = Subscription(self, address, callback, inline, None if inline else self._capture())
        with self._state:
            subs = self._subs.setdefault(address, [])
            subs.append(sub)
            if len(subs) == 1:
                try:
                    self._write({"op": "subscribe", "address": address})
                except BaseException:
                    subs.remove(sub)
                    if not subs:
                        del self._subs[address]
                    raise
        return sub

    def _run_callback(self, item: tuple[tuple[Subscription, ...], Any]) -> None:
        subs, value = item
        for sub in subs:
            with self._callback_scope(sub):
                try:
                    sub.callback(value)
                except Exception as error:  # noqa: BLE001 - the user's callback: reported, counted
                    self.callback_errors += 1
                    _report(sub, error, self.callback_errors)

    def _wait_bound(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _on_close(self, close: Callable[[], None]) -> Callable[[], None]:
        with self._state:
            if self._closed is None:
                self._closers.append(close)
                return close
        close()
        return close

    def _off_close(self, close: Callable[[], None]) -> None:
        with self._state:
            if close in self._closers:
                self._closers.remove(close)

    def _is_subscribed(self, sub: Subscription) -> bool:
        with self._state:
            return sub in self._subs.get(sub.address, ())


def _report(sub: Subscription, error: BaseException, count: int) -> None:
    """Print a callback's error with a traceback that starts at the user's code."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the frame of `_run_callback` itself: not the user's
    print(
        f"commrouter.program: callback {sub.callback!r} for {sub.address!r} raised "
        f"(callback error #{count}):",
        file=sys.stderr,
    )
    traceback.print_exception(type(error), error, tb, file=sys.stderr)
    sys.stderr.flush()


def _check_address(address: Any) -> None:
    if not isinstance(address, str) or not address:
        raise ValueError(f"address must be a non-empty string, got {address!r}")
    if address[0] == "#":
        raise ValueError(f"address {address!r} is private to the protocol (starts with '#')")


def _offending_type(value: Any) -> str:
    """Name the first thing inside `value` that JSON cannot hold."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, _PLAIN):
                    return f"{type(key).__name__} (as a mapping key)"
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "float (NaN or infinity)"
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "str (with a lone surrogate)"
        elif not isinstance(item, _PLAIN):
            return type(item).__name__
    return type(value).__name__
