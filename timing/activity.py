"""Quiescence: how many messages are in flight between actors, and waiting for none."""

from __future__ import annotations

import threading


class Activity:
    """Counts messages in flight between actors; waits for the count to reach zero."""

    __slots__ = ("_cond", "_count")

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition(threading.Lock())

    def begin(self) -> None:
        with self._cond:
            self._count += 1

    def done(self) -> None:
        with self._cond:
            self._count -= 1
            if self._count <= 0:
                self._count = 0
                self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> None:
        """Block until no message is in flight; raise TimeoutError after `timeout` real seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count == 0, timeout=timeout):
                raise TimeoutError(
                    f"actors still busy after {timeout} s ({self._count} messages in flight)"
                )


class UntrackedActivity(Activity):
    """Production (real time): nothing waits for quiescence, so counting every hop would only
    cost two lock round trips per message; `begin` and `done` do nothing."""

    __slots__ = ()

    def begin(self) -> None:
        pass

    def done(self) -> None:
        pass

    def wait_idle(self, timeout: float) -> None:
        raise RuntimeError("activity is not tracked in real time; only VirtualTime can settle")
