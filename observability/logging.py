"""Logging set-up: every router gets its own structlog pipeline (no global configuration).

Every event is a dict with `event` (an `area.event` name), `level`, `t` (the router's clock,
virtual in tests and simulations), `ts` (wall-clock, ISO 8601 UTC), `actor`, and the ids that
let a value be followed through the system: `comm_id`, `address`, `program_id`, `msg_id`
(None when they do not apply). A `value` is kept only when the log level is debug: a loss
logged at info names its address and message, not what the value was. Sinks receive that
dict: a JSON-lines file, a readable console timeline, an in-memory `Recorder` for tests and
the simulation's invariants.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from commrouter.config import LogSettings
from commrouter.timing import Clock

Event = dict[str, Any]
Sink = Callable[[Event], None]

IDS = ("comm_id", "address", "program_id", "msg_id")
_FIRST = ("t", "ts", "level", "actor", "event")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Recorder:
    """Keeps every event in memory (thread-safe), for tests and inspection."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def find(self, name: str | None = None, **fields: Any) -> list[Event]:
        """Events named `name` (or with that prefix, if it ends with '.') whose fields match."""
        found = []
        for event in self.events:
            event_name = event.get("event", "")
            if name is not None and not (
                event_name == name or (name.endswith(".") and event_name.startswith(name))
            ):
                continue
            if all(event.get(k) == v for k, v in fields.items()):
                found.append(event)
        return found

    def names(self) -> list[str]:
        return [e.get("event", "") for e in self.events]


def _loggable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__} too deep to log>"


class JsonLinesFile:
    """Appends one JSON object per event to a file, flushed per line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: at debug level the log holds the values a notebook sends
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        try:
            line = json.dumps(event, default=repr, separators=(",", ":")) + "\n"
        except (ValueError, RecursionError):  # a value too deep to render: never fail the caller
            line = json.dumps({k: _loggable(v) for k, v in event.items()}) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class ConsoleTimeline:
    """Readable aligned lines: `+12.345s  actor  area.event  key=value ...`, with times relative
    to the first event it printed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._origin: float | None = None
        self._lock = threading.Lock()

    def render(self, event: Mapping[str, Any]) -> str:
        fields = " ".join(
            f"{k}={_short(v)}" for k, v in event.items() if k not in _FIRST and v is not None
        )
        level = event.get("level", "")
        mark = "" if level in ("info", "debug") else f"[{level.upper()}] "
        t = event.get("t", 0.0)
        if self._origin is None:
            self._origin = t
        return (
            f"+{t - self._origin:9.3f}s  {event.get('actor') or '-':<17} "
            f"{mark}{event.get('event', ''):<32} {fields}".rstrip()
        )

    def __call__(self, event: Event) -> None:
        with self._lock:
            line = self.render(event)
            print(line, file=self.stream or sys.stderr, flush=True)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


class _FanOut:
    """The structlog 'logger' at the end of the pipeline: hands the event to every sink."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = tuple(sinks)

    def _emit(self, **event: Any) -> None:
        for sink in self.sinks:
            sink(event)

    debug = info = warning = error = critical = msg = _emit


def _values_only_at_debug(_: Any, __: str, event: Event) -> Event:
    """Above debug, no line carries a value (`value`): a drop names the address and message,
    the value itself is logged only by a debug-level log."""
    event.pop("value", None)
    return event


def build_logger(
    settings: LogSettings, clock: Clock, sinks: Iterable[Sink] = (), **context: Any
) -> Any:
    """A bound logger whose events go to `sinks` plus those the settings ask for.

    Returns the logger and owns no global state; close file sinks with `close_sinks`.
    """
    all_sinks = list(sinks)
    if settings.file:
        all_sinks.append(JsonLinesFile(settings.file))
    if settings.console:
        all_sinks.append(ConsoleTimeline())

    def add_clock(_: Any, __: str, event: Event) -> Event:
        event["t"] = round(clock.now(), 6)
        for key in IDS:
            event.setdefault(key, None)
        return event

    processors: list[Any] = [
        structlog.processors.add_log_level,
        add_clock,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    if _LEVELS[settings.level] > logging.DEBUG:
        processors.append(_values_only_at_debug)
    logger = structlog.wrap_logger(
        _FanOut(all_sinks),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[settings.level]),
        cache_logger_on_first_use=False,
    )
    return logger.bind(**context) if context else logger


def close_sinks(logger: Any) -> None:
    """Close the file sinks of a logger made by `build_logger`."""
    fan_out = getattr(logger, "_logger", None)
    for sink in getattr(fan_out, "sinks", ()):
        close = getattr(sink, "close", None)
        if close is not None:
            close()
