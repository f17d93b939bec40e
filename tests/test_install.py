"""ensure_front_end (the seed's InstallWebSocket), in virtual time."""

from __future__ import annotations

import pytest

from commrouter import FrontEndUnavailable, PublishFailed
from tests.conftest import World, make_world


def installs(world: World) -> int:
    return len(world.front_end.of_kind("display"))


def test_installed_and_recently_heard_is_a_no_op(world: World):
    world.open_link()
    world.advance(1.0)  # exactly the request threshold: still fresh
    promise = world.router.ensure_front_end()
    world.settle()
    assert promise.get(1.0) is True
    assert installs(world) == 1 and world.front_end.pings == 0


def test_silent_link_is_probed_and_kept_when_answered(world: World):
    comm_id = world.open_link()
    world.advance(1.5)
    promise = world.router.ensure_front_end()
    world.settle()
    assert promise.get(1.0) is True
    assert world.front_end.pings == 1 and installs(world) == 1
    assert world.router.link_state().comm_id == comm_id
    assert world.log.find("connection.probe_answered", comm_id=comm_id)


def test_silent_link_that_does_not_answer_is_reinstalled(world: World):
    world.open_link()
    world.front_end.answer_pings = False
    world.advance(2.0)
    promise = world.router.ensure_front_end()
    world.settle()
    assert not promise.done  # waiting for the pong
    world.advance(0.5)  # one missed pong is not a reset: another ping
    assert not promise.done and installs(world) == 1
    assert world.log.find("connection.probe_retried")
    world.advance(0.5)  # 3 s of silence (heartbeat.dead_after): stale, reinstall
    assert promise.get(1.0) is True
    assert installs(world) == 2
    assert len(world.log.find("heartbeat.timeout")) == 2
    assert world.log.find("connection.stale")


def test_install_times_out_after_wait_for_connection(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        promise = world.router.ensure_front_end(parent={"msg_id": "cell"})
        world.advance(2.999)
        assert not promise.done
        world.advance(0.001)
        with pytest.raises(FrontEndUnavailable, match=r"did not open the comm within 3\.0 s"):
            promise.get(1.0)
        assert world.log.find("connection.install_failed", reason="timeout")
        assert installs(world) == 1
        display = world.front_end.of_kind("display")[0]
        assert display.parent == {"msg_id": "cell"}
        # the next ensure tries again with a fresh display id, erasing the old script
        again = world.router.ensure_front_end()
        world.settle()
        second = world.front_end.of_kind("display")[1]
        assert second.display_id != display.display_id
        assert [u.display_id for u in world.front_end.of_kind("update")] == [display.display_id]
        world.front_end.open()
        world.settle()
        assert again.get(1.0) is True
    finally:
        world.router.stop()


def test_concurrent_callers_share_one_install_and_one_wait(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        promises = [world.router.ensure_front_end() for _ in range(5)]
        world.advance(1.0)
        assert installs(world) == 1 and not any(p.done for p in promises)
        world.front_end.open()
        world.settle()
        assert [p.get(1.0) for p in promises] == [True] * 5
        assert installs(world) == 1
    finally:
        world.router.stop()


def test_concurrent_callers_all_get_the_failure(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        promises = [world.router.ensure_front_end() for _ in range(3)]
        world.advance(3.0)
        for promise in promises:
            with pytest.raises(FrontEndUnavailable):
                promise.get(1.0)
        assert installs(world) == 1
    finally:
        world.router.stop()


def test_publish_failure_is_a_clear_error_never_a_hang(world: World):
    world.front_end.fail_publish = True
    promise = world.router.ensure_front_end()
    world.settle()
    with pytest.raises(PublishFailed, match="could not publish the install script"):
        promise.get(1.0)
    assert world.log.find("connection.install_failed", reason="publish failed")
    assert world.router.health() == dict.fromkeys(world.router.health(), True)


def test_a_late_comm_open_after_a_timeout_still_opens_the_link(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        promise = world.router.ensure_front_end()
        world.advance(3.0)
        with pytest.raises(FrontEndUnavailable):
            promise.get(1.0)
        world.front_end.open()  # the browser was just slow
        world.settle()
        assert world.router.link_state().opened
    finally:
        world.router.stop()


def test_a_probe_the_heartbeat_never_answers_still_ends(world: World, monkeypatch):
    """The Connection's own backstop: a Heartbeat that swallows the probe (a bug, a stuck
    publisher) cannot leave the link waiting for ever."""
    from commrouter.actors.heartbeat import Heartbeat

    world.open_link()
    monkeypatch.setattr(Heartbeat, "_handlers", {})  # the per-class dispatch cache
    monkeypatch.setattr(Heartbeat, "handle_Probe", lambda self, message: None)
    world.advance(1.5)
    promise = world.router.ensure_front_end()
    world.advance(3.749)
    assert not promise.done
    world.advance(0.001)  # 1.5 x the longest a ping may wait (heartbeat.timeout_ceiling)
    assert world.log.find("connection.stale", reason="the heartbeat actor did not answer")
    assert promise.get(1.0) is True  # installed again; the auto-opening browser came back
    assert installs(world) == 2
