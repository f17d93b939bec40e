"""Virtual time: freezegun's frozen clock, advanced only by the test or the simulation.

`advance(seconds)` moves the clock deadline by deadline, firing each due timer and waiting
until the actors have handled everything in flight before moving on. Nothing in a virtual-time
test sleeps: time moves only when the test says so, and only when the world is quiet.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from commrouter.timing.activity import Activity, UntrackedActivity
from commrouter.timing.clock import FrozenClock, FrozenFactory
from commrouter.timing.scheduler import Scheduler

DEFAULT_START = "2026-01-01T00:00:00"


class VirtualTime:
    """Clock, scheduler and quiescence tracking for one virtual-time world."""

    def __init__(self, factory: FrozenFactory, settle_timeout: float = 10.0) -> None:
        self.factory = factory
        self.clock = FrozenClock(factory)
        self.scheduler = Scheduler(self.clock)
        self.activity = Activity()
        self.settle_timeout = settle_timeout

    @classmethod
    @contextmanager
    def frozen(cls, start: str | datetime.datetime = DEFAULT_START) -> Iterator[VirtualTime]:
        """Freeze time with freezegun and yield a VirtualTime driven by its factory."""
        from freezegun import freeze_time  # test/simulation dependency, imported on use

        with freeze_time(start) as factory:
            yield cls(factory)

    def now(self) -> float:
        return self.clock.now()

    def settle(self) -> None:
        """Wait (bounded, in real time) until no message is in flight between actors."""
        self.activity.wait_idle(self.settle_timeout)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by `seconds`, firing due timers in deadline order."""
        if seconds < 0:
            raise ValueError(f"virtual time only moves forward, not by {seconds}")
        target = self.clock.now() + seconds
        self.settle()
        while True:
            deadline = self.scheduler.next_deadline()
            if deadline is None or deadline > target:
                break
            self._move_to(deadline)
            for timer in self.scheduler.pop_due(deadline):
                timer.target.tell(timer.message)
            self.settle()
        self._move_to(target)
        self.settle()

    def _move_to(self, when: float) -> None:
        delta = when - self.clock.now()
        if delta > 0:
            self.factory.tick(datetime.timedelta(seconds=delta))

    def pending_timers(self) -> int:
        return self.scheduler.pending()

    def __repr__(self) -> str:
        return f"VirtualTime(t={self.clock.now():.6f}, timers={self.scheduler.pending()})"


class RealTime:
    """Production time: the monotonic clock and a timer thread."""

    def __init__(self) -> None:
        from commrouter.timing.scheduler import ThreadScheduler

        self.scheduler: Any = ThreadScheduler()
        self.clock = self.scheduler.clock
        self.activity: Activity = UntrackedActivity()  # nothing settles in real time
