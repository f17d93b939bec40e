"""The callback thread of a program link (standard library only).

One daemon thread runs every user callback, in arrival order. The receiving side hands work
over through a small bounded queue: a slow callback holds the receiving side back (the pipe
fills and the kernel merges values in its outbox), except while the callback thread itself
waits for an answer (`read` or `sync` inside a callback): then the hand-off does not block, so
the answer, which arrives behind the values, can still be received.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

LIMIT = 64  # callbacks waiting before the receiving side is held back


class CallbackRunner:
    """Runs `run(item)` for each item put, on one lazily started daemon thread."""

    def __init__(self, run: Callable[[Any], None], limit: int = LIMIT) -> None:
        self._run = run
        self._limit = limit
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._waiting = 0  # > 0 while the callback thread waits for an answer
        self._stopped = False
        self.on_room: Callable[[], None] | None = None  # called once room is back after a refusal
        self._refused = False

    def has_room(self) -> bool:
        """True if `put(..., block=False)` would take an item now; else `on_room` is called
        once there is room again."""
        with self._cond:
            room = self._room()
            if not room:
                self._refused = True
            return room

    def put(self, item: Any, *, block: bool = True) -> None:
        with self._cond:
            while block and not self._room():
                self._cond.wait()
            if self._stopped:
                return
            self._items.append(item)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="commrouter-callbacks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait for an answer: if on the callback thread, stop holding back."""
        if threading.current_thread() is not self._thread:
            yield
            return
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._waiting -= 1

    def waiting_now(self) -> bool:
        """True while the callback thread waits for an answer."""
        with self._cond:
            return self._waiting > 0

    def on_callback_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        """Run what is queued, then end the thread; later puts are dropped."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _room(self) -> bool:
        return self._stopped or self._waiting > 0 or len(self._items) < self._limit

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopped:
                    self._cond.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                notify = self._refused and len(self._items) < self._limit // 2
                if notify:
                    self._refused = False
                self._cond.notify_all()
            if notify and self.on_room is not None:
                self.on_room()
            self._run(item)
