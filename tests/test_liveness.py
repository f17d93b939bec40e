"""Liveness that follows the traffic (issue 11): numbered pings, adaptive timeouts, another
probe instead of a reset, any message counts, and a grace period for a replaced comm.
All in virtual time."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.conftest import World, quiet_settings, running_world


def installs(world: World) -> int:
    return sum(
        1
        for p in world.front_end.of_kind("display")
        if "data-commrouter-install" in str(p.data.get("text/html", ""))
    )


def pings(world: World) -> list[int]:
    return [p.data["value"] for p in world.comm_msgs("#heartbeat/ping")]


def test_pings_are_numbered_and_the_page_echoes_the_number(world: World):
    world.open_link()
    for _ in range(3):
        assert world.router.heartbeat().get(1.0) is True
    assert pings(world) == [1, 2, 3]
    assert [e["ping"] for e in world.log.find("heartbeat.pong_received")] == [1, 2, 3]


def test_a_late_pong_never_answers_a_newer_ping(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    first = world.router.heartbeat()
    world.advance(0.5)
    assert first.get(1.0) is False  # ping 1 timed out
    second = world.router.heartbeat()
    world.settle()
    world.front_end.send("#heartbeat/pong", 1)  # the page's late answer to ping 1
    world.settle()
    assert not second.done  # it answers nothing pending
    [late] = world.log.find("heartbeat.pong_unexpected")
    assert late["ping"] == 1 and "not the pending" in late["reason"]
    assert late["rtt"] == pytest.approx(0.5)  # still a round-trip sample
    world.advance(2.0)
    assert second.get(1.0) is False


def test_a_pong_with_no_number_or_an_unknown_one_answers_nothing(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    promise = world.router.heartbeat()
    world.settle()
    world.front_end.send("#heartbeat/pong", True)
    world.front_end.send("#heartbeat/pong", 99)
    world.settle()
    assert not promise.done
    reasons = [e["reason"] for e in world.log.find("heartbeat.pong_unexpected")]
    assert len(reasons) == 2 and all("no ping sent" in r for r in reasons)


def test_the_ping_timeout_adapts_to_the_measured_round_trip(world: World):
    """Pongs that take 0.6 s: the next ping waits 3 x 0.6 = 1.8 s (heartbeat.rtt_multiplier),
    not the configured 0.5 s."""
    world.open_link()
    world.front_end.answer_pings = False
    promise = world.router.heartbeat()
    world.advance(0.5)
    assert promise.get(1.0) is False
    world.advance(0.1)
    world.front_end.send("#heartbeat/pong", 1)  # 0.6 s after ping 1
    world.settle()
    world.router.heartbeat()
    world.settle()
    sent = world.log.find("heartbeat.ping_sent")
    assert [e["timeout"] for e in sent] == [0.5, pytest.approx(1.8)]


def test_the_adaptive_timeout_has_a_ceiling(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    world.router.heartbeat()
    world.advance(0.5)
    world.advance(1.5)
    world.front_end.send("#heartbeat/pong", 1)  # a 2 s round trip: 3 x 2 = 6 s > 2.5 s
    world.settle()
    world.router.heartbeat()
    world.settle()
    assert world.log.find("heartbeat.ping_sent")[-1]["timeout"] == 2.5


def test_a_page_slower_than_the_timeout_but_alive_is_never_reinstalled(vtime):
    """The page answers every ping after 0.65 s (more than the 0.5 s timeout): the probe pings
    again instead of resetting, the late pong proves the page alive, and nothing is lost."""
    with running_world(vtime, answer_pings=False) as world:
        world.open_link()
        program = world.start_program()
        for round_ in range(4):
            world.advance(1.5)  # quiet for longer than the request threshold
            program.send("/label", round_)
            world.settle()
            world.advance(0.65)
            number = pings(world)[-1]
            world.front_end.send("#heartbeat/pong", number)  # late, but it comes
            world.settle()
        assert installs(world) == 1
        assert world.log.find("connection.stale") == []
        assert world.front_end.received("/label") == [0, 1, 2, 3]


def test_any_message_from_the_page_ends_a_probe(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    world.advance(1.5)
    promise = world.router.ensure_front_end()
    world.settle()
    assert not promise.done
    world.front_end.send("/slider", 3)  # not a pong, but the page is alive
    world.settle()
    assert promise.get(1.0) is True
    assert world.log.find("connection.probe_answered", by="heard from the page")


def test_an_ack_counts_as_hearing_from_the_page(world: World):
    world.open_link()
    world.advance(1.5)
    before = world.router.link_state().last_heard
    world.front_end.ack(0)
    world.settle()
    assert world.router.link_state().last_heard == pytest.approx(before + 1.5)


def test_the_link_is_dead_only_after_the_whole_silence_bound(vtime):
    settings = quiet_settings(heartbeat={"dead_after": 3.0})
    with running_world(vtime, settings, answer_pings=False) as world:
        world.open_link()
        world.advance(1.5)
        world.router.ensure_front_end()
        world.advance(1.4)  # 2.9 s of silence: pings, no reset
        assert installs(world) == 1 and world.log.find("connection.stale") == []
        assert len(pings(world)) >= 2
        world.advance(0.6)
        assert installs(world) == 2
        [stale] = world.log.find("connection.stale")
        assert stale["silent_for"] >= 3.0


def test_messages_on_a_just_replaced_comm_are_accepted_for_the_grace_period(world: World):
    old = world.open_link()
    program = world.start_program()
    program.subscribe("/slider")
    world.settle()
    world.front_end.open()  # a new comm replaces the old one (a re-install)
    world.settle()
    world.front_end.comm_id = old  # a message the page sent on the old comm, still in flight
    world.front_end.send("/slider", 1)
    world.settle()
    program.poll()
    assert program.received("/slider") == [1]
    assert world.log.find("connection.received_on_replaced", comm_id=old)
    world.advance(2.5)  # past connection.replaced_grace
    world.front_end.send("/slider", 2)
    world.settle()
    program.poll()
    assert program.received("/slider") == [1]
    [refused] = world.log.find("connection.msg_dropped", comm_id=old)
    assert refused["level"] == "warning" and refused["address"] == "/slider"


@contextmanager
def silent_page_subscribed(vtime):
    """A linked page that answers no ping, and a program subscribed to /slider."""
    settings = quiet_settings(heartbeat={"dead_after": 3.0})
    with running_world(vtime, settings, answer_pings=False) as world:
        comm = world.open_link()
        program = world.start_program()
        program.subscribe("/slider")
        world.settle()
        yield world, comm, program


def test_a_page_whose_link_was_reset_without_its_knowing_is_still_heard(vtime):
    """A stale verdict resets the link but no other comm replaces it (issue 15: the page never
    heard of it, e.g. the comm_close could not be published): what the page still sends on its
    comm reaches the program, however long after the reset: its window is taken back."""
    with silent_page_subscribed(vtime) as (world, comm, program):
        world.front_end.auto_open = False  # the new install shows nowhere
        world.advance(1.5)
        world.router.ensure_front_end()
        world.advance(2.0)
        assert world.log.find("connection.stale")  # reset; a new install waits for a page
        world.advance(5.0)  # well past connection.replaced_grace
        assert not world.router.link_state().opened
        world.front_end.comm_id = comm
        world.front_end.send("/slider", 7)
        world.settle()
        program.poll()
        assert program.received("/slider") == [7]
        assert world.log.find("connection.revived", comm_id=comm)
        assert not world.log.find("connection.msg_dropped", comm_id=comm)
        assert world.router.link_state().windows == (comm,)


def test_hearing_from_a_page_whose_link_is_down_takes_it_back_for_what_waits(vtime):
    """A re-install that failed (the page missed the script) leaves values waiting; when the
    page, still on its old comm, is heard, the router takes its window back and sends them,
    instead of letting them expire after connection.queue_max_age (issue 15, found by a
    partition in the simulation)."""
    with silent_page_subscribed(vtime) as (world, comm, program):
        world.front_end.auto_open = False  # the next install shows nowhere
        world.front_end.auto_ack = False  # and nothing the page does is heard
        world.advance(1.5)
        program.send("/label", "waiting")  # a probe, then a stale verdict and an install
        world.advance(7.0)
        assert world.log.find("connection.install_failed")
        installs = len(world.log.find("connection.install_started"))
        world.front_end.auto_open = world.front_end.auto_ack = True
        world.front_end.comm_id = comm
        world.front_end.send("/slider", 1)  # the page, alive, on the comm it still holds
        world.settle()
        assert len(world.log.find("connection.install_started")) == installs  # none needed
        assert world.log.find("connection.revived", comm_id=comm)
        assert world.router.link_state().opened
        world.advance(1.0)
        labels = [p.data.get("value") for p in world.comm_msgs("/label")]
        assert labels[-1] == "waiting"
        assert world.router.link_state().in_flight == 0
