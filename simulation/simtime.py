"""The harness's time: one run's virtual time, and the simulated world's own agenda.

Two things wait for their moment in a run. The router's timers live in `VirtualTime`'s
scheduler, as in any virtual-time test; what the simulated world schedules for itself (scenario
steps, messages crossing the network, the windows' own timers) lives in the `Agenda`. The
simulation's loop (`runner.Simulation`) takes the earlier of the two, one step at a time: the
router's timers through `VirtualTime.step` (first, at the same instant), an agenda item after
`VirtualTime.move_to` its time. Agenda times are rounded to microseconds, the resolution of
freezegun's clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from commrouter.timing import VirtualTime

__all__ = ["EPSILON", "START", "Agenda", "Item", "frozen_time"]

START = "2026-01-01T00:00:00"  # virtual time 0 of every run (and of its log's `ts`)
EPSILON = 1e-9  # a router timer this close after an agenda item still comes first


def frozen_time() -> AbstractContextManager[VirtualTime]:
    """Freeze time at `START` for one run and give its `VirtualTime`."""
    try:
        import freezegun  # noqa: F401 - simulation dependency, imported on use
    except ImportError as error:
        raise RuntimeError(
            "the simulation drives virtual time with freezegun: pip install freezegun "
            "(it comes with commrouter[test])"
        ) from error
    return VirtualTime.frozen(START)


@dataclass(order=True)
class Item:
    """Something scheduled on the simulation's agenda."""

    t: float
    seq: int
    label: str = field(compare=False)
    fn: Callable[[], None] = field(compare=False)
    entry: str | None = field(compare=False, default=None)
    event: dict[str, Any] | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        """Skip it (a window's timer that no longer matters): no step is taken for it."""
        self.cancelled = True


class Agenda:
    """The simulated world's schedule: earliest first, then in the order scheduled."""

    def __init__(self) -> None:
        self._heap: list[Item] = []
        self._seq = itertools.count()

    def add(
        self,
        at: float,
        label: str,
        fn: Callable[[], None],
        entry: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> Item:
        """Schedule `fn` at virtual time `at`; `entry` is the actor the step enters by."""
        item = Item(round(at, 6), next(self._seq), label, fn, entry, event)
        heapq.heappush(self._heap, item)
        return item

    def first(self) -> Item | None:
        """The next item that is not cancelled (left on the agenda), or None."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else None

    def pop(self) -> Item:
        """Remove and return the next item (after `first` found one)."""
        return heapq.heappop(self._heap)
