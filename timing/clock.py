"""Clocks: monotonic seconds, read from the real monotonic clock or from freezegun's factory."""

from __future__ import annotations

import datetime
import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time in seconds. Only differences between readings matter."""

    def now(self) -> float:
        """Seconds since an arbitrary fixed origin; never decreases."""
        ...


class MonotonicClock:
    """Production clock: `time.monotonic()`."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


class FrozenClock:
    """Virtual clock read from a freezegun frozen-time factory.

    The factory is the object `freeze_time(...).start()` returns; calling it gives the frozen
    datetime, and `tick()` / `move_to()` move it. Reading the factory directly (rather than
    relying on freezegun's patching of `time.monotonic`) gives the same answer in every thread.
    """

    __slots__ = ("_factory", "_origin")

    def __init__(self, factory: FrozenFactory) -> None:
        self._factory = factory
        self._origin = factory()

    def now(self) -> float:
        return (self._factory() - self._origin).total_seconds()


class FrozenFactory(Protocol):
    """The part of freezegun's FrozenDateTimeFactory that virtual time uses."""

    def __call__(self) -> datetime.datetime: ...

    def tick(self, delta: datetime.timedelta | float = ...) -> datetime.datetime: ...
