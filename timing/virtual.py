"""Virtual time: freezegun's frozen clock, advanced only by the test or the simulation.

`advance(seconds)` moves the clock deadline by deadline, firing each due timer and waiting
until the actors have handled everything in flight before moving on. Nothing in a virtual-time
test sleeps: time moves only when the test says so, and only when the world is quiet.

`advance` is built from two public steps that a driver with its own events (the simulation)
interleaves with them: `move_to(when)` moves the clock without firing anything, and
`step(until)` fires the timers of the single earliest deadline not after `until`, one at a time.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from commrouter.timing.activity import Activity, UntrackedActivity
from commrouter.timing.clock import FrozenClock, FrozenFactory
from commrouter.timing.scheduler import Scheduler, Timer

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
        while self.step(target):
            pass
        self.move_to(target)
        self.settle()

    def move_to(self, when: float) -> None:
        """Move the clock forward to the virtual time `when` (seconds since the start).

        It never moves backward: a `when` not after now leaves the clock where it is. Nothing
        fires: timers that fall due wait for `step` (or `advance`).
        """
        delta = when - self.clock.now()
        if delta > 0:
            self.factory.tick(datetime.timedelta(seconds=delta))

    def step(self, until: float, fire: Callable[[Timer], None] | None = None) -> bool:
        """Fire the timers of the earliest deadline if it is not after `until`; False if none.

        The clock moves to that deadline (`move_to`); its timers, in creation order, fire one
        at a time, the world settling after each; one cancelled by an earlier one is skipped.
        Timers they schedule, even for the same instant, wait for the next `step`.

        `fire(timer)` replaces the default firing (tell the timer's message to its target,
        then `settle`) for a driver that records each firing; it must tell the message and
        leave the world quiet itself.
        """
        deadline = self.scheduler.next_deadline()
        if deadline is None or deadline > until:
            return False
        self.move_to(deadline)
        for timer in self.scheduler.pop_due(deadline):
            if timer.cancelled:
                continue
            if fire is None:
                timer.target.tell(timer.message)
                self.settle()
            else:
                fire(timer)
        return True

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
