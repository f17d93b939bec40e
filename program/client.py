"""The program side of the link: what a cell program calls (standard library only).

A `Link` connects lazily, on its first call: it opens `to_kernel` for writing, sends `hello`
with the run's secret, opens `to_program` for reading and starts ONE daemon thread that reads
the kernel's frames and runs every callback, in arrival order. Writes block when the pipe is
full (the kernel holds a fast sender back); reads and syncs wait with a timeout.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from commrouter.program import wire
from commrouter.program.errors import (
    FrameTooLarge,
    LinkClosedError,
    LinkTimeout,
    NotUnderRouter,
    SyncError,
)

Callback = Callable[[Any], None]

DEFAULT_MAX_FRAME = 1024 * 1024
DEFAULT_TIMEOUT = 5.0
DEFAULT_SYNC_TIMEOUT = 60.0
_PLAIN = (str, int, float, bool, type(None))


class Subscription:
    """One local callback on one address. `close()` (or `unsubscribe(sub)`) removes it."""

    __slots__ = ("_link", "address", "callback")

    def __init__(self, link: Link, address: str, callback: Callback) -> None:
        self._link = link
        self.address = address
        self.callback = callback

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


class Listener:
    """The values sent to one address, as an iterator. Close it (or use `with`) to stop.

    Values wait in memory until taken. Iteration ends when the listener or the link closes.
    """

    _END = object()

    def __init__(self, link: Link, address: str) -> None:
        self.address = address
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._link = link
        self._subscription = link.subscribe(address, self._queue.put)
        link._on_close(self._end)

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

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._subscription.close()
            self._link._off_close(self._end)
            self._end()

    def _end(self) -> None:
        self._queue.put(Listener._END)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Answer:
    """One awaited answer (a read's value or a sync's ack), settled by the reader thread."""

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


class Link:
    """One program's link to its kernel, configured from the environment (`environ`)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        missing = [name for name in wire.REQUIRED_ENV if not env.get(name)]
        if missing:
            raise NotUnderRouter(missing)
        self.to_kernel_path = env[wire.ENV_TO_KERNEL]
        self.to_program_path = env[wire.ENV_TO_PROGRAM]
        self._secret = env[wire.ENV_SECRET]
        self.program_id = env.get(wire.ENV_PROGRAM_ID, "")
        self.max_frame_bytes = _number(env, wire.ENV_MAX_FRAME, int, DEFAULT_MAX_FRAME)
        self.timeout = _number(env, wire.ENV_READ_TIMEOUT, float, DEFAULT_TIMEOUT)
        self.sync_timeout = _number(env, wire.ENV_SYNC_TIMEOUT, float, DEFAULT_SYNC_TIMEOUT)
        self.callback_errors = 0
        self._write_lock = threading.Lock()
        self._state = threading.RLock()  # subscriptions, answers, closers
        self._out: int | None = None
        self._broken: str | None = None  # why writing is impossible
        self._closed: str | None = None  # why the kernel side is gone
        self._reader: threading.Thread | None = None
        self._subs: dict[str, list[Subscription]] = {}
        self._syncs: dict[int, _Answer] = {}
        self._sync_ids = itertools.count(1)
        self._closers: list[Callable[[], None]] = []

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
        """Call `callback(value)` (on the link's thread) for each value sent to `address`."""
        _check_address(address)
        if not callable(callback):
            raise TypeError(f"callback for {address!r} must be callable, got {callback!r}")
        sub = Subscription(self, address, callback)
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
            if self._closed is None and self._broken is None:
                with contextlib.suppress(LinkClosedError):  # gone with the link anyway
                    self._write({"op": "unsubscribe", "address": address})

    def listen(self, address: str) -> Listener:
        """An iterator of the values sent to `address` (close it, or use it in `with`)."""
        _check_address(address)
        return Listener(self, address)

    def read(self, address: str, timeout: float | None = None) -> Any:
        """Ask the front-end for the value at `address` and return the first one that comes."""
        _check_address(address)
        wait = self._wait_bound(timeout, "read")
        answer = _Answer()
        sub = self.subscribe(address, answer.set)
        closer = self._on_close(lambda: answer.fail(LinkClosedError(self._closed)))
        try:
            self._write({"op": "read", "address": address})
            return answer.wait(wait, f"read {address!r}")
        finally:
            self._off_close(closer)
            self.unsubscribe(sub)

    def sync(self, timeout: float | None = None) -> None:
        """Return once the page acknowledged everything sent before; raise `SyncError` naming
        what was dropped, if anything was. In a headless run (no page) it returns at once."""
        wait = self._wait_bound(timeout, "sync")
        answer = _Answer()
        with self._state:
            sync_id = next(self._sync_ids)
            self._syncs[sync_id] = answer
            if self._closed is not None:
                answer.fail(LinkClosedError(self._closed))
        try:
            self._write({"op": "sync", "id": sync_id})
            error = answer.wait(wait, f"sync {sync_id}")
        finally:
            with self._state:
                self._syncs.pop(sync_id, None)
        if error is not None:
            raise SyncError(f"sync {sync_id} failed: {error}")

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

    # ------------------------------------------------------------------------ writing

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
        with self._write_lock:
            if self._out is None and self._broken is None:
                self._connect()
            self._write_all(data)

    def close(self) -> None:
        """Stop writing to the kernel (the kernel ends the link when the program exits)."""
        with self._write_lock:
            fd, self._out = self._out, None
            if self._broken is None:
                self._broken = "the program closed its link"
            if fd is not None:
                os.close(fd)

    def _write_all(self, data: bytes) -> None:
        if self._broken is not None:
            raise LinkClosedError(self._broken)
        assert self._out is not None
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._out, view[written:])
        except BrokenPipeError:
            self._broken = "the kernel closed the program link"
            raise LinkClosedError(self._broken) from None
        except BaseException:
            if written:  # the kernel would read the rest of this frame as the next one's start
                self._broken = "a write was interrupted inside a frame"
            raise

    def _connect(self) -> None:
        """Open `to_kernel`, say hello, open `to_program`, start the reader (write lock held)."""
        try:
            # O_NONBLOCK: fail at once (ENXIO) rather than wait if the kernel is not reading
            out = os.open(self.to_kernel_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            self._broken = f"cannot open the program link ({error}); was the program finished?"
            raise LinkClosedError(self._broken) from None
        os.set_blocking(out, True)
        self._out = out
        hello = {"op": "hello", "secret": self._secret, "pid": os.getpid()}
        self._write_all(wire.encode(hello, self.max_frame_bytes))
        try:
            fd = os.open(self.to_program_path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            self._broken = f"cannot open the program link ({error}); was the program finished?"
            raise LinkClosedError(self._broken) from None
        os.set_blocking(fd, True)
        self._reader = threading.Thread(
            target=self._read_loop, args=(fd,), name="commrouter-program-link", daemon=True
        )
        self._reader.start()

    # ------------------------------------------------------------------ the reader thread

    def _read_loop(self, fd: int) -> None:
        frames = wire.FrameBuffer(max(self.max_frame_bytes, DEFAULT_MAX_FRAME))
        reason = "the kernel closed the program link"
        try:
            while data := os.read(fd, 65536):
                frames.feed(data)
                while (payload := frames.next()) is not None:
                    self._dispatch(json.loads(payload))
        except Exception as error:  # noqa: BLE001 - reported, and every waiter is woken
            reason = f"the program link failed: {error!r}"
            print(f"commrouter.program: {reason}", file=sys.stderr, flush=True)
        finally:
            os.close(fd)
            self._kernel_gone(reason)

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        op = message.get("op")
        if op == "value":
            address = message.get("address")
            with self._state:
                subs = tuple(self._subs.get(address, ()))  # type: ignore[arg-type]
            value = message.get("value")
            for sub in subs:
                self._run_callback(sub, value)
        elif op == "sync_ack":
            with self._state:
                answer = self._syncs.get(message.get("id"))  # type: ignore[arg-type]
            if answer is not None:
                answer.set(message.get("error"))
        else:
            print(f"commrouter.program: ignored a frame with op {op!r}", file=sys.stderr)

    def _run_callback(self, sub: Subscription, value: Any) -> None:
        try:
            sub.callback(value)
        except Exception:  # noqa: BLE001 - the user's callback: reported and counted
            self.callback_errors += 1
            print(
                f"commrouter.program: callback {sub.callback!r} for {sub.address!r} raised "
                f"(callback error #{self.callback_errors}):",
                file=sys.stderr,
            )
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()

    def _kernel_gone(self, reason: str) -> None:
        with self._state:
            self._closed = reason
            closers, self._closers = self._closers, []
            answers = list(self._syncs.values())
        for answer in answers:
            answer.fail(LinkClosedError(reason))
        for close in closers:
            close()

    # ------------------------------------------------------------------------- helpers

    def _wait_bound(self, timeout: float | None, what: str) -> float:
        if threading.current_thread() is self._reader:
            raise RuntimeError(
                f"{what} cannot wait inside a callback: callbacks run on the thread that "
                "receives the answer (send from the callback, or wait in another thread)"
            )
        if timeout is not None:
            return timeout
        return self.sync_timeout if what == "sync" else self.timeout

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


def _check_address(address: Any) -> None:
    if not isinstance(address, str) or not address:
        raise ValueError(f"address must be a non-empty string, got {address!r}")
    if address[0] == "#":
        raise ValueError(f"address {address!r} is private to the protocol (starts with '#')")


def _number(env: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default


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
