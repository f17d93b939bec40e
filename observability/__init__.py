"""Structured logs: a structlog pipeline per router (JSON lines, a console timeline, a
recorder), and reading them back: queries, merging, following, traces of values, statistics.

    from commrouter.observability import EventLog, trace, summarize
    log = EventLog.read("kernel.jsonl")
    log.query("router.dropped", reason="no subscriber").list()
    trace(log, "/slider/a1")                 # each value's path, hop by hop

`commrouter logs` is the command line over the same API; docs/logging.md has the event
catalogue.
"""

from __future__ import annotations

from commrouter.observability.logging import (
    ConsoleTimeline,
    JsonLinesFile,
    Recorder,
    Sink,
    build_logger,
)
from commrouter.observability.query import EventLog, Query, matches_address, matches_name
from commrouter.observability.reading import (
    LogEvent,
    LogFile,
    Problem,
    event_time,
    follow,
    merge,
    read_logs,
)
from commrouter.observability.stats import Stats, summarize
from commrouter.observability.trace import Hop, Journey, trace

__all__ = [
    "ConsoleTimeline",
    "EventLog",
    "Hop",
    "Journey",
    "JsonLinesFile",
    "LogEvent",
    "LogFile",
    "Problem",
    "Query",
    "Recorder",
    "Sink",
    "Stats",
    "build_logger",
    "event_time",
    "follow",
    "matches_address",
    "matches_name",
    "merge",
    "read_logs",
    "summarize",
    "trace",
]
