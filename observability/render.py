"""Rendering events for people and tools: an aligned timeline, a table, JSON lines; traces and
statistics as text. Times are relative to the first event shown (`Clock0`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from commrouter.observability.outages import Episode
from commrouter.observability.reading import event_time
from commrouter.observability.stats import Stats, percentile
from commrouter.observability.trace import Journey

Event = Mapping[str, Any]

__all__ = [
    "Clock0",
    "Table",
    "absolute_time",
    "json_line",
    "render_stats",
    "render_trace",
    "timeline_line",
]

IDS = ("comm_id", "address", "program_id", "msg_id")
_SHOWN_APART = {"t", "ts", "level", "actor", "event", "seq", "step"}
_FIELD_WIDTH = 60


def short(value: Any, width: int = _FIELD_WIDTH) -> str:
    """A value as compact text (JSON unless a string), cut to `width` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= width else text[: width - 3] + "..."


class Clock0:
    """Times relative to the first event it is asked about (or to `origin`); with `absolute`,
    each event's own `ts` instead (its `t` where it has no `ts`)."""

    def __init__(self, origin: float | None = None, *, absolute: bool = False) -> None:
        self.origin = origin
        self.absolute = absolute

    def relative(self, event: Event) -> float | None:
        when = event_time(event)
        if when is None:
            return None
        if self.origin is None:
            self.origin = when
        return when - self.origin

    def text(self, event: Event) -> str:
        if self.absolute:
            return f"{absolute_time(event):<27}"
        relative = self.relative(event)
        return f"{'':>12}" if relative is None else f"+{relative:11.6f}s"

    def cell(self, event: Event) -> str:
        """The time column of a table."""
        if self.absolute:
            return absolute_time(event)
        relative = self.relative(event)
        return "" if relative is None else f"+{relative:.6f}"


def absolute_time(event: Event) -> str:
    """The event's `ts` as written, else `t=<clock seconds>`, else ''."""
    ts = event.get("ts")
    if isinstance(ts, str) and ts:
        return ts
    t = event.get("t")
    return "" if t is None else f"t={t}"


def _mark(event: Event) -> str:
    level = str(event.get("level") or "")
    return "" if level in ("info", "debug", "") else f"[{level.upper()}] "


def fields_text(event: Event, skip: Iterable[str] = ()) -> str:
    """`key=value` for every field but the ones shown apart, the skipped and the None ones."""
    hidden = _SHOWN_APART | set(skip)
    return " ".join(
        f"{key}={short(value)}"
        for key, value in event.items()
        if key not in hidden and value is not None
    )


def timeline_line(event: Event, clock: Clock0) -> str:
    """`+   1.234567s  actor             [WARNING] area.event   key=value ...`"""
    return (
        f"{clock.text(event)}  {event.get('actor') or '-':<17} "
        f"{_mark(event)}{event.get('event', ''):<32} {fields_text(event)}"
    ).rstrip()


def json_line(event: Event) -> str:
    """The event as one compact JSON line (what the log file held)."""
    return json.dumps(event, default=repr, separators=(",", ":"))


class Table:
    """Columns time, level, actor, event, the four ids and the other fields. With `rows` the
    widths fit the rows; without (following a live log) they are fixed."""

    COLUMNS = ("time", "level", "actor", "event", *IDS, "fields")
    FIXED = {"time": 13, "level": 7, "actor": 16, "event": 30, "comm_id": 12, "address": 16}

    def __init__(self, clock: Clock0, rows: list[Event] | None = None) -> None:
        self.clock = clock
        self.widths = {c: self.FIXED.get(c, 10) for c in self.COLUMNS}
        if rows is not None:
            cells = [self.cells(row) for row in rows]
            for column in self.COLUMNS:
                self.widths[column] = max([len(column), *(len(c[column]) for c in cells)])

    def cells(self, event: Event) -> dict[str, str]:
        cells = {
            "time": self.clock.cell(event),
            "level": str(event.get("level") or ""),
            "actor": str(event.get("actor") or "-"),
            "event": str(event.get("event", "")),
            "fields": fields_text(event, IDS),
        }
        for key in IDS:
            value = event.get(key)
            cells[key] = "" if value is None else short(value, 40)
        return cells

    def header(self) -> str:
        return self._join({c: c for c in self.COLUMNS})

    def line(self, event: Event) -> str:
        return self._join(self.cells(event))

    def _join(self, cells: Mapping[str, str]) -> str:
        parts = []
        for column in self.COLUMNS:
            text = cells[column]
            if column == "fields":
                parts.append(text)
            elif column == "time":
                parts.append(text.rjust(self.widths[column]))
            else:
                parts.append(text.ljust(self.widths[column]))
        return "  ".join(parts).rstrip()


# ---------------------------------------------------------------------------- traces


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.3f} ms"


def render_trace(journeys: list[Journey], address: str, clock: Clock0) -> list[str]:
    """Each journey: a header (direction, value, ids, outcome, total time), then its hops with
    the time since the first event shown and each hop's latency."""
    if not journeys:
        return [
            f"no value to or from {address} in the log "
            "(the path of a value that arrived needs a debug-level log)"
        ]
    outcomes: dict[str, int] = {}
    for journey in journeys:
        outcomes[journey.outcome] = outcomes.get(journey.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
    lines = [f"trace {address}: {len(journeys)} value(s): {summary}"]
    for number, journey in enumerate(journeys, 1):
        ids = [
            f"{key}={value}"
            for key, value in (
                ("msg", journey.msg_id),
                ("program", journey.program_id),
                ("comm", journey.comm_id),
            )
            if value is not None
        ]
        what = journey.kind if journey.kind != "value" else f"value={short(journey.value, 40)}"
        outcome = journey.outcome.upper()
        if journey.reason:
            last = journey.last.name if journey.last else "?"
            where = "" if journey.outcome == "delivered" else f" at {last}"
            outcome += f"{where}: {journey.reason}"
        total = journey.duration
        took = "" if total is None else f" ({_ms(total)})"
        lines.append("")
        lines.append(
            f"#{number} {journey.direction}  {journey.address}  {what}  {' '.join(ids)}".rstrip()
        )
        lines.append(f"   {outcome}{took}")
        for hop in journey.hops:
            latency = "" if hop.latency is None else f"+{_ms(hop.latency)}"
            skip = {"value", "address", "kernel_id", "msg_id", "program_id", "msg_type"}
            if hop.event.get("comm_id") == journey.comm_id:
                skip.add("comm_id")  # shown in the header; a different one is shown here
            lines.append(
                f"   {clock.text(hop.event)} {latency:>13}  {hop.actor:<17} "
                f"{_mark(hop.event)}{hop.name:<28} {fields_text(hop.event, skip)}".rstrip()
            )
    return lines


# ------------------------------------------------------------------------ statistics


def render_stats(stats: Stats, *, absolute: bool = False) -> list[str]:
    """The summary as aligned text; outages start at times from the first event, or (with
    `absolute`) at their `ts`."""
    span = "" if stats.span is None else f" over {stats.span:.3f} s"
    levels = ", ".join(f"{n} {level}" for level, n in sorted(stats.by_level.items()))
    lines = [f"{stats.events} event(s){span}: {levels}", "", "events"]
    width = max([len(name) for name in stats.by_event] + [5])
    for name, count in sorted(stats.by_event.items()):
        lines.append(f"  {name:<{width}}  {count:>7}  {stats.levels.get(name, '')}")
    lines += ["", "heartbeat"]
    median, p99 = percentile(stats.round_trips, 0.5), percentile(stats.round_trips, 0.99)
    rtt = (
        f"round trip median {_ms(median)}, p99 {_ms(p99)} ({len(stats.round_trips)} measured)"
        if median is not None
        else "no round trip measured"
    )
    lines.append(f"  pings {stats.pings}, pongs {stats.pongs}, timeouts {stats.timeouts}; {rtt}")
    lines += ["", "drops and merges by reason"]
    if not stats.losses:
        lines.append("  none")
    for (name, reason), count in sorted(stats.losses.items()):
        values = stats.lost_values[(name, reason)]
        counted = f"  ({values} values)" if values != count else ""
        lines.append(f"  {name:<30} {reason:<36} {count:>6}{counted}")
    for title, outcomes in (("installs", stats.installs), ("probes", stats.probes)):
        lines += ["", title]
        if not outcomes.started:
            lines.append("  none")
            continue
        parts = []
        for outcome, count in outcomes.outcomes.most_common():
            wait = percentile(outcomes.waits.get(outcome, []), 0.5)
            parts.append(f"{count} {outcome}" + ("" if wait is None else f" (median {_ms(wait)})"))
        if outcomes.pending:
            parts.append(f"{outcomes.pending} without an outcome in the log")
        lines.append(f"  {outcomes.started} started: " + ", ".join(parts))
    return lines + render_outages(stats.outages, stats.first, absolute)


def render_outages(episodes: list[Episode], origin: float | None, absolute: bool) -> list[str]:
    """Each outage: when it started, how, how it ended and how long it took, what was lost."""
    lines = ["", "outages (stale or closed -> opened)"]
    if not episodes:
        lines.append("  none")
    for number, episode in enumerate(episodes, 1):
        if absolute:
            start = episode.start_ts or "?"
        else:
            start = (
                "?"
                if episode.start is None or origin is None
                else f"+{episode.start - origin:.6f}s"
            )
        took = "" if episode.duration is None else f"{episode.duration:.3f} s"
        if episode.reopened:
            end = f"reopened on {episode.reopened_comm_id} after {took}"
            if absolute and episode.end_ts:
                end += f" at {episode.end_ts}"
        else:
            end = f"not reopened when the log ends ({took} until its last event)"
        lines.append(
            f"  #{number} {start}  {episode.started_by}: {episode.why}"
            f" (comm {episode.comm_id or '-'}); {end}"
        )
        if not episode.losses:
            lines.append("      lost: nothing")
        for (name, reason, address), count in sorted(episode.losses.items()):
            values = episode.lost_values[(name, reason, address)]
            lines.append(
                f"      lost: {name:<28} {address:<20} {reason:<32} {count:>5}"
                + (f"  ({values} values)" if values != count else "")
            )
    return lines
