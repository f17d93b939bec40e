"""A value's path through the system as `trace` finds it in a log: `Journey` (direction,
value, ids, outcome) and its `Hop`s (one event each, with the latency since the hop before)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.observability.reading import event_time

Event = Mapping[str, Any]

__all__ = ["DELIVERED", "TO_FRONT_END", "TO_PROGRAM", "Hop", "Journey"]

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
    stage: int = field(default=-1, repr=False, compare=False)  # the furthest STAGE reached

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

    def resume(self) -> None:
        """It goes on after all: a value lost on a comm is sent again (its number)."""
        self.outcome, self.reason, self.ended = "in flight", None, False

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
