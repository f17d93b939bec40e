"""A crashed actor is restarted by the supervisor with its durable state; the link still works."""

from __future__ import annotations

import pytest

from commrouter import ActorGivenUp
from tests.conftest import World, make_world, quiet_settings

ACTORS = ["router", "subscriptions", "heartbeat", "connection", "program_executor"]


@pytest.mark.parametrize("actor", ACTORS)
def test_crashed_actor_is_restarted_and_the_link_still_works(world: World, actor: str):
    comm_id = world.open_link()
    program = world.start_program()
    program.subscribe("/in")
    world.settle()
    world.router.crash(actor, reason="test")
    world.settle()
    assert world.log.find("actor.crashed", actor=actor)
    assert world.log.find("supervisor.restarted", target=actor)
    assert world.router.health() == dict.fromkeys(ACTORS, True)
    # durable state survived: same comm, same subscription, values flow both ways
    assert world.router.link_state().comm_id == comm_id
    world.front_end.send("/in", "after crash")
    program.send("/out", "after crash")
    world.settle()
    program.poll()
    assert program.received("/in") == ["after crash"]
    assert world.front_end.received("/out") == ["after crash"]
    assert world.router.heartbeat().get(1.0) is True


def test_messages_told_around_a_crash_are_handed_to_the_next_incarnation(world: World):
    world.open_link()
    program = world.start_program()
    program.subscribe("/in")
    world.settle()
    world.router.crash("connection")
    for i in range(50):  # these queue behind the crash, or arrive while it restarts
        world.front_end.send("/in", i)
    world.settle()
    program.poll()
    assert program.received("/in") == list(range(50))
    crashed = world.log.find("actor.crashed", actor="connection")
    assert crashed[0]["dropped_message"] == "Crash"  # only the message that crashed is lost


def test_supervisor_gives_up_after_too_many_restarts(vtime):
    settings = quiet_settings(actors={"restart_limit": 2, "restart_window": 10.0})
    world = make_world(vtime, settings)
    try:
        for _ in range(3):
            world.router.crash("heartbeat")
            world.settle()
        assert world.log.find("supervisor.gave_up", target="heartbeat")
        assert world.router.health()["heartbeat"] is False
        assert world.router.health()["connection"] is True
    finally:
        world.router.stop()


def test_restart_budget_renews_after_the_window(vtime):
    settings = quiet_settings(actors={"restart_limit": 1, "restart_window": 5.0})
    world = make_world(vtime, settings)
    try:
        world.router.crash("heartbeat")
        world.settle()
        world.advance(5.5)
        world.router.crash("heartbeat")
        world.settle()
        assert len(world.log.find("supervisor.restarted", target="heartbeat")) == 2
        assert world.log.find("supervisor.gave_up") == []
    finally:
        world.router.stop()


def test_a_pending_heartbeat_survives_a_heartbeat_crash(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    promise = world.router.heartbeat()
    world.settle()
    world.router.crash("heartbeat")
    world.advance(0.5)  # the timeout timer targets the slot, so the new incarnation gets it
    assert promise.get(1.0) is False


def test_messages_for_an_actor_given_up_on_are_dead_letters_not_hangs(vtime):
    settings = quiet_settings(actors={"restart_limit": 1, "restart_window": 10.0})
    world = make_world(vtime, settings)
    try:
        world.open_link()
        world.router.crash("heartbeat")
        world.settle()
        world.router.crash("heartbeat")  # the second crash within the window: given up
        world.settle()
        assert world.log.find("supervisor.gave_up", target="heartbeat")
        promise = world.router.heartbeat()
        world.settle()  # nothing stays in flight for the dead actor
        with pytest.raises(ActorGivenUp, match="heartbeat"):
            promise.get(1.0)
        letters = world.log.find("supervisor.dead_letter", target="heartbeat")
        assert [letter["message_type"] for letter in letters] == ["Probe"]
        # a silent link's probe fails at once (no pong can come), and the link is reinstalled
        world.advance(1.5)
        sent = world.router.send("/after", 1)
        world.settle()
        assert sent.get(1.0) is True
        assert world.front_end.received("/after") == [1]
    finally:
        world.router.stop()
