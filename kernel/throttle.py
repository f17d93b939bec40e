"""A bound on how many refusals the kernel logs: someone who can reach a port but has no key
can send bad messages as fast as the network allows, and one log line each would fill the
disk. Per (channel, reason), at most `limit` lines per `window` seconds of the injected clock;
the rest are counted, and the count is logged (`kernel.drops_suppressed`) with the next refusal
of that kind after the window, so every refusal is still accounted for."""

from __future__ import annotations

from dataclasses import dataclass

from commrouter.timing.clock import Clock


@dataclass(slots=True)
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0


class LogThrottle:
    """Not thread-safe: used by the kernel's IO thread only."""

    def __init__(self, clock: Clock, limit: int = 20, window: float = 1.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, channel: str, reason: str) -> tuple[bool, int]:
        """(log this one?, refusals suppressed in the window that just ended, to report now)."""
        now = self.clock.now()
        key = (channel, reason)
        current = self._windows.get(key)
        ended = 0
        if current is None or now - current.start >= self.window:
            ended = 0 if current is None else current.suppressed
            current = self._windows[key] = _Window(now)
        if current.logged < self.limit:
            current.logged += 1
            return True, ended
        current.suppressed += 1
        return False, ended
