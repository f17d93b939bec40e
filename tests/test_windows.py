"""Fan-out to several windows of one kernel (docs/protocol.md, "Windows"), in virtual time: each
window has its own comm, outbox, acknowledgements and liveness; values go to every window,
what one window sends reaches the program and the others; a new window gets the current state;
sync(), read() and heartbeat() span the windows; a dead window leaves the others undisturbed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from commrouter import CommRouter, VirtualTime
from commrouter.observability import Recorder
from commrouter.transports.memory import InMemoryFrontEnd, InMemoryProgram, InMemoryWindows
from tests.conftest import KERNEL_ID, World, quiet_settings


@dataclass
class Windows(World):
    """A `World` whose front end is window A, with a second window B on the same kernel."""

    b: InMemoryFrontEnd

    @property
    def a(self) -> InMemoryFrontEnd:
        return self.front_end

    def program(self) -> InMemoryProgram:
        return self.start_program()

    def events(self, name: str) -> list[dict]:
        return self.log.find(name)


@contextmanager
def two_windows(vtime: VirtualTime, **b_options: bool) -> Iterator[Windows]:
    """Window A linked; window B (a second tab on the notebook) opened its own comm after."""
    log = Recorder()
    a = InMemoryFrontEnd(KERNEL_ID, name="a-")
    b = InMemoryFrontEnd(KERNEL_ID, name="b-", auto_open=False, **b_options)
    pages = InMemoryWindows(a, b)
    router = CommRouter(KERNEL_ID, pages, settings=quiet_settings(), time=vtime, log_sinks=[log])
    pages.connect(router)
    router.start()
    world = Windows(router, a, vtime, log, b)
    try:
        promise = router.ensure_front_end()
        world.settle()
        assert promise.get(1.0) is True
        b.open()
        world.settle()
        yield world
    finally:
        router.stop()


def test_values_reach_every_window_and_each_window_reaches_the_program(vtime):
    with two_windows(vtime) as w:
        program = w.program()
        program.subscribe("/slider")
        program.send("/label", "hello")
        w.settle()
        assert w.a.received("/label") == ["hello"]
        assert w.b.received("/label") == ["hello"]
        assert w.router.link_state().windows == ("a-comm-1", "b-comm-1")
        w.a.send("/slider", 3)
        w.settle()
        w.b.send("/slider", 4)
        w.settle()
        program.poll()
        assert program.received("/slider") == [3, 4]
        # each window's value is relayed to the other one, not echoed to itself
        assert w.b.received("/slider") == [3]
        assert w.a.received("/slider") == [4]


def test_a_new_window_is_sent_the_current_state_at_once(vtime):
    """A second tab (or a reload) opens while the program lives: it shows the last value of
    every state address without a re-run; a stream is history, not state."""
    with two_windows(vtime) as w:
        program = w.program()
        program.send("/label", "first")
        program.send("/label", "latest")
        program.send("/log", "a line", stream=True)
        w.a.send("/slider", 96)  # the user moved a slider in window A
        w.settle()
        c = InMemoryFrontEnd(KERNEL_ID, name="c-", auto_open=False)
        c.connect(w.router)  # C opens a comm; what is published for it, A's log shows
        w.a.published.clear()
        c_comm = c.open()
        w.settle()
        snapshot = [p for p in w.a.published if p.comm_id == c_comm and p.kind == "comm_msg"]
        items = []
        for message in snapshot:
            data = message.data
            items += data.get("batch", [data])
        sent = {i["address"]: i["value"] for i in items if i.get("address", "#")[0] != "#"}
        assert sent == {"/label": "latest", "/slider": 96}
        [event] = w.events("connection.snapshot")
        assert event["addresses"] == 2 and event["comm_id"] == c_comm


def test_a_window_that_vanishes_is_removed_and_the_other_keeps_working(vtime):
    """Window B stops answering (its tab closed without a word): it is probed, found dead
    after heartbeat.dead_after, and removed; window A never notices and nothing is installed
    again."""
    with two_windows(vtime, answer_pings=False, auto_ack=False) as w:
        program = w.program()
        program.send("/label", 1)
        w.settle()
        installs = len(w.a.of_kind("display"))
        for step in range(1, 9):  # A keeps talking; B stays silent
            w.advance(0.5)
            w.a.send("/slider", step)
            program.send("/label", step + 1)
            w.settle()
        removed = w.events("connection.window_removed")
        assert [(e["comm_id"], e["reason"], e["windows"]) for e in removed] == [
            ("b-comm-1", "stale", 1)
        ]
        assert w.router.link_state().windows == ("a-comm-1",)
        assert w.a.received("/label") == list(range(1, 10))
        assert len(w.a.of_kind("display")) == installs  # no new install
        program.poll()
        assert program.received("/slider") == []  # (not subscribed: dropped, A unaffected)


def test_sync_waits_for_every_window_and_a_closed_window_stops_counting(vtime):
    with two_windows(vtime, auto_ack=False) as w:
        program = w.program()
        program.send("/a", 1)
        sync_id = program.sync()
        w.settle()
        program.poll()
        assert program.acks == {}  # A acknowledged; B has not yet
        w.b.ack()
        w.settle()
        program.poll()
        assert program.acks == {sync_id: None}
        program.send("/a", 2)
        second = program.sync()
        w.settle()
        w.b.close()  # B's tab closes before acknowledging: the sync spans A alone now
        w.settle()
        program.poll()
        assert program.acks[second] is None


def test_a_read_asks_another_window_when_the_first_holds_nothing(vtime):
    with two_windows(vtime) as w:
        program = w.program()
        w.b.synced["/x"] = 5  # only window B has a synced variable at /x
        w.a.send("/other", 0)  # A was heard from last: it is asked first
        program.subscribe("/x")  # as the program API does before a read
        w.settle()
        program.read("/x")
        w.settle()
        program.poll()
        assert program.received("/x") == [5]
        assert program.read_failures == []
        assert [e["comm_id"] for e in w.events("connection.read_asked_again")] == ["b-comm-1"]
        program.subscribe("/nowhere")
        program.read("/nowhere")
        w.settle()
        program.poll()
        assert [a for a, _ in program.read_failures] == ["/nowhere"]


def test_heartbeat_is_true_when_any_window_answers(vtime):
    with two_windows(vtime, answer_pings=False) as w:
        promise = w.router.heartbeat()
        w.settle()
        assert promise.get(1.0) is True
        assert len(w.events("heartbeat.ping_sent")) == 2  # one per window


def test_the_same_page_reopening_replaces_its_own_window_only(vtime):
    """Window B's hub opens a new comm (its websocket dropped) with `resume`: B's old comm is
    closed and its stream goes on; window A is untouched."""
    with two_windows(vtime) as w:
        program = w.program()
        program.send("/label", "x")
        w.settle()
        w.b.open()  # resume: the stream B has seen
        w.settle()
        assert w.router.link_state().windows == ("a-comm-1", "b-comm-2")
        [close] = w.events("connection.close_sent")
        assert close["comm_id"] == "b-comm-1"
        program.send("/label", "y")
        w.settle()
        assert w.b.received("/label") == ["x", "y"]  # no duplicate, no snapshot
        assert w.a.received("/label") == ["x", "y"]


def test_the_only_window_found_dead_is_taken_back_when_it_speaks(vtime):
    """A page slow enough to be declared dead (a loaded machine, a flooded IOPub) answers
    within the grace period: its window comes back with its stream; the install started for a
    new page is erased and nothing is lost."""
    log = Recorder()
    page = InMemoryFrontEnd(KERNEL_ID, answer_pings=False, auto_ack=False, auto_open=False)
    router = CommRouter(KERNEL_ID, page, settings=quiet_settings(), time=vtime, log_sinks=[log])
    page.connect(router)
    router.start()
    try:
        router.ensure_front_end()
        vtime.settle()
        page.open()
        vtime.settle()
        program = InMemoryProgram("prog-1")
        router.program_started("prog-1", program.link)
        program.send("/n", 1, stream=True)
        vtime.settle()
        for _ in range(8):
            vtime.advance(0.5)
            program.send("/n", 2, stream=True)
            vtime.settle()
        assert log.find("connection.stale")
        assert not router.link_state().opened
        page.ack()  # late, but alive
        vtime.settle()
        [revived] = log.find("connection.revived")
        assert revived["comm_id"] == "comm-1"
        assert router.link_state().opened and not router.link_state().installing
        assert log.find("connection.install_display_erased")
        page.ack()
        vtime.settle()
        assert page.received("/n") == [1] + [2] * 8
    finally:
        router.stop()


def test_a_window_found_dead_while_another_lives_comes_back_when_it_speaks(vtime):
    """Window B was only slow: declared dead and removed while A lives, it then speaks on its
    comm (it never heard of the removal). It is taken back: what it sends reaches the program,
    and it is sent the current state it missed."""
    with two_windows(vtime, answer_pings=False, auto_ack=False) as w:
        program = w.program()
        program.subscribe("/slider")
        program.send("/label", 1)
        w.settle()
        for step in range(8):  # B silent: probed, found dead, removed
            w.advance(0.5)
            w.a.send("/other", step)
            w.settle()
        assert w.router.link_state().windows == ("a-comm-1",)
        program.send("/label", "while B was away")
        w.settle()
        w.b.auto_ack = True
        w.b.send("/slider", 9)  # B speaks again
        w.settle()
        program.poll()
        assert program.received("/slider") == [9]
        [revived] = w.events("connection.revived")
        assert revived["comm_id"] == "b-comm-1"
        assert w.router.link_state().windows == ("a-comm-1", "b-comm-1")
        assert w.b.received("/label")[-1] == "while B was away"
        assert w.a.received("/slider") == [9]


def test_a_page_whose_stream_went_to_another_window_is_linked_again_on_a_new_stream(vtime):
    """B was the last window, found dead; A then opened and took what waited. B speaks on its
    old comm: it gets an open ack on that comm with a new stream numbered above what it saw (so
    its old acks acknowledge nothing there), then the current state; its value reaches the
    program and A."""
    log = Recorder()
    a = InMemoryFrontEnd(KERNEL_ID, name="a-", auto_open=False)
    b = InMemoryFrontEnd(KERNEL_ID, name="b-", auto_open=False, answer_pings=False)
    pages = InMemoryWindows(a, b)
    router = CommRouter(KERNEL_ID, pages, settings=quiet_settings(), time=vtime, log_sinks=[log])
    pages.connect(router)
    router.start()
    try:
        router.ensure_front_end()
        vtime.settle()
        b.open()
        program = InMemoryProgram("prog-1")
        router.program_started("prog-1", program.link)
        program.subscribe("/slider")
        program.send("/label", "one")
        vtime.settle()
        b.auto_ack = False
        for _ in range(8):  # B silent: found dead, the link installed again
            vtime.advance(0.5)
            program.send("/label", "two")
            vtime.settle()
        assert log.find("connection.stale", comm_id="b-comm-1")
        a.open()  # a page runs the install: it takes what waited
        vtime.settle()
        assert a.received("/label")[-1] == "two"
        b.auto_ack = True
        b.send("/slider", 4)  # B, alive after all, on its old comm
        vtime.settle()
        [relinked] = log.find("connection.relinked")
        assert relinked["comm_id"] == "b-comm-1" and relinked["next_seq"] > 1
        program.poll()
        assert program.received("/slider") == [4]
        assert router.link_state().windows == ("a-comm-1", "b-comm-1")
        assert b.received("/label")[-1] == "two"  # the current state on its new stream
        assert a.received("/slider") == [4]
        program.send("/label", "three")
        vtime.settle()
        assert a.received("/label")[-1] == b.received("/label")[-1] == "three"
    finally:
        router.stop()


def test_a_sync_only_a_removed_window_held_waits_for_the_window_still_open(vtime):
    """A sync called while only B was open; A opened after; B is found dead before it
    acknowledged: the sync waits for A (which is sent what B was owed) instead of returning
    at once over values no window has."""
    with two_windows(vtime, answer_pings=False, auto_ack=False) as w:
        program = w.program()
        w.router.handle_comm_close({"comm_id": "a-comm-1", "data": {}})  # only B now
        w.settle()
        program.send("/a", 1)
        sync_id = program.sync()
        w.settle()
        w.a.auto_ack = False
        w.a.open()  # A opens after the sync
        w.settle()
        for _ in range(8):  # B silent until found dead
            w.advance(0.5)
            w.settle()
        assert w.events("connection.window_removed")[-1]["comm_id"] == "b-comm-1"
        program.poll()
        assert sync_id not in program.acks  # A has not acknowledged /a yet
        w.a.ack()
        w.settle()
        program.poll()
        assert program.acks[sync_id] is None
