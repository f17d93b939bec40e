"""Logs that explain losses: every drop, merge, refusal and dead letter of a real router names
its address and message (the value only in a debug log), `trace` ends the value's journey
there, and `summarize` lists the outage episodes with what they lost."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from commrouter import VirtualTime
from commrouter.__main__ import main
from commrouter.actors.router import Router
from commrouter.observability import JsonLinesFile, summarize, trace
from commrouter.observability.query import Event
from commrouter.router.messages import FrontEndValue
from tests.conftest import World, make_world, quiet_settings


def debug_world(vtime: VirtualTime, **sections: dict) -> World:
    settings = quiet_settings(**sections)
    log = dataclasses.replace(settings.log, level="debug")
    return make_world(vtime, dataclasses.replace(settings, log=log))


@pytest.fixture(params=["info", "debug"])
def any_world(request, vtime: VirtualTime) -> Iterator[World]:
    world = debug_world(vtime) if request.param == "debug" else make_world(vtime)
    try:
        yield world
    finally:
        world.router.stop()


def send(world: World, address: str, value: object, msg_id: str) -> None:
    """A page's comm_msg on the open comm, with its Jupyter message id."""
    data = {"address": address, "value": value}
    world.router.handle_comm_msg({"comm_id": world.front_end.comm_id, "data": data}, msg_id=msg_id)


def only(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e["event"] == name]


def test_a_batch_refused_on_an_old_comm_names_each_value(any_world: World):
    world = any_world
    debug = world.router.settings.log.level == "debug"
    world.open_link()
    world.start_program().subscribe("/a")
    world.settle()
    batch = [{"address": "/a", "value": 1}, {"address": "/b", "value": 2}]
    world.router.handle_comm_msg({"comm_id": "old", "data": {"batch": batch}}, msg_id="late")
    world.settle()
    dropped = world.log.find("connection.msg_dropped", msg_id="late")
    assert [(e["address"], e["comm_id"], e["level"]) for e in dropped] == [
        ("/a", "old", "warning"),
        ("/b", "old", "warning"),
    ]
    if debug:
        assert [e["value"] for e in dropped] == [1, 2]
    else:
        assert all("value" not in e for e in dropped)  # values only in a debug log
    journeys = trace(world.log.events, "/*")
    assert [(j.address, j.outcome, j.reason, j.hops[-1].name) for j in journeys] == [
        ("/a", "dropped", "comm_id is not an open comm", "connection.msg_dropped"),
        ("/b", "dropped", "comm_id is not an open comm", "connection.msg_dropped"),
    ]


def test_a_value_nobody_subscribed_to_carries_its_value_only_at_debug(any_world: World):
    world = any_world
    world.open_link()
    send(world, "/nobody", {"x": 1}, "m-1")
    world.settle()
    [dropped] = world.log.find("router.dropped")
    assert dropped["address"] == "/nobody" and dropped["msg_id"] == "m-1"
    assert ("value" in dropped) == (world.router.settings.log.level == "debug")


def test_merged_and_dropped_in_the_program_outbox(vtime: VirtualTime):
    world = debug_world(vtime, program={"outbox_limit": 1})
    try:
        world.open_link()
        program = world.start_program(capacity=0)  # its link is full: values wait
        program.subscribe("/m")
        world.settle()
        for value in (1, 2, 3):
            send(world, "/m", value, f"m-{value}")
        world.settle()
        merges = world.log.find("program.value_merged")
        assert [(e["value"], e["address"]) for e in merges] == [(1, "/m"), (2, "/m")]
        assert [(e["replaced"], e["msg_id"]) for e in merges] == [("m-1", "m-2"), ("m-2", "m-3")]
        world.router.program_finished("prog-1")
        world.settle()
        [dropped] = world.log.find("program.values_dropped")
        newest = "m-3"
        assert dropped["dropped"] == [["/m", newest]] and dropped["count"] == 1
        journeys = trace(world.log.events, "/m")
        assert [(j.value, j.outcome, j.hops[-1].name) for j in journeys] == [
            (1, "merged", "program.value_merged"),
            (2, "merged", "program.value_merged"),
            (3, "dropped", "program.values_dropped"),
        ]
        # an info log has no program.queued: the journey is found by the names it carries
        info = [e for e in world.log.events if e["level"] != "debug"]
        [last] = [j for j in trace(info, "/m") if j.msg_id == newest]
        assert last.outcome == "dropped" and last.reason == "outbox dropped: finished"
    finally:
        world.router.stop()


def test_a_value_for_an_actor_given_up_on_is_a_dead_letter_that_ends_its_journey(vtime):
    settings = quiet_settings(actors={"restart_limit": 1, "restart_window": 10.0})
    world = make_world(vtime, settings)
    try:
        world.open_link()
        for _ in range(2):  # the second crash within the window: given up
            world.router.crash("router")
            world.settle()
        assert world.log.find("supervisor.gave_up", target="router")
        send(world, "/lost", 5, "m-5")
        world.settle()
        [letter] = world.log.find("supervisor.dead_letter")
        assert letter["message_type"] == "FrontEndValue" and letter["address"] == "/lost"
        assert letter["msg_id"] == "m-5" and letter["comm_id"] == world.front_end.comm_id
        [journey] = trace(world.log.events, "/lost")
        assert journey.outcome == "dropped" and journey.hops[-1].name == "supervisor.dead_letter"
        assert journey.reason == "dead letter: the router actor gave up"
    finally:
        world.router.stop()


def test_a_value_whose_handler_crashed_ends_at_the_crash(world: World, monkeypatch):
    world.open_link()

    def broken(self: Router, m: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(Router._handlers, FrontEndValue, broken)  # the handler table
    send(world, "/crash", 1, "m-1")
    world.settle()
    [crashed] = world.log.find("actor.crashed", actor="router")
    assert crashed["dropped_message"] == "FrontEndValue" and crashed["address"] == "/crash"
    assert crashed["msg_id"] == "m-1" and "value" not in crashed  # an info log
    [journey] = trace(world.log.events, "/crash")
    assert journey.outcome == "dropped" and journey.hops[-1].name == "actor.crashed"


def test_a_send_lost_at_the_connection_ends_its_journey(vtime):
    world = debug_world(vtime, actors={"restart_limit": 1, "restart_window": 10.0})
    try:
        world.open_link()
        program = world.start_program()
        for _ in range(2):
            world.router.crash("connection")
            world.settle()
        program.send("/out", 7)
        world.settle()
        [letter] = world.log.find("supervisor.dead_letter", message_type="ProgramSend")
        assert letter["address"] == "/out" and letter["program_id"] == "prog-1"
        assert letter["value"] == 7  # a debug log
        [journey] = trace(world.log.events, "/out")
        assert [h.name for h in journey.hops] == [
            "program.send_accepted",
            "supervisor.dead_letter",
        ]
        assert journey.outcome == "dropped"
    finally:
        world.router.stop()


# ------------------------------------------------------------------------ outage episodes


def line(event: str, t: float, **fields: object) -> str:
    ts = f"2026-03-02T10:00:{t:09.6f}Z"
    return json.dumps({"event": event, "t": t, "ts": ts, **fields}) + "\n"


def test_outage_episodes_from_a_crafted_log(tmp_path: Path, capsys):
    path = tmp_path / "k.jsonl"
    path.write_text(
        line("connection.opened", 1.0, comm_id="c1")
        + line("router.dropped", 2.0, address="/x", msg_id="m", reason="no subscriber")
        + line("connection.stale", 10.0, comm_id="c1", reason="no pong in time")
        + line("connection.closed", 10.5, comm_id="c1", by="host")  # the same outage
        + line("connection.values_dropped", 11.0, address="/s", reason="too many", count=4)
        + line("connection.values_dropped", 11.5, address="/s", reason="too many", count=2)
        + line("connection.msg_dropped", 12.0, address="/a", reason="comm_id is not an open comm")
        + line("connection.value_merged", 12.1, address="/t")
        + line("connection.opened", 12.5, comm_id="c2")
        + line("connection.closed", 20.0, comm_id="c2", by="front-end")
        + line("program.value_dropped", 21.0, address="/in", reason="no program running")
        + line("kernel.shutdown", 22.0)
    )
    stats = summarize(json.loads(row) for row in path.read_text().splitlines())
    first, second = stats.outages
    assert (first.started_by, first.why, first.comm_id) == ("stale", "no pong in time", "c1")
    assert first.reopened and first.reopened_comm_id == "c2"
    assert first.duration == pytest.approx(2.5)
    assert dict(first.lost_values) == {
        ("connection.values_dropped", "too many", "/s"): 6,
        ("connection.msg_dropped", "comm_id is not an open comm", "/a"): 1,
        ("connection.value_merged", "-", "/t"): 1,
    }
    assert first.losses[("connection.values_dropped", "too many", "/s")] == 2
    assert (second.started_by, second.why, second.reopened) == ("closed", "front-end", False)
    assert second.duration == pytest.approx(2.0)  # until the last event of that router
    assert dict(second.lost_values) == {("program.value_dropped", "no program running", "/in"): 1}

    assert main(["logs", str(path), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "  #1 +9.000000s  stale: no pong in time (comm c1); reopened on c2 after 2.500 s" in out
    assert "#2 +19.000000s  closed: front-end (comm c2); not reopened when the log ends" in out
    assert main(["logs", str(path), "--stats", "--absolute"]) == 0
    out = capsys.readouterr().out
    assert "#1 2026-03-02T10:00:10.000000Z  stale" in out
    assert "at 2026-03-02T10:00:12.500000Z" in out
    assert main(["logs", str(path), "--stats", "--format", "json"]) == 0
    [episode, _] = json.loads(capsys.readouterr().out)["outages"]
    assert episode["start"] == pytest.approx(9.0) and episode["duration"] == pytest.approx(2.5)
    assert episode["start_ts"] == "2026-03-02T10:00:10.000000Z"
    assert {"event": "connection.values_dropped", "reason": "too many", "address": "/s",
            "events": 2, "values": 6} in episode["lost"]  # fmt: skip
    assert main(["logs", str(path), "--event", "connection.stale", "--absolute"]) == 0
    assert capsys.readouterr().out.startswith("2026-03-02T10:00:10.000000Z  -")
    assert main(["logs", str(path), "--trace", "/x", "--absolute"]) == 0
    out = capsys.readouterr().out
    assert "DROPPED at router.dropped: no subscriber" in out
    assert "   2026-03-02T10:00:02.000000Z" in out


def test_an_outage_of_a_real_router(vtime: VirtualTime, tmp_path: Path):
    """The page goes away: the link goes stale, values for the page beyond the queue limit are
    dropped, a message on a comm the kernel does not know is refused (one on the old comm is
    taken since issue 15: no other comm replaced it); the page comes back."""
    world = make_world(vtime, quiet_settings(connection={"queue_limit": 3}), auto_open=False)
    try:
        world.front_end.open()
        world.settle()
        old = world.front_end.comm_id
        program = world.start_program()
        world.front_end.comm_id = None  # the page went away without a word
        world.front_end.answer_pings = False
        world.advance(1.5)
        program.send("/s", -1, stream=True)  # the link is silent: a probe first
        world.advance(4.0)  # no pong: the link is declared dead
        assert world.log.find("connection.stale")
        for i in range(6):  # no comm: they wait, beyond 3 the oldest are dropped
            program.send("/s", i, stream=True)
        world.router.handle_comm_msg({"comm_id": "gone", "data": {"address": "/a", "value": 0}})
        world.settle()
        world.advance(1.0)
        world.front_end.reload()
        world.front_end.open()
        world.settle()
        events = world.log.events
    finally:
        world.router.stop()
    [episode] = summarize(events).outages
    stale = only(events, "connection.stale")[0]
    opened = only(events, "connection.opened")[-1]
    assert episode.started_by == "stale" and episode.comm_id == old and episode.reopened
    assert episode.duration == pytest.approx(opened["t"] - stale["t"])
    lost = {(name, address): n for (name, _, address), n in episode.lost_values.items()}
    assert lost[("connection.msg_dropped", "/a")] == 1
    dropped = sum(e["count"] for e in only(events, "connection.values_dropped"))
    assert dropped >= 2 and lost[("connection.values_dropped", "/s")] == dropped
    # the same from its JSON-lines file, as `commrouter logs --stats` reads it
    path = tmp_path / "router.jsonl"
    sink = JsonLinesFile(path)
    for event in events:
        sink(event)
    sink.close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["logs", str(path), "--stats", "--format", "json"]) == 0
    [record] = json.loads(out.getvalue())["outages"]
    assert record["comm_id"] == old and record["duration"] == pytest.approx(episode.duration)
    assert {"event": "connection.values_dropped", "address": "/s", "values": dropped} in [
        {k: item[k] for k in ("event", "address", "values")} for item in record["lost"]
    ]


def test_requests_held_behind_a_subscribe_are_named_when_dropped(vtime):
    """The subscriptions actor is given up on: the route never comes, so what the program
    asked after its subscribe stays held until it finishes."""
    world = make_world(vtime, quiet_settings(actors={"restart_limit": 1, "restart_window": 10.0}))
    try:
        world.open_link()
        for _ in range(2):
            world.router.crash("subscriptions")
            world.settle()
        program = world.start_program()
        program.subscribe("/a")
        program.send("/b", 1)
        program.read("/c")
        world.settle()
        world.router.program_finished("prog-1")
        world.settle()
        [dropped] = world.log.find("program.request_dropped", program_id="prog-1")
        assert dropped["count"] == 2
        assert dropped["dropped"] == [["ProgramSend", "/b"], ["ProgramRead", "/c"]]
    finally:
        world.router.stop()


def hop(event: str, **fields: object) -> dict[str, object]:
    return {"event": event, "level": "info", **fields}


IN = {"address": "/a", "msg_id": "m1", "comm_id": "c"}
OUT = {"address": "/a", "program_id": "p"}
FIRST_HOPS = [hop("kernel.comm_msg", msg_id="m1"), hop("connection.received", **IN)]
LOSSES = {
    "connection.msg_dropped": (
        [hop("kernel.comm_msg", msg_id="m1"), hop("connection.msg_dropped", reason="r", **IN)],
        "dropped",
    ),
    "router.dropped": ([*FIRST_HOPS, hop("router.dropped", reason="r", **IN)], "dropped"),
    "program.value_dropped": (
        [*FIRST_HOPS, hop("router.delivered", **IN), hop("program.value_dropped", **IN)],
        "dropped",
    ),
    "program.value_merged": (
        [
            *FIRST_HOPS,
            hop("program.queued", program_id="p", **IN),
            hop("connection.received", **{**IN, "msg_id": "m2"}),
            hop("program.value_merged", replaced="m1", program_id="p", **{**IN, "msg_id": "m2"}),
        ],
        "merged",
    ),
    "program.values_dropped": (  # an info log: only the names the event carries
        [hop("program.values_dropped", program_id="p", count=1, dropped=[["/a", "m1"]])],
        "dropped",
    ),
    "supervisor.dead_letter": (
        [*FIRST_HOPS, hop("supervisor.dead_letter", target="router", **IN)],
        "dropped",
    ),
    "actor.crashed": (
        [
            hop("kernel.comm_msg", msg_id="m1"),
            hop(
                "actor.crashed",
                dropped_message="FrontEndBatch",
                dropped_addresses=["/a", "/b"],
                msg_id="m1",
            ),
        ],
        "dropped",
    ),
    "connection.value_merged": (
        [hop("program.send_accepted", **OUT), hop("connection.value_merged", **OUT)],
        "merged",
    ),
    "connection.values_dropped": (
        [
            hop("program.send_accepted", **OUT),
            hop("program.send_accepted", **OUT),
            hop("connection.values_dropped", reason="r", count=2, **OUT),
        ],
        "dropped",
    ),
    "supervisor.dead_letter toward the page": (
        [
            hop("program.send_accepted", **OUT),
            hop("supervisor.dead_letter", target="connection", message_type="ProgramSend", **OUT),
        ],
        "dropped",
    ),
    "actor.crashed toward the page, in an info log": (
        [hop("actor.crashed", actor="program_executor", dropped_message="ProgramRead", **OUT)],
        "dropped",
    ),
}


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_journey_ends_at_each_loss_event(loss: str):
    events, outcome = LOSSES[loss]
    journeys = [j for j in trace(events, "/a") if j.msg_id != "m2"]
    assert journeys and all(j.outcome == outcome for j in journeys), [
        (j.outcome, [h.name for h in j.hops]) for j in journeys
    ]
    assert all(j.hops[-1].event is events[-1] for j in journeys)
    assert all(j.ended for j in journeys)
