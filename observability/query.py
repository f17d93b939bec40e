"""A small query API over an event log: what `commrouter logs`, the simulation's invariants and
the tests use.

    log = EventLog.read("kernel.jsonl")                    # or several files, merged by time
    log.query("connection.opened").count()                 # by name
    log.query("heartbeat.", comm_id="c-1").list()          # a prefix ("heartbeat.", "heartbeat*")
    log.query("cell.received", value=lambda v: v > 1)      # a field predicate
    log.query().at_least("warning").list()                 # a minimum level
    log.query().address("/slider/*").values("value")       # an address, or a prefix ending in "*"
    log.query("heartbeat.").between(3.9, 4.1).first()     # `t`: the router's clock
    log.query().during(start, end)                         # `event_time`: ts, else t
    reload = log.query("page.reloaded").first()
    log.query("page.received").after(reload).values("value")   # log order; also before()

A name matches exactly, or as a prefix when it ends with "." or "*" (the rule of
`observability.Recorder.find`, which knows the "." form). A field value given to
`query`/`where` matches by equality, or is called as a predicate when it is callable (the event
must have the field). Queries are immutable and chainable; they are evaluated when iterated.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from commrouter.observability.reading import LEVEL_ORDER, Problem, event_time, read_logs

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]

__all__ = [
    "Event",
    "EventLog",
    "Query",
    "level_rank",
    "matches_address",
    "matches_name",
]


def matches_name(pattern: str | None, name: str) -> bool:
    """True if `name` is `pattern`, or starts with it when `pattern` ends with '.' or '*'."""
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    if pattern.endswith("."):
        return name.startswith(pattern)
    return name == pattern


def matches_address(pattern: str, address: Any) -> bool:
    """True if `address` is `pattern`, or starts with it when `pattern` ends with '*'."""
    if not isinstance(address, str):
        return False
    if pattern.endswith("*"):
        return address.startswith(pattern[:-1])
    return address == pattern


def level_rank(level: Any) -> int:
    """The rank of a level name (an unknown level ranks as info)."""
    return LEVEL_ORDER.get(str(level).lower(), LEVEL_ORDER["info"])


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

    def named(self, *names: str) -> Query:
        """Events named any of `names` (a prefix when it ends with '.' or '*')."""
        exact = frozenset(n for n in names if not n.endswith((".", "*")))
        prefixes = tuple(n[:-1] if n.endswith("*") else n for n in names if n not in exact)

        def test(e: Event) -> bool:
            name = e.get("event", "")
            if type(name) is not str:
                name = str(name)
            if name in exact:
                return True
            return bool(prefixes) and name.startswith(prefixes)

        return self._with(test)

    def where(self, predicate: Predicate | None = None, /, **fields: Any) -> Query:
        """Events for which `predicate(event)` holds and every field matches."""
        tests = [_field_test(key, value) for key, value in fields.items()]
        if predicate is not None:
            tests.append(predicate)
        return self._with(*tests)

    def at_least(self, level: str) -> Query:
        """Events of `level` or above (debug < info < warning < error < critical)."""
        floor = level_rank(level)
        return self._with(lambda e: level_rank(e.get("level")) >= floor)

    def address(self, *patterns: str) -> Query:
        """Events whose `address` matches any pattern (exact, or a prefix ending in '*')."""
        return self._with(lambda e: any(matches_address(p, e.get("address")) for p in patterns))

    def between(self, start: float, end: float) -> Query:
        """Events with `start <= t <= end` (the router's clock; virtual seconds in a
        simulation)."""
        return self._with(lambda e: start - 1e-9 <= float(e.get("t") or 0.0) <= end + 1e-9)

    def during(self, start: float | None = None, end: float | None = None) -> Query:
        """Events whose `event_time` (ts as epoch seconds, else t) is within [start, end];
        None leaves that side open. Events without a time are left out."""

        def test(e: Event) -> bool:
            when = event_time(e)
            if when is None:
                return False
            return (start is None or when >= start - 1e-9) and (end is None or when <= end + 1e-9)

        return self._with(test)

    def after(self, event: Event | int) -> Query:
        """Events strictly later in the log than `event` (or than position `event`)."""
        position = self._log.position(event)
        return self._with(lambda e: self._log.position(e) > position)

    def before(self, event: Event | int) -> Query:
        """Events strictly earlier in the log than `event` (or than position `event`)."""
        position = self._log.position(event)
        return self._with(lambda e: self._log.position(e) < position)

    # ------------------------------------------------------------------------- results

    @property
    def empty(self) -> bool:
        """True if it has no filter (every event passes)."""
        return not self._tests

    def accepts(self, event: Event) -> bool:
        """True if `event` passes every filter of this query (for events arriving one by one,
        as when following a live log; `after`/`before` need the event to be in the log)."""
        tests = self._tests
        if not tests:
            return True
        if len(tests) == 1:
            return bool(tests[0](event))
        return all(test(event) for test in tests)

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
    """An ordered event log: the dicts the router's sinks receive (a simulation's also carry
    `seq`, their position). `problems` lists the lines of the files it was read from that were
    not events."""

    def __init__(self, events: Iterable[Event], problems: Iterable[Problem] = ()) -> None:
        self._events: list[Event] = list(events)
        self.problems: list[Problem] = list(problems)
        self._positions: dict[int, int] | None = None

    @classmethod
    def read(cls, *paths: str | os.PathLike[str]) -> EventLog:
        """Load JSON-lines logs (as `JsonLinesFile` or the simulation writes them), several
        merged by time (`reading.merge`). Malformed lines are skipped into `problems`; a
        missing file raises OSError."""
        events, problems = read_logs(paths)
        return cls(events, problems)

    def query(self, name: str | None = None, /, **fields: Any) -> Query:
        """Start a query: events named `name` (a prefix if it ends with '.' or '*') whose
        fields match."""
        query = Query(self)
        if name is not None:
            query = query.named(name)
        return query.where(**fields) if fields else query

    def position(self, event: Event | int) -> int:
        """The index of `event` in this log (an int is taken as an index already). An event
        from another copy of the log is placed by its `seq`."""
        if isinstance(event, int):
            return event
        if self._positions is None:
            self._positions = {id(e): index for index, e in enumerate(self._events)}
        found = self._positions.get(id(event))
        if found is not None:
            return found
        return int(event["seq"])

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
