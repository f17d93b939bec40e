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
  `program.values_dropped` (the outbox was dropped; `dropped` names each value),
  `supervisor.dead_letter` and `actor.crashed` (lost with an actor), `net.dropped`,
  `cell.lost`. The values of one message (a batch) are told apart by address, and those to
  one address by order: each stage keeps it (`STAGE`).
- **program -> front-end** (values and read requests), which carry no message id: they are
  matched in order per (program, address) and then per (comm, address), which is exact
  because every stage keeps that order: `cell.sent`/`cell.read` (simulation) ->
  `program.send_accepted`/`program.read_accepted` -> `connection.sent` (published on the
  comm, alone or in a batch) -> `page.received`/`page.read_requested` (simulation). It ends
  early at `program.request_dropped`, `connection.value_merged` (a newer value for the address
  took its place), `connection.values_dropped` (its `count` oldest waiting values),
  `supervisor.dead_letter` or `actor.crashed` (a send lost with an actor),
  `host.unheard` (published on a comm no window holds: unless it is sent again, by its
  number, as after a reload), `cell.unsent`. Once published, a value is followed by its
  number (`seq`; `number` in a simulation log): a resend continues its journey. A host's
  `CommRouter.send` (`host.send` in a simulation) travels the same way without a program.

Most hops are debug-level events: a log written at `info` shows only how values were dropped,
not the path of those that arrived. A value's hops can span several files (a simulation log and
a kernel log, merged by time) only if the ids match; message ids are taken per file.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from commrouter.observability.journey import TO_FRONT_END, TO_PROGRAM, Hop, Journey
from commrouter.observability.query import matches_address

Event = Mapping[str, Any]

__all__ = ["Hop", "Journey", "trace"]


# Front-end -> program: how far along its path each event puts a value. The values of one
# message to one address (a batch) are told apart by order: an event goes to the first of them
# that has not reached its stage yet, since every stage keeps their order.
STAGE = {
    "page.sent": 0,
    "host.comm_received": 1,
    "connection.received": 2,
    "connection.msg_dropped": 2,
    "router.delivered": 3,
    "router.dropped": 3,
    "program.queued": 4,
    "program.value_merged": 4,
    "program.value_dropped": 4,
    "program.delivered": 5,
    "program.values_dropped": 5,
}
_LAST_STAGE = 6
_ACTOR_STAGE = {"connection": 2, "router": 3, "program_executor": 4}  # a message lost there
_MAX_ORPHANS = 1_000  # messages seen by msg_id before their journey's first addressed event


class _Tracer:
    """One pass over the log; journeys are created by the first hop with a matching address."""

    def __init__(self, address: str) -> None:
        self.pattern = address
        self.journeys: list[Journey] = []
        # front-end -> program: (file, msg_id) -> address -> journey (a batch: several)
        self.by_msg: dict[tuple[Any, str], dict[str, list[Journey]]] = {}
        self.orphans: OrderedDict[tuple[Any, str], list[Event]] = OrderedDict()
        self.prefix: dict[tuple[Any, str], list[Event]] = {}  # a message's address-less hops
        # program -> front-end, FIFO per stage
        self.at_cell: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.at_executor: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.queued: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.published: defaultdict[tuple[Any, ...], deque[Journey]] = defaultdict(deque)
        self.numbered: dict[tuple[Any, ...], Journey] = {}  # published, by number
        self.starts: dict[Any, int] = {}  # file -> routers started in it so far
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

    def by_id(self, event: Event, stage: int | None = None) -> list[Journey]:
        """The front-end -> program journeys of this event's msg_id: of its address, the first
        one not ended that has not reached the event's `stage` (created if there is none and
        the address matches; the message's earlier address-less hops are put in front), or,
        for an event without an address (`kernel.comm_msg`, a network fault, a crash on a
        batch), every journey of the message (kept for those still to come)."""
        msg_id = event.get("msg_id")
        if msg_id is None:
            return []
        key = (getattr(event, "source", None), str(msg_id))
        found = self.by_msg.get(key)
        address = event.get("address")
        if address is None:
            if found:
                self.prefix[key].append(event)
                return [j for journeys in found.values() for j in journeys]
            self.orphans.setdefault(key, []).append(event)
            if len(self.orphans) > _MAX_ORPHANS:
                self.orphans.popitem(last=False)
            return []
        if stage is None:
            stage = STAGE.get(str(event.get("event")), _LAST_STAGE)
        same = found.get(str(address), []) if found else []
        journey = next((j for j in same if not j.ended and j.stage < stage), None)
        if journey is None:
            if not self.matches(event):
                return []
            journey = self.new(event, TO_PROGRAM)
            self.by_msg.setdefault(key, {}).setdefault(str(address), []).append(journey)
            prefix = self.prefix.get(key)
            if prefix is None:
                prefix = self.prefix[key] = self.orphans.pop(key, [])
            for earlier in prefix:
                journey.add(earlier)
        journey.stage = max(journey.stage, stage)
        return [journey]

    def lost(
        self, event: Event, outcome: str, reason: Any, *values: Event, stage: int | None = None
    ) -> None:
        """End the journeys of this event's message (or of the `values` it names) that have
        not ended yet."""
        for value in values or (event,):
            for journey in self.by_id(value, stage):
                if not journey.ended:
                    journey.end(event, outcome, reason)

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
        for journey in self.by_id(event):
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
        self.lost(event, "dropped", event.get("reason"))

    on_connection_msg_dropped = _dropped
    on_router_dropped = _dropped
    on_program_value_dropped = _dropped

    def on_net_dropped(self, event: Event, src: Any) -> None:
        self.lost(event, "lost", f"dropped by the network: {event.get('reason')}")

    def on_program_queued(self, event: Event, src: Any) -> None:
        for journey in self.by_id(event):
            journey.add(event)
            self.outbox[(src, event.get("program_id"))].append(journey)

    def on_program_delivered(self, event: Event, src: Any) -> None:
        for journey in self.by_id(event):
            self._handed_over(journey, event, src)

    def _handed_over(self, journey: Journey, event: Event, src: Any) -> None:
        journey.add(event)
        waiting = self.outbox.get((src, event.get("program_id")))
        if waiting and journey in waiting:
            waiting.remove(journey)
        self.at_link[(src, event.get("program_id"), event.get("address"))].append(journey)

    def on_program_value_merged(self, event: Event, src: Any) -> None:
        for journey in self.by_id(event):
            journey.add(event)
            self.outbox[(src, event.get("program_id"))].append(journey)
        replaced = event.get("replaced")
        if replaced is None:
            return
        # the value it replaced: the one waiting in the outbox for the address (the latest)
        waiting = self.outbox.get((src, event.get("program_id")), [])
        address, newer = event.get("address"), event.get("msg_id")
        old = next(
            (
                j
                for j in reversed(waiting)
                if j.address == address and j.msg_id == str(replaced) and not _last_is(j, event)
            ),
            None,
        )
        if old is not None:
            waiting.remove(old)
        elif self.matches(event):  # not followed so far (an info log): found by its name
            candidates = self.by_id(_Stand(event, msg_id=replaced), STAGE["program.delivered"])
            old = next((j for j in candidates if not _last_is(j, event)), None)
        if old is not None and not old.ended:
            old.end(event, "merged", f"replaced by the newer value of {newer}")

    def on_program_values_dropped(self, event: Event, src: Any) -> None:
        reason = f"outbox dropped: {event.get('reason')}"
        waiting = self.outbox.pop((src, event.get("program_id")), [])
        dropped = event.get("dropped")
        if isinstance(dropped, list):  # [address, msg_id] of each value: found at info too
            named = [
                _Stand(event, address=pair[0], msg_id=pair[1])
                for pair in dropped
                if isinstance(pair, list) and len(pair) == 2 and pair[1] is not None
            ]
            self.lost(event, "dropped", reason, *named)
        for journey in waiting:
            if not journey.ended:
                journey.end(event, "dropped", reason)

    def on_supervisor_dead_letter(self, event: Event, src: Any) -> None:
        self._refused(event, src, f"dead letter: the {event.get('target')} actor gave up")

    def on_actor_crashed(self, event: Event, src: Any) -> None:
        if event.get("dropped_message") is not None:
            self._refused(event, src, f"its handler crashed: {event.get('error')}")

    def _refused(self, event: Event, src: Any, reason: str) -> None:
        """A message lost with an actor: front-end values (by their msg_id; a batch names
        its addresses), or a value or read request on its way to the page (the next one of
        its program and address at the actor that lost it)."""
        if event.get("msg_id") is not None:
            addresses = event.get("dropped_addresses")
            named = [_Stand(event, address=a) for a in addresses or () if isinstance(a, str)]
            stage = _ACTOR_STAGE.get(str(event.get("target") or event.get("actor")), _LAST_STAGE)
            self.lost(event, "dropped", reason, *named, stage=stage)
            return
        kind = event.get("message_type") or event.get("dropped_message")
        if kind not in _TO_PAGE or not self.matches(event):
            return
        stage = event.get("target") or event.get("actor")
        key = self._key(event, src)
        waiting = {"connection": self.at_executor, "program_executor": self.at_cell}.get(str(stage))
        journey = None if waiting is None else self.take(waiting[key])
        if journey is None:  # its earlier hops are debug lines, or not in this log
            journey = self.new(event, TO_FRONT_END, _KINDS.get(str(kind), "value"))
        journey.end(event, "dropped", reason)

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
        number = self._number(event, src, "seq")
        journey = None if number is None else self.numbered.get(number)
        if journey is not None and journey.address == event.get("address"):
            journey.resume()  # sent again (a new comm, or no ack in time)
            journey.add(event)
            return
        key = self._key(event, src)
        journey = self.take(self.queued[key], self.at_executor[key]) or self.new(
            event, TO_FRONT_END
        )
        journey.add(event)
        if number is not None:  # the page's events name it: matched by number
            self.numbered[number] = journey
        else:
            self.published[(src, event.get("comm_id"), event.get("address"))].append(journey)

    def _number(self, event: Event, src: Any, key: str = "number") -> tuple[Any, ...] | None:
        """A published value's number, with what makes it unique: the file, the kernel and the
        router's start. A simulation log calls a router's `seq` its `number`."""
        number = event.get("number", event.get(key))
        if number is None:
            return None
        return (src, event.get("kernel_id"), self.starts.get(src, 0), number)

    def on_commrouter_started(self, event: Event, src: Any) -> None:
        self.starts[src] = self.starts.get(src, 0) + 1  # a restarted kernel numbers from 1

    def _published(self, event: Event, src: Any) -> Journey | None:
        number = self._number(event, src)
        if number is not None:
            return self.numbered.get(number)
        return self.take(self.published[(src, event.get("comm_id"), event.get("address"))])

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
        journey = self._published(event, src)
        if journey is not None:
            journey.add(event)

    on_page_received = _arrived
    on_page_read_requested = _arrived

    def on_host_unheard(self, event: Event, src: Any) -> None:
        if not self.matches(event):
            return
        journey = self._published(event, src)
        if journey is not None and not journey.ended:
            journey.end(event, "lost", f"no window holds the comm: {event.get('why')}")


def _last_is(journey: Journey, event: Event) -> bool:
    return bool(journey.hops) and journey.hops[-1].event is event


_TO_PAGE = ("ProgramSend", "ProgramRead", "SendToFrontEnd")  # messages toward the page
_KINDS = {"ProgramRead": "read request"}


class _Stand(dict[str, Any]):
    """One of the values an event names, as an event of its own (the same file) for `by_id`."""

    def __init__(self, event: Event, **fields: Any) -> None:
        super().__init__(event)
        self.update(fields)
        self.source = getattr(event, "source", None)


def trace(events: Iterable[Event], address: str) -> list[Journey]:
    """Every value to or from `address` (exact, or a prefix ending in '*'), in the order each
    was first seen, with its hops (see the module doc)."""
    tracer = _Tracer(address)
    for event in events:
        tracer.feed(event)
    return tracer.journeys
