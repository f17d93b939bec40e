"""PageOutbox: everything the kernel owes the page, numbered, windowed and acknowledged.

A plain data structure owned by the Connection actor (no I/O, no clock: times are passed in).

- Values and read requests wait in `pending`, in order. A new value for an address that already
  has a value waiting replaces it in place (a *merge*), unless either is a stream value; read
  requests and sync markers are never merged.
- `take` moves entries to `inflight` and numbers them (`seq`, one stream of numbers for the
  router's lifetime) while fewer than `window` numbered entries wait for the page's ack.
  `worth_sending` keeps a nearly full window from going out a value per ack (below).
- `ack(n)` (cumulative) removes what the page received; a sync marker is settled once every
  entry before it is acknowledged (or dropped).
- Drops (too many waiting, or waiting too long without a page) are attributed to the first
  later sync marker of the same program, so that sync can say exactly what it lost; drops with
  no later marker are kept for that program's next sync.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.runtime import Promise

VALUE, READ, SYNC = "value", "read", "sync"
CLOCK_SLACK = 1e-6  # seconds: what float rounding may take off a timer's deadline


@dataclass(slots=True)
class Entry:
    """One thing owed to the page: a value, a read request, or a sync marker."""

    kind: str
    address: str | None = None
    value: Any = None
    program_id: str | None = None
    stream: bool = False
    reply: Promise[bool] | None = None
    queued_at: float = 0.0
    seq: int = 0  # 0 until sent
    sent_at: float | None = None  # when sent, if sent once (a resent value gives no RTT)
    sends: int = 0
    sync_id: int | None = None
    lost: Counter[str] | None = None  # a marker's: values before it that were dropped
    parent: Any = None  # the host's message context whose output the publish is
    origin: int = 0  # the same for an entry's copies in several windows' outboxes
    restated: bool = False  # sent by the router on its own: a snapshot's or a relayed value

    def payload(self) -> dict[str, Any]:
        """The entry as one item of a comm message (without its number)."""
        if self.kind == READ:
            return {"address": self.address, "read_request": True}
        return {"address": self.address, "value": self.value}


@dataclass(slots=True)
class Settled:
    """What an ack or a drop settled: entries the page has, markers whose turn came."""

    acked: list[Entry] = field(default_factory=list)
    markers: list[Entry] = field(default_factory=list)
    dropped: list[Entry] = field(default_factory=list)


class PageOutbox:
    """The queue toward the page with its window, numbering and drop accounting."""

    def __init__(
        self, window: int, limit: int, stream: str | None = None, first_seq: int = 1
    ) -> None:
        self.window = window
        self.min_send = max(1, window // 2)  # see worth_sending
        self.limit = limit
        self.stream = stream or uuid.uuid4().hex
        self.next_seq = first_seq  # a page re-linked on a new stream: above what it saw
        self.acked = first_seq - 1
        self.owner: str | None = None  # the comm of the window whose stream this is, if any
        self.pending: deque[Entry] = deque()
        self.inflight: deque[Entry] = deque()
        self.numbered = 0  # entries in `inflight` with a number (not markers)
        self.waiting: dict[str, Entry] = {}  # address -> its mergeable pending value
        self.unsynced: dict[str, Counter[str]] = {}  # program -> drops no marker took yet
        self.merged = 0
        self.dropped = 0
        self.sent = 0

    # ---------------------------------------------------------------------------- filling

    def put(self, entry: Entry) -> Entry | None:
        """Queue `entry`; returns the pending entry it was merged into, if it was."""
        if entry.kind == VALUE and not entry.stream:
            assert entry.address is not None
            waiting = self.waiting.get(entry.address)
            if waiting is not None:
                waiting.value, waiting.queued_at = entry.value, entry.queued_at
                waiting.origin = entry.origin
                self.merged += 1
                return waiting
            self.waiting[entry.address] = entry
        elif entry.kind == SYNC and entry.program_id is not None:
            entry.lost = self.unsynced.pop(entry.program_id, None)
        self.pending.append(entry)
        return None

    def over_limit(self) -> bool:
        return len(self.pending) > self.limit

    def trim(self) -> Settled:
        """Drop the oldest waiting values and read requests down to 90% of the limit."""
        excess = len(self.pending) - self.limit * 9 // 10
        doomed: set[int] = set()
        for entry in self.pending:
            if len(doomed) >= excess:
                break
            if entry.kind != SYNC:
                doomed.add(id(entry))
        return self._remove(lambda e: id(e) in doomed)

    def expire(self, now: float, max_age: float) -> Settled:
        """Drop every value and read request that waited `max_age` by `now` (in flight: only
        the oldest run of them, so that what stays in flight stays contiguously numbered). The
        test is the timer's own expression (`queued_at + max_age`), with a slack for the float
        rounding of a deadline, so the timer set for an entry's deadline always finds it due."""
        due = now + CLOCK_SLACK
        return self._remove(lambda e: e.kind != SYNC and e.queued_at + max_age <= due, prefix=True)

    def oldest(self) -> float | None:
        """When the next entry `expire` can drop was queued (None: nothing to drop)."""
        head = next((e.queued_at for e in self.inflight if e.kind != SYNC), None)
        times = [e.queued_at for e in self.pending if e.kind != SYNC]
        if head is not None:
            times.append(head)
        return min(times, default=None)

    def drop_all(self) -> Settled:
        """Drop everything owed (a headless run); markers are settled."""
        settled = self._remove(lambda e: e.kind != SYNC)
        settled.markers.extend(self.take_markers())
        return settled

    def take_markers(self) -> list[Entry]:
        """Remove every sync marker, in order (their syncs are answered some other way)."""
        markers = [e for e in (*self.inflight, *self.pending) if e.kind == SYNC]
        if markers:
            self.inflight = deque(e for e in self.inflight if e.kind != SYNC)
            self.pending = deque(e for e in self.pending if e.kind != SYNC)
        return markers

    # ----------------------------------------------------------------------------- sending

    def room(self) -> int:
        return self.window - self.numbered

    def worth_sending(self) -> bool:
        """True if what waits should go out now: nothing is in flight, everything waiting fits,
        or half the window is free. Otherwise the page's next acks make more room
        first: sending into a nearly full window would free a slot per ack and fill it with a
        one-value message, and once a queue is that long every message carries one value and
        throughput falls to the page's message rate (measured with tests/test_kernel_flow.py's
        slow reader and one busy core: 370 values/s, so 100,000 values outlasted the cell's
        150 s sync; in batches of at least half the window, with the program's own output
        bounded too, 8-10 s)."""
        room = self.room()
        if room <= 0 or not self.pending:
            return False
        return self.numbered == 0 or room >= self.min_send or len(self.pending) <= room

    def take(self, most: int) -> list[Entry]:
        """Number and move up to `most` entries (and the markers among them) into flight."""
        taken: list[Entry] = []
        pending, inflight, waiting = self.pending, self.inflight, self.waiting
        limit = min(most, self.room())
        while pending and (len(taken) < limit or pending[0].kind == SYNC):
            entry = pending.popleft()
            inflight.append(entry)
            if entry.kind == SYNC:
                continue
            if entry.address is not None and waiting.get(entry.address) is entry:
                del waiting[entry.address]
            entry.seq = self.next_seq
            self.next_seq += 1
            self.numbered += 1
            taken.append(entry)
        self.sent += len(taken)
        return taken

    def unacked(self) -> list[Entry]:
        """Entries sent and not acknowledged, in order (to send again)."""
        return [e for e in self.inflight if e.kind != SYNC]

    def first_unacked(self) -> int:
        """The number the page will receive next when the unacknowledged are sent again."""
        for entry in self.inflight:
            if entry.kind != SYNC:
                return entry.seq
        return self.next_seq

    def ack(self, seq: int) -> Settled:
        """The page received everything numbered up to `seq` (cumulative)."""
        settled = Settled()
        if seq <= self.acked:
            return settled
        self.acked = min(seq, self.next_seq - 1)
        inflight = self.inflight
        while inflight:  # markers and the values they stand between, in one pass
            head = inflight[0]
            if head.kind == SYNC:
                settled.markers.append(inflight.popleft())
            elif head.seq <= self.acked:
                settled.acked.append(inflight.popleft())
                self.numbered -= 1
            else:
                break
        return settled

    def settle(self) -> list[Entry]:
        """Markers whose every earlier entry is acknowledged or dropped (a marker at the head
        of `pending`, after drops, included)."""
        self.take(0)
        return self._settle_markers()

    def settle_sent(self) -> list[Entry]:
        """Markers whose every earlier entry was sent (for a page whose acks cannot come
        while the program waits)."""
        markers = [e for e in self.inflight if e.kind == SYNC]
        if markers:
            self.inflight = deque(e for e in self.inflight if e.kind != SYNC)
        return markers

    # ----------------------------------------------------------------------------- helpers

    def _settle_markers(self) -> list[Entry]:
        markers: list[Entry] = []
        inflight = self.inflight
        while inflight and inflight[0].kind == SYNC:
            markers.append(inflight.popleft())
        return markers

    def _remove(self, doomed: Callable[[Entry], bool], prefix: bool = False) -> Settled:
        """Remove the entries `doomed` picks, attributing each to the next marker of its
        program. With `prefix`, only a leading run of numbered entries leaves `inflight`: a
        gap in the numbers would stop the page at it."""
        settled = Settled()
        carry: dict[str, Counter[str]] = {}
        kept_inflight: deque[Entry] = deque()
        kept_pending: deque[Entry] = deque()
        for source, kept in ((self.inflight, kept_inflight), (self.pending, kept_pending)):
            in_run = True
            for entry in source:
                if entry.kind == SYNC:
                    lost = carry.pop(entry.program_id or "", None)
                    if lost:
                        entry.lost = (entry.lost or Counter()) + lost
                    kept.append(entry)
                elif (in_run or not prefix or source is self.pending) and doomed(entry):
                    settled.dropped.append(entry)
                    if entry.kind == VALUE and entry.program_id is not None:
                        carry.setdefault(entry.program_id, Counter())[entry.address or ""] += 1
                else:
                    in_run = False
                    kept.append(entry)
        for program_id, lost in carry.items():
            self.unsynced[program_id] = self.unsynced.get(program_id, Counter()) + lost
        removed = {id(e) for e in settled.dropped}
        self.numbered -= sum(1 for e in settled.dropped if e.seq)
        for address, entry in list(self.waiting.items()):
            if id(entry) in removed:
                del self.waiting[address]
        self.inflight, self.pending = kept_inflight, kept_pending
        self.dropped += sum(1 for e in settled.dropped if e.kind == VALUE)
        return settled


def by_address(entries: Iterable[Entry]) -> Counter[tuple[str | None, str]]:
    """Count entries per (program, address), in order of first appearance (for the logs)."""
    return Counter((e.program_id, e.address or "") for e in entries)


def describe(lost: Counter[str]) -> str:
    """`3 values (/a x2, /b)` for a sync error."""
    total = sum(lost.values())
    parts = (f"{a} x{n}" if n > 1 else a for a, n in itertools.islice(lost.most_common(), 10))
    more = ", ..." if len(lost) > 10 else ""
    noun = "value" if total == 1 else "values"
    return f"{total} {noun} ({', '.join(parts)}{more})"
