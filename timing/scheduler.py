"""Deadline scheduling: a timer tells a message to an actor when the clock reaches its deadline.

`Scheduler` keeps the ordered deadlines; who moves time differs. `ThreadScheduler` fires from
one daemon thread on the real monotonic clock; `commrouter.timing.virtual.VirtualTime` fires
when a test or the simulation advances freezegun's clock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Any, Protocol

from commrouter.timing.clock import Clock, MonotonicClock


class TimerTarget(Protocol):
    """Whatever a timer tells its message to (an actor slot)."""

    def tell(self, message: Any) -> None: ...


class Timer:
    """A pending deadline. `cancel()` is idempotent and safe from any thread."""

    __slots__ = ("cancelled", "deadline", "message", "seq", "target")

    def __init__(self, deadline: float, seq: int, target: TimerTarget, message: Any) -> None:
        self.deadline = deadline
        self.seq = seq
        self.target = target
        self.message = message
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class Scheduler:
    """Ordered deadlines on a clock. Subclasses decide when due timers fire."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._lock = threading.Condition()

    def call_later(self, delay: float, target: TimerTarget, message: Any) -> Timer:
        """Tell `message` to `target` once `delay` seconds of clock time have passed."""
        timer = Timer(self.clock.now() + max(0.0, delay), next(self._seq), target, message)
        with self._lock:
            heapq.heappush(self._heap, timer)
            self._lock.notify()
        return timer

    def pending(self) -> int:
        """How many timers are waiting (cancelled ones excluded)."""
        with self._lock:
            return sum(1 for t in self._heap if not t.cancelled)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None."""
        with self._lock:
            self._discard_cancelled()
            return self._heap[0].deadline if self._heap else None

    def pop_due(self, now: float) -> list[Timer]:
        """Remove and return, in deadline order, every live timer due at `now`."""
        due: list[Timer] = []
        with self._lock:
            while self._heap and self._heap[0].deadline <= now:
                timer = heapq.heappop(self._heap)
                if not timer.cancelled:
                    due.append(timer)
        return due

    def _discard_cancelled(self) -> None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)

    def start(self) -> None:
        """Begin firing timers (no-op where time is driven from outside)."""

    def stop(self) -> None:
        """Stop firing timers; pending ones are discarded."""
        with self._lock:
            self._heap.clear()
            self._lock.notify_all()


class ThreadScheduler(Scheduler):
    """Fires due timers from one daemon thread, sleeping until the next deadline."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock or MonotonicClock())
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="commrouter-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        super().stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._discard_cancelled()
                wait = None
                if self._heap:
                    wait = self._heap[0].deadline - self.clock.now()
                if wait is None or wait > 0:
                    self._lock.wait(timeout=wait)
                    continue
            for timer in self.pop_due(self.clock.now()):
                timer.target.tell(timer.message)
