"""The front-end link's windows: one `Window` per open comm (a browser tab, a second view of a
notebook, a reloaded page), each with its own outbox, acknowledgements and liveness; the last
value of each state address (`LastValues`), which a newly opened window is sent at once; and
the bookkeeping that makes `sync()` and reads span every window (`SyncTrack`).

Plain data owned by the Connection actor (docs/protocol.md, "Windows").
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from commrouter.router.page_outbox import PageOutbox
from commrouter.timing import Timer


@dataclass(slots=True, eq=False)
class Window:
    """One open comm: what it is owed, what it acknowledged, when it was last heard."""

    comm_id: str
    outbox: PageOutbox
    opened_at: float
    last_heard: float
    concurrent: bool = True  # its acks can arrive while a cell runs
    ack_timer: Timer | None = None
    ack_generation: int = 0
    ack_backoff: float = 0.0
    ack_rtts: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    fast_resent: int = -1  # the ack value a duplicate ack already caused a resend for
    probing: bool = False  # a heartbeat probe of this silent window is under way
    probe_seq: int = 0
    probe_timer: Timer | None = None

    def stop_timers(self) -> None:
        for timer in (self.ack_timer, self.probe_timer):
            if timer is not None:
                timer.cancel()
        self.ack_timer = self.probe_timer = None
        self.probing = False


class LastValues:
    """The last value of each state address (sent to the page or received from a window),
    least recently changed first, with the origin of the entry that carried it (0: a
    window's); at most `limit` addresses."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._values: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def record(self, address: str, value: Any, origin: int = 0) -> None:
        values = self._values
        values[address] = (value, origin)
        values.move_to_end(address)
        if len(values) > self.limit:
            values.popitem(last=False)

    def items(self) -> Iterator[tuple[str, tuple[Any, int]]]:
        return iter(list(self._values.items()))

    def __len__(self) -> int:
        return len(self._values)


@dataclass(slots=True)
class SyncTrack:
    """A `sync()` placed in several outboxes: answered when the last of its markers settles,
    with every value any of them lost."""

    remaining: int
    lost: Counter[str] = field(default_factory=Counter)
    error: str | None = None


@dataclass(slots=True)
class ReadTrack:
    """A read request asked of one window at a time: `asked` said they hold nothing there."""

    program_id: str | None
    asked: set[str] = field(default_factory=set)
