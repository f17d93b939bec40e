"""close: comm_close only with a message context; state always reset."""

from __future__ import annotations

from tests.conftest import World


def test_close_with_context_sends_comm_close_and_resets(world: World):
    comm_id = world.open_link()
    assert world.router.close(parent={"msg_id": "exec-1"}).get(1.0) is True
    world.settle()
    closes = world.front_end.of_kind("comm_close")
    assert [(c.comm_id, c.parent) for c in closes] == [(comm_id, {"msg_id": "exec-1"})]
    state = world.router.link_state()
    assert (state.opened, state.installed, state.comm_id) == (False, False, None)


def test_close_without_context_only_resets(world: World):
    world.open_link()
    assert world.router.close().get(1.0) is True
    world.settle()
    assert world.front_end.of_kind("comm_close") == []
    state = world.router.link_state()
    assert (state.opened, state.installed, state.comm_id) == (False, False, None)


def test_comm_close_from_front_end_resets_only_for_the_open_comm(world: World):
    comm_id = world.open_link()
    world.router.handle_comm_close({"comm_id": "some-other-comm"})
    world.settle()
    assert world.router.link_state().comm_id == comm_id
    assert world.log.find("connection.close_ignored", comm_id="some-other-comm")
    world.front_end.close()
    world.settle()
    assert not world.router.link_state().opened
    assert world.log.find("connection.closed", by="front-end", comm_id=comm_id)


def test_values_after_close_wait_for_a_new_install(world: World):
    world.open_link()
    world.router.close().get(1.0)
    promise = world.router.send("/after", 1)
    world.settle()
    assert promise.get(1.0) is True  # auto_open browser: a new install opened a new comm
    assert len(world.front_end.of_kind("display")) == 2
    assert world.front_end.received("/after") == [1]
