"""Structured logs: a structlog pipeline per router; JSON lines, a console timeline, a recorder."""

from __future__ import annotations

from commrouter.observability.logging import (
    ConsoleTimeline,
    JsonLinesFile,
    Recorder,
    Sink,
    build_logger,
)

__all__ = ["ConsoleTimeline", "JsonLinesFile", "Recorder", "Sink", "build_logger"]
