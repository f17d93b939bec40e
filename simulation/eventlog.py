"""A small query API over a recorded event log (a list of event dicts, or a JSON-lines file).

The invariant checks and the scenario expectations are written against it, and so can anyone
who reads a run's log:

    log = EventLog.read("runs/page-reload-seed0.jsonl")
    log.query("connection.opened").count()
    log.query("heartbeat.", comm_id="comm-1").between(1.0, 2.0).first()
    log.query("page.received", address="/slider").values("value")
    log.query("cell.sync").where(lambda e: e["sync_id"] > 1).after(opened).list()

A name matches exactly, or as a prefix when it ends with "." (the same rule as
`observability.Recorder.find`). A field value given to `query`/`where` matches by equality, or
is called as a predicate when it is callable. Every event of a simulation log carries `seq`,
its position in the log, which `after`/`before` compare.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]

__all__ = ["Event", "EventLog", "Query", "matches_name"]


def matches_name(pattern: str | None, name: str) -> bool:
    """True if `name` is `pattern`, or starts with it when `pattern` ends with '.'."""
    if pattern is None:
        return True
    if pattern.endswith("."):
        return name.startswith(pattern)
    return name == pattern


def _field_test(key: str, expected: Any) -> Predicate:
    if callable(expected):
        return lambda e: key in e and bool(expected(e[key]))
    return lambda e: key in e and e[key] == expected


class Query:
    """An immutable, chainable filter over an `EventLog`; evaluated when iterated."""

    __slots__ = ("_log", "_tests")

    def __init__(self, log: EventLog, tests: tuple[Predicate, ...] = ()) -> None:
        self._log = log
        self._tests = tests

    def _with(self, *tests: Predicate) -> Query:
        return Query(self._log, self._tests + tests)

    # ------------------------------------------------------------------------- filters

    def named(self, name: str) -> Query:
        """Events named `name` (a prefix when it ends with '.')."""
        return self._with(lambda e: matches_name(name, str(e.get("event", ""))))

    def where(self, predicate: Predicate | None = None, /, **fields: Any) -> Query:
        """Events for which `predicate(event)` holds and every field matches."""
        tests = [_field_test(key, value) for key, value in fields.items()]
        if predicate is not None:
            tests.append(predicate)
        return self._with(*tests)

    def between(self, start: float, end: float) -> Query:
        """Events with `start <= t <= end` (virtual seconds)."""
        return self._with(lambda e: start - 1e-9 <= float(e.get("t", 0.0)) <= end + 1e-9)

    def after(self, event: Event | int) -> Query:
        """Events strictly later in the log than `event` (or than position `event`)."""
        seq = event if isinstance(event, int) else int(event["seq"])
        return self._with(lambda e: int(e["seq"]) > seq)

    def before(self, event: Event | int) -> Query:
        """Events strictly earlier in the log than `event` (or than position `event`)."""
        seq = event if isinstance(event, int) else int(event["seq"])
        return self._with(lambda e: int(e["seq"]) < seq)

    # ------------------------------------------------------------------------- results

    def __iter__(self) -> Iterator[Event]:
        tests = self._tests
        for event in self._log:
            if all(test(event) for test in tests):
                yield event

    def list(self) -> list[Event]:
        return list(self)

    def first(self) -> Event | None:
        return next(iter(self), None)

    def last(self) -> Event | None:
        found = None
        for found in self:  # noqa: B007 - keep the last one
            pass
        return found

    def count(self) -> int:
        return sum(1 for _ in self)

    def exists(self) -> bool:
        return self.first() is not None

    def values(self, key: str) -> list[Any]:
        """The field `key` of every matching event (None where missing)."""
        return [event.get(key) for event in self]

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"Query({self.count()} of {len(self._log)} events)"


class EventLog(Sequence[Event]):
    """An ordered event log. Events are the dicts the router's sinks receive, plus `seq`."""

    def __init__(self, events: Iterable[Event]) -> None:
        self._events: list[Event] = list(events)

    @classmethod
    def read(cls, path: str | Path) -> EventLog:
        """Load a JSON-lines log (as `observability.JsonLinesFile` or the simulation writes)."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        for index, event in enumerate(events):
            event.setdefault("seq", index)
        return cls(events)

    def query(self, name: str | None = None, /, **fields: Any) -> Query:
        """Start a query: events named `name` (prefix if it ends with '.') whose fields match."""
        query = Query(self)
        if name is not None:
            query = query.named(name)
        return query.where(**fields) if fields else query

    def around(self, seq: int, before: int = 12, after: int = 6) -> list[Event]:
        """The events around position `seq` (for showing the timeline of a failure)."""
        start = max(0, seq - before)
        return list(self._events[start : seq + after + 1])

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)
