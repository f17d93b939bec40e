"""Follow values through the system, hop by hop, from the log alone.

`trace(events, "/slider/*")` returns one `Journey` per value (or read request) that went to or
came from a matching address, with its hops in log order, the latency of each hop, and how it
ended. Two directions:

- **front-end -> program**, followed by the front-end message's `msg_id`:
  `page.sent` (simulation) -> `net.*` (simulation) -> `kernel.comm_msg` / `host.comm_received`
  -> `connection.received` -> `router.delivered` -> [`program.queued` ->]
  `program.delivered` (handed to the program's link) -> `cell.received` (simulation).
  It ends early at `connection.msg_dropped`, `router.dropped`, `program.value_dropped`,
  `program.value_merged` (the value was replaced by a newer one: `replaced` names it),
  `program.values_dropped` (the outbox was dropped), `net.dropped`, `cell.lost`.
- **program -> front-end** (values and read requests), which carry no message id: they are
  matched in order per (program, address) and then per (comm, address), which is exact
  because every stage keeps that order: `cell.sent`/`cell.read` (simulation) ->
  `program.send_accepted`/`program.read_accepted` -> `connection.sent` (published on the
  comm, alone or in a batch) -> `page.received`/`page.read_requested` (simulation). It ends
  early at `program.request_dropped`, `connection.value_merged` (a newer value for the address
  took its place), `connection.values_dropped` (its `count` oldest waiting values),
  `host.unheard` (published on a comm no window holds), `cell.unsent`. A host's
  `CommRouter.send` (`host.send` in a simulation) travels the same way without a program.

Most hops are debug-level events: a log written at `info` shows only how values were dropped,
not the path of those that arrived. A value's hops can span several files (a simulation log and
a kernel log, merged by time) only if the ids match; message ids are taken per file.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.observability.query import matches_address
from commrouter.observability.reading import event_time

Event = Mapping[str, Any]

__all__ = ["Hop", "Journey", "trace"]

TO_PROGRAM = "front-end -> program"
TO_FRONT_END = "program -> front-end"

# How an event ends a journey that reached it (when nothing comes after it in the log).
DELIVERED = {
    "program.delivered": "handed to the program's link",
    "cell.received": "received by the program",
    "connection.sent": "published on the comm",
    "page.received": "received by the page",
    "page.read_requested": "read request reached the page",
    "heartbeat.pong_received": "answered a ping",
    "heartbeat.pong_sent": "answered with a pong",
}
_MAX_ORPHANS = 10_000  # events seen by msg_id before their journey's first addressed event


@dataclass
class Hop:
    """One event on a value's path, and the seconds since the hop before (None for the first,
    or without times)."""

    event: Event
    time: float | None
    latency: float | None

    @property
    def name(self) -> str:
        return str(self.event.get("event", ""))

    @property
    def actor(self) -> str:
        return str(self.event.get("actor") or "-")


@dataclass
class Journey:
    """One value's path. `outcome` is "delivered", "dropped", "merged", "lost", "not sent" or
    "in flight" (the log stops before the value arrived anywhere); `reason` says how."""

    direction: str
    address: str
    kind: str = "value"  # or "read request"
    value: Any = None
    msg_id: str | None = None
    program_id: str | None = None
    comm_id: str | None = None
    hops: list[Hop] = field(default_factory=list)
    outcome: str = "in flight"
    reason: str | None = None
    ended: bool = False

    def add(self, event: Event) -> None:
        when = event_time(event)
        before = self.hops[-1].time if self.hops else None
        latency = None if when is None or before is None else when - before
        self.hops.append(Hop(event, when, latency))
        for key in ("program_id", "comm_id", "msg_id"):
            if getattr(self, key) is None and event.get(key) is not None:
                setattr(self, key, event.get(key))
        if self.value is None and "value" in event:
            self.value = event.get("value")
        name = str(event.get("event", ""))
        if not self.ended and name in DELIVERED:
            self.outcome, self.reason = "delivered", DELIVERED[name]

    def end(self, event: Event, outcome: str, reason: Any) -> None:
        if event is not (self.hops[-1].event if self.hops else None):
            self.add(event)
        self.outcome, self.ended = outcome, True
        self.reason = None if reason is None else str(reason)

    @property
    def last(self) -> Hop | None:
        return self.hops[-1] if self.hops else None

    @property
    def duration(self) -> float | None:
        """Seconds from the first hop to the last (None without times)."""
        if not self.hops or self.hops[0].time is None or self.hops[-1].time is None:
            return None
        return self.hops[-1].time - self.hops[0].time

    def ids(self) -> set[str]:
        """Every comm, program and message id on its hops (for selecting journeys)."""
        found = set()
        for hop in self.hops:
            for key in ("comm_id", "program_id", "msg_id", "replaced"):
                if hop.event.get(key) is not None:
                    found.add(str(hop.event[key]))
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "kind": self.kind,
            "address": self.address,
            "value": self.value,
            "msg_id": self.msg_id,
            "program_id": self.program_id,
            "comm_id": self.comm_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "duration": self.duration,
            "hops": [
                {
                    "event": hop.name,
                    "actor": hop.event.get("actor"),
                    "ts": hop.event.get("ts"),
                    "t": hop.event.get("t"),
                    "latency": hop.latency,
                    "level": hop.event.get("level"),
                }
                for hop in self.hops
            ],
        }


class _Tracer:
    """One pass over the log; journeys are created by the first hop with a matching address."""

    def __init__(self, address: str) -> None:
        self.pattern = address
        self.journeys: list[Journey] = []
        self.by_msg: dict[tuple[Any, str], Journey] = {}
        self.orphans: OrderedDict[tuple[Any, str], list[Event]] = OrderedDict()
        # program -> front-end, FIFO per stage
        self.at_cell: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.at_executor: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.queued: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.published: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        # front-end -> program, after the link
        self.at_link: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.outbox: defaultdict[tuple[Any, ...], list[Journey]] = defaultdict(list)

    def matches(self, event: Event) -> bool:
        return matches_address(self.pattern, event.get("address"))

    # ----------------------------------------------------------------- helpers

    def new(self, event: Event, direction: str, kind: str = "value") -> Journey:
        journey = Journey(direction, str(event.get("address")), kind)
        self.journeys.append(journey)
        return journey

    def by_id(self, event: Event, create: bool = True) -> Journey | None:
        """The front-end -> program journey of this event's msg_id (created if the event has a
        matching address; earlier events with that msg_id are put in front)."""
        msg_id = event.get("msg_id")
        if msg_id is None:
            return None
        key = (getattr(event, "source", None), str(msg_id))
        journey = self.by_msg.get(key)
        if journey is None:
            if not (create and self.matches(event)):
                if event.get("address") is None:  # may belong to a journey not seen yet
                    self.orphans.setdefault(key, []).append(event)
                if len(self.orphans) > _MAX_ORPHANS:
                    self.orphans.popitem(last=False)
                return None
            journey = self.by_msg[key] = self.new(event, TO_PROGRAM)
            for earlier in self.orphans.pop(key, ()):
                journey.add(earlier)
        return journey

    @staticmethod
    def take(*queues: deque[Journey]) -> Journey | None:
        for queue in queues:
            if queue:
                return queue.popleft()
        return None

    # ----------------------------------------------------------------- the pass

    def feed(self, event: Event) -> None:
        name = str(event.get("event", ""))
        handler = getattr(self, "on_" + name.replace(".", "_"), None)
        if handler is not None:
            handler(event, getattr(event, "source", None))

    # front-end -> program --------------------------------------------------

    def _hop(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is not None:
            journey.add(event)

    on_page_sent = _hop
    on_kernel_comm_msg = _hop
    on_net_delayed = _hop
    on_net_duplicated = _hop
    on_net_reordered = _hop
    on_connection_received = _hop
    on_router_delivered = _hop
    on_heartbeat_pong_received = _hop
    on_heartbeat_pong_sent = _hop
    on_heartbeat_pong_unexpected = _hop

    def on_host_comm_received(self, event: Event, src: Any) -> None:
        if event.get("msg_type") == "comm_msg":
            self._hop(event, src)

    def _dropped(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is not None:
            journey.end(event, "dropped", event.get("reason"))

    on_connection_msg_dropped = _dropped
    on_router_dropped = _dropped
    on_program_value_dropped = _dropped

    def on_net_dropped(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is not None:
            journey.end(event, "lost", f"dropped by the network: {event.get('reason')}")

    def on_program_queued(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is not None:
            journey.add(event)
            self.outbox[(src, event.get("program_id"))].append(journey)

    def on_program_delivered(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is None:
            return
        journey.add(event)
        waiting = self.outbox.get((src, event.get("program_id")))
        if waiting and journey in waiting:
            waiting.remove(journey)
        self.at_link[(src, event.get("program_id"), event.get("address"))].append(journey)

    def on_program_value_merged(self, event: Event, src: Any) -> None:
        journey = self.by_id(event)
        if journey is not None:
            journey.add(event)
            self.outbox[(src, event.get("program_id"))].append(journey)
        replaced = event.get("replaced")
        if replaced is None:
            return
        old = self.by_msg.get((src, str(replaced)))
        if old is not None and not old.ended:
            waiting = self.outbox.get((src, event.get("program_id")))
            if waiting and old in waiting:
                waiting.remove(old)
            old.end(event, "merged", f"replaced by the newer value of {event.get('msg_id')}")

    def on_program_values_dropped(self, event: Event, src: Any) -> None:
        for journey in self.outbox.pop((src, event.get("program_id")), []):
            if not journey.ended:
                journey.end(event, "dropped", f"outbox dropped: {event.get('reason')}")

    def on_cell_received(self, event: Event, src: Any) -> None:
        journey = self.take(self.at_link[(src, event.get("program_id"), event.get("address"))])
        if journey is not None:
            journey.add(event)

    def on_cell_lost(self, event: Event, src: Any) -> None:
        if "address" not in event:
            return
        journey = self.take(self.at_link[(src, event.get("program_id"), event.get("address"))])
        if journey is not None:
            journey.end(event, "lost", f"left unread in the link: {event.get('why')}")

    # program -> front-end --------------------------------------------------

    def _key(self, event: Event, src: Any) -> tuple[Any, ...]:
        return (src, event.get("program_id"), event.get("address"))

    def _start(self, event: Event, src: Any, kind: str) -> None:
        if self.matches(event):
            journey = self.new(event, TO_FRONT_END, kind)
            journey.add(event)
            self.at_cell[self._key(event, src)].append(journey)

    def on_cell_sent(self, event: Event, src: Any) -> None:
        self._start(event, src, "value")

    def on_cell_read(self, event: Event, src: Any) -> None:
        self._start(event, src, "read request")

    def on_host_send(self, event: Event, src: Any) -> None:
        if self.matches(event):
            journey = self.new(event, TO_FRONT_END)
            journey.add(event)
            self.at_executor[self._key(event, src)].append(journey)

    def on_cell_unsent(self, event: Event, src: Any) -> None:
        if self.matches(event) and event.get("request") in ("send", "read"):
            kind = "value" if event.get("request") == "send" else "read request"
            journey = self.new(event, TO_FRONT_END, kind)
            journey.end(event, "not sent", event.get("why"))

    def _accepted(self, event: Event, src: Any, kind: str) -> None:
        if not self.matches(event):
            return
        key = self._key(event, src)
        journey = self.take(self.at_cell[key]) or self.new(event, TO_FRONT_END, kind)
        journey.add(event)
        self.at_executor[key].append(journey)

    def on_program_send_accepted(self, event: Event, src: Any) -> None:
        self._accepted(event, src, "value")

    def on_program_read_accepted(self, event: Event, src: Any) -> None:
        self._accepted(event, src, "read request")

    def on_program_request_dropped(self, event: Event, src: Any) -> None:
        if event.get("address") is None and event.get("count"):
            # held requests dropped when the program finished: those not yet accepted
            for key, waiting in self.at_cell.items():
                if key[:2] == (src, event.get("program_id")):
                    while waiting:
                        waiting.popleft().end(event, "dropped", event.get("reason"))
            return
        if not self.matches(event) or event.get("request") not in ("send", "read"):
            return
        kind = "value" if event.get("request") == "send" else "read request"
        key = self._key(event, src)
        journey = self.take(self.at_cell[key]) or self.new(event, TO_FRONT_END, kind)
        journey.end(event, "dropped", event.get("reason"))

    def on_connection_value_merged(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        journey = self.take(self.at_executor[self._key(event, src)])
        if journey is not None:
            journey.end(event, "merged", "a newer value for the address took its place")

    def on_connection_sent(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        key = self._key(event, src)
        journey = self.take(self.queued[key], self.at_executor[key]) or self.new(
            event, TO_FRONT_END
        )
        journey.add(event)
        self.published[(src, event.get("comm_id"), event.get("address"))].append(journey)

    def on_connection_values_dropped(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        key = self._key(event, src)
        for _ in range(int(event.get("count") or 1)):
            journey = self.take(self.queued[key], self.at_executor[key]) or self.new(
                event, TO_FRONT_END
            )
            journey.end(event, "dropped", event.get("reason"))

    def _arrived(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        journey = self.take(self.published[(src, event.get("comm_id"), event.get("address"))])
        if journey is not None:
            journey.add(event)

    on_page_received = _arrived
    on_page_read_requested = _arrived

    def on_host_unheard(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        journey = self.take(self.published[(src, event.get("comm_id"), event.get("address"))])
        if journey is not None:
            journey.end(event, "lost", f"no window holds the comm: {event.get('why')}")


def trace(events: Iterable[Event], address: str) -> list[Journey]:
    """Every value to or from `address` (exact, or a prefix ending in '*'), in the order each
    was first seen, with its hops (see the module doc)."""
    tracer = _Tracer(address)
    for event in events:
        tracer.feed(event)
    return tracer.journeys
