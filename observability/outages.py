"""Outage episodes: from the moment a router lost its page's link (`connection.stale`, or
`connection.closed`) to the next `connection.opened` of the same router, how long it lasted
and what was lost meanwhile (`commrouter logs --stats`).

A router is one file and kernel (`kernel_id`, for a simulation log that restarts kernels).
What was lost is every loss event of that router during the episode (`is_loss`: every
`*dropped`, `*_merged`, `host.unheard`, `supervisor.dead_letter`), by event, reason and
address, with the number of values where an event counts several (`count`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Event = Mapping[str, Any]

__all__ = ["Episode", "Outages", "is_loss", "loss_reason", "loss_values"]

STARTS = {"connection.stale": "stale", "connection.closed": "closed"}
REOPENED = "connection.opened"


def is_loss(name: str) -> bool:
    """True for an event that records values (or a message) lost, merged or refused."""
    return (
        name.endswith("dropped")
        or name.endswith("_merged")
        or name in ("host.unheard", "supervisor.dead_letter")
    )


def loss_reason(event: Event) -> str:
    """Why: its `reason`, else `why`, else `target` (a dead letter), else '-'."""
    return str(event.get("reason") or event.get("why") or event.get("target") or "-")


def loss_values(event: Event) -> int:
    """How many values a loss event counts: its `count`, else one."""
    count = event.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 1


@dataclass
class Episode:
    """One outage of one router. `end` is None when the log ends before the link reopened
    (`duration` then runs to the router's last event in the log)."""

    started_by: str  # "stale" or "closed"
    why: str  # the stale reason, or who closed it
    start: float | None  # event_time of the start
    start_ts: str | None
    comm_id: str | None  # the link that was lost
    end: float | None = None
    end_ts: str | None = None
    reopened_comm_id: str | None = None
    last_seen: float | None = None  # the router's last event time (for an episode not over)
    losses: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # -> events
    lost_values: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # -> values

    @property
    def reopened(self) -> bool:
        return self.end is not None

    @property
    def duration(self) -> float | None:
        until = self.end if self.end is not None else self.last_seen
        if self.start is None or until is None:
            return None
        return until - self.start

    def as_dict(self, origin: float | None = None) -> dict[str, Any]:
        def relative(when: float | None) -> float | None:
            return None if when is None or origin is None else when - origin

        return {
            "started_by": self.started_by,
            "why": self.why,
            "start": relative(self.start),
            "start_ts": self.start_ts,
            "comm_id": self.comm_id,
            "reopened": self.reopened,
            "end": relative(self.end),
            "end_ts": self.end_ts,
            "reopened_comm_id": self.reopened_comm_id,
            "duration": self.duration,
            "lost": [
                {
                    "event": name,
                    "reason": reason,
                    "address": address,
                    "events": n,
                    "values": self.lost_values[key],
                }
                for key, n in sorted(self.losses.items())
                for name, reason, address in [key]
            ],
        }


class Outages:
    """Fed every event in log order; `episodes` in the order they started."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []
        self.open: dict[tuple[Any, Any], Episode] = {}

    def feed(self, name: str, event: Event, when: float | None) -> None:
        if not (name in STARTS or name == REOPENED or self.open):
            return  # nothing under way and nothing starts: the common case, kept cheap
        key = (getattr(event, "source", None), event.get("kernel_id"))
        episode = self.open.get(key)
        if episode is not None and when is not None:
            episode.last_seen = when
        if name in STARTS:
            if episode is None:  # a close after a stale (or the reverse) is the same outage
                why = event.get("reason") if name == "connection.stale" else event.get("by")
                episode = Episode(
                    STARTS[name], str(why or "-"), when, _ts(event), _str(event.get("comm_id"))
                )
                self.episodes.append(episode)
                self.open[key] = episode
        elif name == REOPENED:
            if episode is not None:
                del self.open[key]
                episode.end, episode.end_ts = when, _ts(event)
                episode.reopened_comm_id = _str(event.get("comm_id"))
        elif episode is not None and is_loss(name):
            what = (name, loss_reason(event), str(event.get("address") or "-"))
            episode.losses[what] += 1
            episode.lost_values[what] += loss_values(event)


def _ts(event: Event) -> str | None:
    ts = event.get("ts")
    return ts if isinstance(ts, str) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
