"""Quiescence: how many messages are in flight between actors, and waiting for none.

`when_quiet(target, message)` is the "soon" of drain batching (docs/performance.md): tell
`message` once the actor asking has handled what it has queued. Tracked (virtual time), that is
when no message is in flight anywhere, which does not depend on how the threads ran; untracked
(real time), a tell behind what is already queued (`RouterActor.tell_self_when_drained`).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Protocol


class QuietTarget(Protocol):
    """Whatever a quiet-time message is told to (an actor slot)."""

    def tell(self, message: Any) -> None: ...


class Activity:
    """Counts messages in flight between actors; waits for the count to reach zero."""

    __slots__ = ("_cond", "_count", "_quiet")

    tracked: ClassVar[bool] = True  # False: nothing is counted (real time)

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition(threading.Lock())
        self._quiet: list[tuple[QuietTarget, Any]] = []

    def begin(self) -> None:
        with self._cond:
            self._count += 1

    def done(self) -> None:
        with self._cond:
            self._count -= 1
            if self._count > 0:
                return
            if not self._quiet:
                self._count = 0
                self._cond.notify_all()
                return
            # Quiet, with messages waiting for it: tell them before anyone can see the count at
            # zero (held at one while telling; each tell counts itself), so `wait_idle` returns
            # only once they were handled too.
            due, self._quiet = self._quiet, []
            self._count = 1
        for target, message in due:
            target.tell(message)
        self.done()

    def when_quiet(self, target: QuietTarget, message: Any) -> None:
        """Tell `message` to `target` as soon as no message is in flight (in the order asked).

        Asked from a handler, so the count is not zero now: the message goes out when the
        world is next quiet, before `wait_idle` returns. Which messages were handled by then
        depends only on what was injected, not on thread timing.
        """
        with self._cond:
            if self._count > 0:
                self._quiet.append((target, message))
                return
        target.tell(message)  # already quiet (asked from outside any handler)

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

    tracked: ClassVar[bool] = False

    def begin(self) -> None:
        pass

    def done(self) -> None:
        pass

    def when_quiet(self, target: QuietTarget, message: Any) -> None:
        """Real time: a tell, behind whatever the target has queued already."""
        target.tell(message)

    def wait_idle(self, timeout: float) -> None:
        raise RuntimeError("activity is not tracked in real time; only VirtualTime can settle")
