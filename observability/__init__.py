"""Structured logs: a structlog pipeline per router (JSON lines, a console timeline, a
recorder), and reading them back: queries, merging, following, traces of values, statistics.

    from commrouter.observability import EventLog, trace, summarize
    log = EventLog.read("kernel.jsonl")
    log.query("router.dropped", reason="no subscriber").list()
    trace(log, "/slider/a1")                 # each value's path, hop by hop
    events, files = stream_logs(["big.jsonl"])   # one pass, constant memory
    summarize(events).outages                    # stale or closed -> opened, what was lost

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
from commrouter.observability.outages import Episode
from commrouter.observability.query import EventLog, Query, matches_address, matches_name
from commrouter.observability.reading import (
    LogEvent,
    LogFile,
    Problem,
    event_time,
    first_time,
    follow,
    merge,
    read_logs,
    stream_logs,
)
from commrouter.observability.stats import Stats, summarize
from commrouter.observability.trace import Hop, Journey, trace

__all__ = [
    "ConsoleTimeline",
    "Episode",
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
    "first_time",
    "follow",
    "matches_address",
    "matches_name",
    "merge",
    "read_logs",
    "stream_logs",
    "summarize",
    "trace",
]
