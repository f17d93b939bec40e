"""heartbeat and wait (the seed's SendHeartbeatAndWait), in virtual time."""

from __future__ import annotations

import pytest

from commrouter import LinkNotOpen, PublishFailed
from tests.conftest import World


def test_pong_within_timeout_is_true(world: World):
    comm_id = world.open_link()
    promise = world.router.heartbeat()
    world.settle()
    assert promise.get(1.0) is True
    pings = world.comm_msgs("#heartbeat/ping")
    assert [p.comm_id for p in pings] == [comm_id]
    assert world.log.find("heartbeat.pong_received", comm_id=comm_id)


def test_no_pong_is_false_at_the_timeout(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    promise = world.router.heartbeat()
    world.advance(0.499)
    assert not promise.done
    world.advance(0.001)
    assert promise.get(1.0) is False
    assert world.log.find("heartbeat.timeout")


def test_custom_timeout(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    promise = world.router.heartbeat(timeout=2.0)
    world.advance(1.9)
    assert not promise.done
    world.advance(0.1)
    assert promise.get(1.0) is False


def test_second_caller_waits_on_the_same_ping(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    first = world.router.heartbeat()
    world.advance(0.25)
    second = world.router.heartbeat()
    world.settle()
    assert world.front_end.pings == 1
    world.front_end.send("#heartbeat/pong", 1)  # the answer to ping 1 arrives late but in time
    world.settle()
    assert first.get(1.0) is True and second.get(1.0) is True
    assert world.front_end.pings == 1


def test_send_failure_is_an_error(world: World):
    world.open_link()
    world.front_end.fail_publish = True
    promise = world.router.heartbeat()
    world.settle()
    with pytest.raises(PublishFailed):
        promise.get(1.0)
    assert world.log.find("heartbeat.send_failed")


def test_without_an_open_comm_is_an_error(world: World):
    promise = world.router.heartbeat()
    world.settle()
    with pytest.raises(LinkNotOpen):
        promise.get(1.0)


def test_unexpected_pong_is_logged_not_fatal(world: World):
    world.open_link()
    world.front_end.send("#heartbeat/pong", True)
    world.settle()
    assert world.log.find("heartbeat.pong_unexpected")
    assert world.router.heartbeat().get(1.0) is True
