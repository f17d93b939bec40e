"""A token bucket on the injected clock: at most `rate` events per second, bursts of `burst`."""

from __future__ import annotations

MIN_WAIT = 0.001


class TokenBucket:
    """`take(now)` spends a token if one is there; `wait(now)` says how long until one is."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.last = now

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token (at least a millisecond: clocks have a resolution)."""
        self._refill(now)
        return max(MIN_WAIT, (1.0 - self.tokens) / self.rate)
