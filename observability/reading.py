"""Reading JSON-lines logs: one or several files, malformed lines counted, merged by time, followed.

A log line is one JSON object with at least an `event` name (what `JsonLinesFile` and the
simulation write). Lines that are not (not JSON, not an object, no event name, not UTF-8, a
last line cut short) are never fatal: they are skipped and reported as `Problem`s with their
file and line number.

**Time of an event** (`event_time`): its `ts` (wall clock, ISO 8601) as seconds since the epoch;
an event without a readable `ts` uses its `t` (the router's clock: monotonic seconds in a
kernel, virtual seconds in a simulation); an event with neither has no time.

**Merging several files** (`merge`): a k-way merge by that time. Within one file the file's own
order is always kept (an event without a time keeps its place after the one before it); between
files, the earlier time goes first and equal times go in the order the files were named. Mixing
a log that has `ts` with one that only has `t` merges wall-clock seconds with clock seconds:
possible, but meaningless; every log commrouter writes has both.

**Streaming** (`stream_logs`, `LogFile.stream`): the files are read line by line as the events
are consumed, each line decoded once, the merge holding only the next event of each file, so a
log of any length is read in constant memory. `read_logs` is the same pass into a list.
"""

from __future__ import annotations

import datetime
import heapq
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "LEVEL_ORDER",
    "LogEvent",
    "LogFile",
    "Problem",
    "event_time",
    "first_time",
    "follow",
    "merge",
    "read_logs",
    "stream_logs",
]

Event = Mapping[str, Any]

LEVEL_ORDER = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
"""Levels from lowest to highest; an event with an unknown level counts as `info`."""

_EXCERPT = 80
_scan = json.JSONDecoder().scan_once  # the C scanner behind json.loads
_JSON_SPACE = " \t\n\r"


def _decode(text: str) -> Any:
    """`json.loads(text)`, without its wrappers for a line that is one JSON value from its
    first character: anything else (leading space, extra data, an error) goes through
    `json.loads` itself, so the result or the error is always exactly json.loads's."""
    try:
        data, end = _scan(text, 0)
    except (StopIteration, json.JSONDecodeError):
        return json.loads(text)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        return json.loads(text)  # raises "Extra data"
    return data


class LogEvent(dict[str, Any]):
    """An event read from a file: exactly the line's JSON object, plus where it came from
    (`source`: the file's path as given, `line`: its 1-based line number). The location is not
    a key, so writing the event back out reproduces the line."""

    __slots__ = ("line", "source")

    def __init__(self, data: Mapping[str, Any], source: str | None = None, line: int = 0) -> None:
        super().__init__(data)
        self.source = source
        self.line = line


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that could not be read as an event."""

    path: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.text}"


def event_time(event: Event) -> float | None:
    """Seconds: `ts` (ISO 8601, as epoch seconds) if readable, else `t`, else None."""
    ts = event.get("ts")
    if isinstance(ts, str) and ts:
        try:
            when = datetime.datetime.fromisoformat(ts)
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            return when.timestamp()
    t = event.get("t")
    if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t):
        return float(t)
    return None


class LogFile:
    """One JSON-lines file read incrementally and in constant memory: `stream()` yields the
    events appended since the last read, line by line; `read()` is the same as a list. A last
    line without its newline is left for the next read (it may still be being written), unless
    `final`, when it is read as it is (reported if cut short)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.problems: list[Problem] = []
        self.lines = 0  # lines read so far
        self.events = 0  # events read so far
        self.restarts = 0  # times the file shrank (truncated or replaced) and was read again
        self._offset = 0

    def read(self, *, final: bool = False) -> list[LogEvent]:
        """The events appended since the last call (raises OSError if the file is missing)."""
        return list(self.stream(final=final))

    def stream(self, *, final: bool = False) -> Iterator[LogEvent]:
        """Yield the events appended since the last read, one line decoded at a time (the file
        is opened at once: a missing file raises OSError here, not on the first `next`)."""
        stream = self.path.open("rb")
        try:
            size = os.fstat(stream.fileno()).st_size
            if size < self._offset:  # truncated or replaced: start again from the top
                self._offset, self.restarts = 0, self.restarts + 1
            stream.seek(self._offset)
        except BaseException:
            stream.close()
            raise
        return self._lines(stream, final)

    def _lines(self, stream: BinaryIO, final: bool) -> Iterator[LogEvent]:
        parse, lines, offset = self._parse, self.lines, self._offset
        try:
            with stream:
                for raw in stream:
                    cut = raw[-1:] != b"\n"
                    if cut and not final:
                        return  # a line still being written: read it next time
                    offset += len(raw)
                    lines += 1
                    event = parse(raw, lines, cut)
                    if event is not None:
                        self.events += 1
                        yield event
        finally:
            self.lines, self._offset = lines, offset

    def _parse(self, raw: bytes, line: int, cut: bool) -> LogEvent | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return self._problem(line, f"not UTF-8 ({error.reason})", repr(raw[:_EXCERPT]))
        try:
            data = _decode(text)
        except json.JSONDecodeError as error:
            if not text.strip():
                return None
            why = "cut short (no newline at the end of the file)" if cut else "not JSON"
            return self._problem(line, f"{why}: {error.msg}", text)
        if type(data) is not dict:
            return self._problem(line, "not a JSON object", text)
        name = data.get("event")
        if type(name) is not str or not name:
            return self._problem(line, "no event name", text)
        return LogEvent(data, self.name, line)

    def _problem(self, line: int, reason: str, text: str) -> None:
        excerpt = text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."
        self.problems.append(Problem(self.name, line, reason, excerpt.strip()))
        return None


def merge(streams: Sequence[Iterable[Event]]) -> Iterator[Event]:
    """Merge several event streams by `event_time`, keeping each stream's own order (see the
    module doc for the rule)."""
    if len(streams) == 1:
        yield from streams[0]
        return

    def keyed(events: Iterable[Event]) -> Iterator[tuple[float, Event]]:
        last = -math.inf
        for event in events:
            when = event_time(event)
            if when is not None:
                last = when
            yield last, event

    for _, event in heapq.merge(*(keyed(s) for s in streams), key=lambda pair: pair[0]):
        yield event


def stream_logs(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[Iterator[LogEvent], list[LogFile]]:
    """The events of the files merged by time, read as the iterator is consumed: one pass, one
    line decoded at a time, in memory only the next event of each file. Every file is opened
    at once (OSError for one that cannot be read); each `LogFile`'s `problems` fill as it is
    read, so report them once the iterator is exhausted."""
    files = [LogFile(path) for path in paths]
    streams = [f.stream(final=True) for f in files]
    return merge(streams), files  # type: ignore[return-value]


def read_logs(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[LogEvent], list[Problem]]:
    """Read whole files and merge them by time. Raises OSError for a file that cannot be read."""
    events, files = stream_logs(paths)
    merged = list(events)
    return merged, [p for f in files for p in f.problems]


def first_time(paths: Iterable[str | os.PathLike[str]]) -> float | None:
    """The time of the first timed event of the files merged by time (the earliest of each
    file's first timed event), reading each file only up to that event."""
    found = []
    for path in paths:
        stream = LogFile(path).stream(final=True)
        when = next((t for t in map(event_time, stream) if t is not None), None)
        stream.close()
        if when is not None:
            found.append(when)
    return min(found, default=None)


def follow(
    paths: Iterable[str | os.PathLike[str]],
    on_event: Callable[[LogEvent], None],
    *,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
    duration: float | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[LogFile]:
    """Read the files from the start, then keep reading what is appended: every `poll` seconds,
    the new lines of all files, merged by time, go to `on_event`; malformed ones to `on_problem`.

    Stops when `stop()` is true (checked after every poll), after `duration` seconds, or on
    KeyboardInterrupt (raised to the caller after the files were read one last time). A file
    that does not exist yet is waited for; one that shrinks is read again from its start.
    Returns the files (their `problems`, `lines`, `events`).
    """
    files = [LogFile(path) for path in paths]
    reported = [0] * len(files)
    deadline = None if duration is None else time.monotonic() + duration

    def drain(final: bool) -> None:
        streams: list[Iterable[LogEvent]] = []
        for f in files:
            try:
                streams.append(f.stream(final=final))
            except FileNotFoundError:
                streams.append(())
        for event in merge(streams):
            on_event(event)  # type: ignore[arg-type]
        for index, f in enumerate(files):
            if on_problem is not None:
                for problem in f.problems[reported[index] :]:
                    on_problem(problem)
            reported[index] = len(f.problems)

    try:
        while True:
            drain(final=False)
            if stop():
                break
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sleep(min(poll, left))
            else:
                sleep(poll)
    finally:
        drain(final=True)
    return files
