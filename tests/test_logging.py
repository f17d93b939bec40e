"""Structured logs: JSON lines to a file, a readable console, ids on every event."""

from __future__ import annotations

import dataclasses
import io
import json

from commrouter import CommRouter
from commrouter.observability import ConsoleTimeline, Recorder, build_logger
from commrouter.observability.logging import close_sinks
from commrouter.transports.memory import InMemoryFrontEnd
from tests.conftest import KERNEL_ID, quiet_settings

IDS = {"comm_id", "address", "program_id", "msg_id", "actor"}


def test_every_event_is_area_event_with_ids_and_json_lines_on_file(vtime, tmp_path):
    path = tmp_path / "logs" / "router.jsonl"
    settings = quiet_settings(log={"file": str(path), "level": "debug"})
    fe = InMemoryFrontEnd(KERNEL_ID)
    router = CommRouter(KERNEL_ID, fe, settings=settings, time=vtime)
    fe.connect(router)
    with router:
        router.ensure_front_end()
        vtime.advance(1.5)
        router.send("/a", 1)
        vtime.settle()
    lines = path.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) > 5
    for event in events:
        area, _, name = event["event"].partition(".")
        assert area and name, event["event"]
        assert event.keys() >= IDS
        assert {"t", "ts", "level"} <= event.keys()
    opened = next(e for e in events if e["event"] == "connection.opened")
    assert opened["comm_id"] == "comm-1" and opened["actor"] == "connection"
    sent = next(e for e in events if e["event"] == "connection.sent")
    assert sent["address"] == "/a" and sent["level"] == "debug"
    probe = next(e for e in events if e["event"] == "connection.probe_started")
    assert probe["t"] == 1.5  # the router's clock: virtual time


def test_level_filters_events(vtime):
    recorder = Recorder()
    settings = quiet_settings(log={"level": "warning"})
    logger = build_logger(settings.log, vtime.clock, [recorder])
    logger.info("area.quiet")
    logger.warning("area.loud", address="/x")
    assert recorder.names() == ["area.loud"]
    assert recorder.find("area.", address="/x")


def test_console_timeline_is_readable_with_times_relative_to_the_first_line():
    stream = io.StringIO()
    console = ConsoleTimeline(stream)
    console({"t": 10.0, "actor": "connection", "event": "connection.opened", "level": "info"})
    console(
        {
            "t": 11.5,
            "actor": "heartbeat",
            "event": "heartbeat.timeout",
            "level": "warning",
            "comm_id": "c-1",
            "address": None,
        }
    )
    first, second = stream.getvalue().splitlines()
    assert first.startswith("+    0.000s  connection")
    assert second.startswith("+    1.500s  heartbeat")
    assert "[WARNING] heartbeat.timeout" in second and "comm_id=c-1" in second
    assert "address" not in second


def test_file_sink_is_closed_with_the_logger(tmp_path, vtime):
    settings = quiet_settings(log={"file": str(tmp_path / "x.jsonl")})
    logger = build_logger(dataclasses.replace(settings.log), vtime.clock)
    logger.info("area.one")
    close_sinks(logger)
    logger.info("area.after_close")  # dropped quietly, never an exception
    assert [json.loads(x)["event"] for x in (tmp_path / "x.jsonl").read_text().splitlines()] == [
        "area.one"
    ]
