"""comm_open: ignored when incomplete or not for us; a valid one opens the link."""

from __future__ import annotations

import pytest

from tests.conftest import KERNEL_ID, World


def good_open(comm_id: str = "c-1") -> dict:
    return {"comm_id": comm_id, "target_name": "commrouter", "data": {"kernel_id": KERNEL_ID}}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "content missing"),
        ({"target_name": "commrouter", "data": {"kernel_id": KERNEL_ID}}, "comm_id missing"),
        ({**good_open(), "target_name": "jupyter.widget"}, "target_name 'jupyter.widget'"),
        ({**good_open(), "data": {"kernel_id": "another-kernel"}}, "kernel_id 'another-kernel'"),
        ({**good_open(), "data": {}}, "kernel_id None"),
    ],
)
def test_bad_comm_open_is_ignored_and_logged(world: World, content: dict | None, reason: str):
    world.router.handle_comm_open(content, msg_id="m-1")
    world.settle()
    state = world.router.link_state()
    assert not state.opened and state.comm_id is None
    ignored = world.log.find("connection.open_ignored", msg_id="m-1")
    assert len(ignored) == 1 and ignored[0]["reason"].startswith(reason)
    assert world.front_end.published == []  # nothing sent, no ack
    assert world.router.health() == dict.fromkeys(world.router.health(), True)


def test_valid_comm_open_acks_and_opens(world: World, vtime):
    vtime.advance(1.25)
    world.front_end.comm_id = "c-1"  # the browser listens on the comm it opens
    world.router.handle_comm_open(good_open("c-1"), msg_id="m-2")
    world.settle()
    state = world.router.link_state()
    assert state.opened and state.installed and state.comm_id == "c-1"
    assert state.last_heard == pytest.approx(1.25)
    acks = world.comm_msgs("#comm_open_ack")
    assert [(a.comm_id, a.data["value"]["seq"]) for a in acks] == [("c-1", 1)]
    assert world.front_end.acked
    assert world.log.find("connection.opened", comm_id="c-1", msg_id="m-2")


def test_open_erases_the_transient_install_display(world: World):
    world.open_link()
    displays = world.front_end.of_kind("display")
    updates = world.front_end.of_kind("update")
    assert len(displays) == 1 and displays[0].display_id.startswith("commrouter-install-")
    assert "data-commrouter-install" in displays[0].data["text/html"]
    assert KERNEL_ID in displays[0].data["text/html"]
    # same display id, empty content: the script is never saved in the notebook
    assert [(u.display_id, dict(u.data)) for u in updates] == [(displays[0].display_id, {})]
    assert world.router.link_state().display_id is None


def test_new_comm_open_closes_the_previous_comm(world: World):
    first = world.open_link()
    second = world.front_end.open()  # e.g. the page reloaded, or a second window
    world.settle()
    closes = world.front_end.of_kind("comm_close")
    assert [c.comm_id for c in closes] == [first]
    state = world.router.link_state()
    assert state.opened and state.comm_id == second != first
    assert world.log.find("connection.close_sent", comm_id=first)
