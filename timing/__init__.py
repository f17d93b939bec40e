"""Injected time: one clock and one scheduler of deadlines for every timer in the system."""

from __future__ import annotations

from commrouter.timing.activity import Activity
from commrouter.timing.clock import Clock, FrozenClock, MonotonicClock
from commrouter.timing.rate import TokenBucket
from commrouter.timing.scheduler import Scheduler, ThreadScheduler, Timer, TimerTarget
from commrouter.timing.virtual import RealTime, VirtualTime

__all__ = [
    "Activity",
    "Clock",
    "FrozenClock",
    "MonotonicClock",
    "RealTime",
    "Scheduler",
    "ThreadScheduler",
    "Timer",
    "TimerTarget",
    "TokenBucket",
    "VirtualTime",
]
