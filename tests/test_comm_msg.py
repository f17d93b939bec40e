"""comm_msg: validated, then heartbeat addresses answered and values routed to subscribers."""

from __future__ import annotations

import pytest

from tests.conftest import World


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "content missing"),
        ({"data": {"address": "/a", "value": 1}}, "comm_id missing"),
        (
            {"comm_id": "not-the-open-one", "data": {"address": "/a", "value": 1}},
            "comm_id is not an open comm",
        ),
        ({"comm_id": "OPEN", "data": {"value": 1}}, "address missing"),
        ({"comm_id": "OPEN", "data": {"address": "/a"}}, "value missing"),
        ({"comm_id": "OPEN"}, "data missing"),
    ],
)
def test_invalid_comm_msg_is_dropped_with_reason(world: World, content, reason):
    comm_id = world.open_link()
    program = world.start_program()
    program.subscribe("/a")
    world.settle()
    if content is not None and content.get("comm_id") == "OPEN":
        content = {**content, "comm_id": comm_id}
    heard_before = world.router.link_state().last_heard
    world.advance(0.5)
    world.router.handle_comm_msg(content, msg_id="bad")
    world.settle()
    program.poll()
    assert program.received("/a") == []
    dropped = world.log.find("connection.msg_dropped", msg_id="bad")
    assert len(dropped) == 1 and dropped[0]["reason"] == reason
    assert world.router.link_state().last_heard == heard_before  # not counted as hearing it


def test_valid_msg_updates_last_heard_and_reaches_subscribed_program(world: World):
    world.open_link()
    program = world.start_program()
    program.subscribe("/slider/1")
    world.settle()
    world.advance(0.75)
    for value in (0.1, 0.2, 0.3):
        world.front_end.send("/slider/1", value)
    world.settle()
    program.poll()
    assert program.received("/slider/1") == [0.1, 0.2, 0.3]
    assert world.router.link_state().last_heard == pytest.approx(0.75)


def test_value_for_unsubscribed_address_is_dropped_with_log(world: World):
    world.open_link()
    program = world.start_program()
    world.front_end.send("/nobody/listens", 1)
    world.settle()
    program.poll()
    assert program.values == {}
    assert world.log.find("router.dropped", address="/nobody/listens", reason="no subscriber")


def test_ping_from_front_end_is_answered_with_pong(world: World):
    comm_id = world.open_link()
    world.front_end.send("#heartbeat/ping", True)
    world.settle()
    pongs = world.comm_msgs("#heartbeat/pong")
    assert [(p.comm_id, p.data["value"]) for p in pongs] == [(comm_id, True)]


def test_unknown_private_address_is_dropped(world: World):
    world.open_link()
    world.front_end.send("#not/a/protocol/address", 1)
    world.settle()
    assert world.log.find("router.dropped", reason="unknown private address")


def test_comm_messages_are_handled_while_a_program_runs(world: World):
    """Nothing queues behind a running program: its link is busy, values still flow."""
    world.open_link()
    program = world.start_program()
    program.subscribe("/a")
    program.send("/b", "from program")
    world.settle()
    world.front_end.send("/a", 1)
    world.settle()
    program.poll()
    assert program.received("/a") == [1]
    assert world.front_end.received("/b") == ["from program"]


def test_a_comm_id_that_is_not_a_string_is_refused_and_nothing_crashes(world: World):
    """Found by the live fuzzing: a dict as comm_id reached a dict lookup of the windows."""
    world.open_link()
    world.router.handle_comm_msg({"comm_id": {"x": 1}, "data": {"address": "/a", "value": 1}})
    world.router.handle_comm_msg({"comm_id": [1], "data": {"address": "/a", "value": 2}})
    world.settle()
    reasons = [e["reason"] for e in world.log.find("connection.msg_dropped")]
    assert reasons == ["comm_id is not a string", "comm_id is not a string"]
    assert world.log.find("actor.crashed") == []
    assert world.router.link_state().opened
