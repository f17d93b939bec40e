"""What happened, in numbers: counts per event, heartbeat round trips, drops and merges by
reason, installs and probes with their outcomes, outage episodes (`commrouter logs --stats`).

`summarize` reads its events once, as they come (a stream from `reading.stream_logs` is never
held): it keeps counters, one round trip per pong and one wait per install or probe, and the
outage episodes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.observability.outages import Episode, Outages, is_loss, loss_reason, loss_values
from commrouter.observability.reading import event_time

Event = Mapping[str, Any]

__all__ = ["Outcomes", "Stats", "percentile", "summarize"]

INSTALL_OUTCOMES = {"connection.opened": "opened", "connection.install_failed": "failed"}
PROBE_OUTCOMES = {"connection.probe_answered": "answered", "connection.stale": "stale"}


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Outcomes:
    """Things that start and end (installs, probes): how each ended and how long it took."""

    started: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "opened", "failed: timeout"...
    waits: dict[str, list[float]] = field(default_factory=dict)  # outcome -> seconds
    pending: int = 0  # started, no outcome in the log

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "outcomes": dict(self.outcomes),
            "median_wait": {k: percentile(v, 0.5) for k, v in self.waits.items()},
            "pending": self.pending,
        }


@dataclass
class Stats:
    """The summary of a log (or of the events a filter kept)."""

    events: int = 0
    first: float | None = None
    last: float | None = None
    by_event: Counter[str] = field(default_factory=Counter)
    levels: dict[str, str] = field(default_factory=dict)  # event -> its highest level seen
    by_level: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    pongs: int = 0
    timeouts: int = 0
    round_trips: list[float] = field(default_factory=list)  # seconds, from pong_received.rtt
    losses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (event, reason) -> n
    lost_values: Counter[tuple[str, str]] = field(default_factory=Counter)  # counted values
    installs: Outcomes = field(default_factory=Outcomes)
    probes: Outcomes = field(default_factory=Outcomes)
    outages: list[Episode] = field(default_factory=list)  # stale or closed -> opened

    @property
    def span(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        return self.last - self.first

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "span": self.span,
            "by_event": dict(sorted(self.by_event.items())),
            "by_level": dict(self.by_level),
            "heartbeat": {
                "pings": self.pings,
                "pongs": self.pongs,
                "timeouts": self.timeouts,
                "rtt_median": percentile(self.round_trips, 0.5),
                "rtt_p99": percentile(self.round_trips, 0.99),
            },
            "drops_and_merges": [
                {"event": name, "reason": reason, "events": n, "values": self.lost_values[key]}
                for key, n in sorted(self.losses.items())
                for name, reason in [key]
            ],
            "installs": self.installs.as_dict(),
            "probes": self.probes.as_dict(),
            "outages": [episode.as_dict(self.first) for episode in self.outages],
        }


_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}


class _Pairs:
    """Pairs a start event with the next outcome event of the same router (file, kernel)."""

    def __init__(self, into: Outcomes, starts: str, ends: Mapping[str, str]) -> None:
        self.into, self.starts, self.ends = into, starts, ends
        self.open: dict[tuple[Any, Any], float | None] = {}

    def feed(self, name: str, event: Event) -> None:
        if name != self.starts and name not in self.ends:
            return
        key = (getattr(event, "source", None), event.get("kernel_id"))
        if name == self.starts:
            self.into.started += 1
            if key in self.open:  # a new start before an outcome: the old one was superseded
                self.into.outcomes["superseded"] += 1
            self.open[key] = event_time(event)
        elif key in self.open:
            started = self.open.pop(key)
            outcome = self.ends[name]
            if outcome == "failed" or outcome == "stale":
                outcome = f"{outcome}: {event.get('reason')}"
            self.into.outcomes[outcome] += 1
            when = event_time(event)
            if started is not None and when is not None:
                self.into.waits.setdefault(outcome, []).append(when - started)

    def close(self) -> None:
        self.into.pending = len(self.open)


_HEARTBEAT, _LOSS, _CONNECTION = 1, 2, 4


def _kind(name: str) -> int:
    """What `summarize` does with an event of this name (bits), worked out once per name."""
    return (
        (_HEARTBEAT if name.startswith("heartbeat.") else 0)
        | (_LOSS if is_loss(name) else 0)
        | (_CONNECTION if name.startswith("connection.") else 0)
    )


def summarize(events: Iterable[Event]) -> Stats:
    """Count what `events` show (see `Stats`), in one pass."""
    stats = Stats()
    installs = _Pairs(stats.installs, "connection.install_started", INSTALL_OUTCOMES)
    probes = _Pairs(stats.probes, "connection.probe_started", PROBE_OUTCOMES)
    outages = Outages()
    named: Counter[tuple[str, str]] = Counter()  # (event, level) -> n
    kinds: dict[str, int] = {}
    first = last = None
    for event in events:
        name = event.get("event", "")
        if type(name) is not str:
            name = str(name)
        level = event.get("level") or "info"
        named[(name, level if type(level) is str else str(level))] += 1
        when = event_time(event)
        if when is not None:
            if first is None or when < first:
                first = when
            if last is None or when > last:
                last = when
        kind = kinds.get(name)
        if kind is None:
            kind = kinds[name] = _kind(name)
        if kind:
            if kind & _HEARTBEAT:
                _heartbeat(stats, name, event)
            if kind & _LOSS:
                reason = loss_reason(event)
                stats.losses[(name, reason)] += 1
                stats.lost_values[(name, reason)] += loss_values(event)
            if kind & _CONNECTION:
                installs.feed(name, event)
                probes.feed(name, event)
        outages.feed(name, event, when)
    installs.close()
    probes.close()
    for (name, level), count in named.items():
        stats.events += count
        stats.by_event[name] += count
        stats.by_level[level] += count
        if _RANK.get(level, 1) >= _RANK.get(stats.levels.get(name, "debug"), 1):
            stats.levels[name] = level
    stats.first, stats.last = first, last
    stats.outages = outages.episodes
    return stats


def _heartbeat(stats: Stats, name: str, event: Event) -> None:
    if name == "heartbeat.ping_sent":
        stats.pings += 1
    elif name == "heartbeat.pong_received":
        stats.pongs += 1
        rtt = event.get("rtt")
        if isinstance(rtt, int | float):
            stats.round_trips.append(float(rtt))
    elif name == "heartbeat.timeout":
        stats.timeouts += 1
