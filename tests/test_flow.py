"""Flow control toward the page (issue 11): numbering, acknowledgements, the window, batches,
merging versus streams, resends, queue survival across re-installs and reloads, bounded drops
that sync reports, and headless runs. All in virtual time, on the in-memory page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from commrouter.timing.virtual import VirtualTime
from tests.conftest import World, numbered_messages, quiet_settings, running_world

messages = numbered_messages


def test_values_are_numbered_and_acknowledged(world: World):
    world.open_link()
    program = world.start_program()
    for i in range(3):
        program.send(f"/v/{i}", i)
        world.settle()
    assert [m["seq"] for m in messages(world)] == [1, 2, 3]
    state = world.router.link_state()
    assert state.acked == 3 and state.in_flight == 0


def test_at_most_a_window_of_values_is_unacknowledged(vtime):
    with running_world(vtime, quiet_settings(flow={"window": 4}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(10):
            program.send("/s", i, stream=True)
        world.settle()
        assert world.front_end.received("/s") == [0, 1, 2, 3]
        state = world.router.link_state()
        assert state.in_flight == 4 and state.queued == 6
        world.front_end.ack(2)  # the page has 1 and 2
        world.settle()
        assert world.front_end.received("/s") == [0, 1, 2, 3, 4, 5]
        world.front_end.ack()
        world.settle()
        world.front_end.ack()
        world.settle()
        assert world.front_end.received("/s") == list(range(10))


@contextmanager
def lagging_page(vtime: VirtualTime, window: int, streamed: int) -> Iterator[World]:
    """A page that acks only when told, sent `streamed` stream values on `/s`."""
    with running_world(vtime, quiet_settings(flow={"window": window}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(streamed):
            program.send("/s", i, stream=True)
        world.settle()
        yield world


def test_a_nearly_full_window_waits_for_half_of_it_rather_than_send_a_value_per_ack(vtime):
    """Sender-side silly-window avoidance: with a long queue, an ack that frees one slot does
    not send a one-value message into it (else every message would carry one value and the
    page's message rate would bound throughput, as measured with a slow reader)."""
    with lagging_page(vtime, window=8, streamed=30) as world:
        assert world.front_end.received("/s") == list(range(8))
        sent = len(messages(world))
        for acked in (1, 2, 3):  # up to 3 free slots of 8: nothing goes
            world.front_end.ack(acked)
            world.settle()
        assert len(messages(world)) == sent
        world.front_end.ack(4)  # half the window free: one batch of 4
        world.settle()
        assert len(messages(world)) == sent + 1
        assert [item["value"] for item in messages(world)[-1]["batch"]] == [8, 9, 10, 11]
        for _ in range(10):  # the rest, and a tail that fits goes at once
            world.front_end.ack()
            world.settle()
        assert world.front_end.received("/s") == list(range(30))


def test_what_fits_in_a_nearly_full_window_goes_at_once(vtime):
    with lagging_page(vtime, window=8, streamed=9) as world:
        world.front_end.ack(1)  # one slot free, one value waiting: no reason to wait
        world.settle()
        assert world.front_end.received("/s") == list(range(9))


def test_what_waits_goes_as_one_batch(vtime):
    with running_world(vtime, quiet_settings(flow={"window": 2}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(6):
            program.send(f"/b/{i}", i)
        world.settle()
        world.front_end.ack()  # room for 2 more: sent together
        world.settle()
        last = messages(world)[-1]
        assert last == {
            "seq": 3,
            "batch": [{"address": "/b/2", "value": 2}, {"address": "/b/3", "value": 3}],
        }


def test_while_the_page_lags_a_state_address_keeps_only_its_latest_value(vtime):
    with running_world(vtime, quiet_settings(flow={"window": 1}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(1000):
            program.send("/label", f"{i} / 1000")
        world.settle()
        world.front_end.ack()
        world.settle()
        assert world.front_end.received("/label") == ["0 / 1000", "999 / 1000"]
        assert world.router.link_state().merged == 998
        assert world.log.find("connection.values_dropped") == []


def test_stream_values_are_never_merged(vtime):
    with running_world(vtime, quiet_settings(flow={"window": 1}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(5):
            program.send("/log", i, stream=True)
        world.settle()
        for _ in range(5):
            world.front_end.ack()
            world.settle()
        assert world.front_end.received("/log") == [0, 1, 2, 3, 4]
        assert world.router.link_state().merged == 0


def test_the_message_rate_toward_the_page_is_bounded(vtime):
    """A program sending faster than flow.max_messages_per_second: the excess waits and goes
    out as batches, so the number of comm messages stays under the rate."""
    with running_world(vtime, quiet_settings(flow={"max_messages_per_second": 40})) as world:
        world.open_link()
        program = world.start_program()
        for second in range(3):
            for i in range(200):
                program.send(f"/n/{i}", second)
                world.settle()
            world.advance(1.0)
        assert all(world.front_end.received(f"/n/{i}")[-1] == 2 for i in range(200))
        assert len(messages(world)) <= 10 + 3 * 40  # the burst, then the rate


def test_a_value_lost_on_the_way_is_sent_again(vtime):
    with running_world(vtime, auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        program.send("/a", 1)
        world.settle()
        world.front_end.numbering.received = 0  # as if IOPub dropped message 1
        world.front_end.values.clear()
        world.advance(1.0)  # flow.ack_timeout without an ack: sent again
        assert world.front_end.received("/a") == [1]
        [resent] = world.log.find("connection.resent")
        assert resent["count"] == 1 and resent["first_seq"] == 1
        world.front_end.ack()
        world.settle()
        world.advance(10.0)
        assert len(world.log.find("connection.resent")) == 1


def test_the_page_ignores_duplicates_and_gaps(world: World):
    world.open_link()
    fe = world.front_end
    fe.comm_msg(fe.comm_id, {"seq": 1, "address": "/x", "value": "a"}, None)
    fe.comm_msg(fe.comm_id, {"seq": 1, "address": "/x", "value": "a"}, None)  # resent
    fe.comm_msg(fe.comm_id, {"seq": 3, "address": "/x", "value": "c"}, None)  # 2 was lost
    batch = [{"address": "/x", "value": "b"}, {"address": "/x", "value": "c"}]
    fe.comm_msg(fe.comm_id, {"seq": 2, "batch": batch}, None)
    assert fe.received("/x") == ["a", "b", "c"] and fe.gaps == 1


def test_values_queued_through_a_reinstall_arrive_in_order(vtime):
    with running_world(vtime, auto_open=False) as world:
        world.front_end.open()
        world.settle()
        program = world.start_program()
        world.front_end.comm_id = None  # the page went away without a word
        world.front_end.answer_pings = False
        world.advance(1.5)
        for i in range(5):
            program.send("/s", i, stream=True)
        world.advance(4.0)  # the link is declared dead; the install is not answered yet
        assert world.log.find("connection.stale")
        world.front_end.reload()
        world.front_end.open()  # the page came back (a reload runs the script again)
        world.settle()
        assert world.front_end.received("/s") == [0, 1, 2, 3, 4]
        assert world.router.link_state().dropped == 0


def four_in_flight(world: World) -> None:
    """A linked page that has received stream values 0..3 and acknowledged none of them."""
    world.open_link()
    program = world.start_program()
    for i in range(4):
        program.send("/s", i, stream=True)
    world.settle()


def test_a_hub_that_resumes_gets_no_duplicates(vtime):
    with running_world(vtime, auto_ack=False) as world:
        four_in_flight(world)
        world.front_end.ack(2)  # the page acknowledged 2 of the 4 it received
        world.settle()
        world.front_end.open()  # the same hub opens a new comm: resume says it has 4
        world.settle()
        assert world.front_end.received("/s") == [0, 1, 2, 3]
        assert world.router.link_state().in_flight == 0


def test_a_reloaded_page_gets_what_was_never_acknowledged(vtime):
    with running_world(vtime, auto_ack=False) as world:
        four_in_flight(world)
        world.front_end.ack(1)
        world.settle()
        world.front_end.reload()  # a new page: no resume
        world.front_end.open()
        world.settle()
        assert world.front_end.received("/s") == [1, 2, 3]


def test_sync_waits_for_the_page_acknowledgement(vtime):
    with running_world(vtime, auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        program.send("/a", 1)
        sync_id = program.sync()
        world.settle()
        program.poll()
        assert program.acks == {}  # published, not acknowledged
        world.front_end.ack()
        world.settle()
        program.poll()
        assert program.acks == {sync_id: None}


def test_sync_after_dropped_values_names_them(vtime):
    settings = quiet_settings(connection={"queue_max_age": 5.0, "wait_for_connection_timeout": 3.0})
    with running_world(vtime, settings) as world:
        world.open_link()
        program = world.start_program()
        world.front_end.auto_open = False
        world.front_end.close()  # the page is gone
        world.settle()
        program.send("/a", 1)
        program.send("/b", 1, stream=True)
        program.send("/b", 2, stream=True)
        world.advance(6.0)  # past connection.queue_max_age with no page
        sync_id = program.sync()
        world.settle()
        program.poll()
        error = program.acks[sync_id] or ""
        assert "3 values" in error and "/b x2" in error and "/a" in error
        dropped = {e["address"]: e["count"] for e in world.log.find("connection.values_dropped")}
        assert dropped == {"/a": 1, "/b": 2}
        assert all(e["level"] == "warning" for e in world.log.find("connection.values_dropped"))


def test_values_beyond_the_queue_limit_are_dropped_oldest_first_and_counted(vtime):
    settings = quiet_settings(connection={"queue_limit": 10})
    with running_world(vtime, settings, auto_open=False) as world:
        world.front_end.open()
        world.settle()
        program = world.start_program()
        world.front_end.comm_id = None
        world.router.close()  # no comm open: everything waits
        world.settle()
        for i in range(20):
            program.send("/s", i, stream=True)
        sync_id = program.sync()
        world.settle()
        world.front_end.open()
        world.settle()
        program.poll()
        received = world.front_end.received("/s")
        assert received == list(range(20 - len(received), 20))
        state = world.router.link_state()
        assert state.dropped == 20 - len(received)
        assert f"{state.dropped} values" in (program.acks[sync_id] or "")


def test_a_failed_install_fails_the_sync_but_keeps_the_values(vtime):
    with running_world(vtime) as world:
        world.open_link()
        program = world.start_program()
        world.front_end.auto_open = False
        world.front_end.close()
        world.settle()
        program.send("/s", 1, stream=True)
        sync_id = program.sync()
        world.advance(3.0)  # the install is not answered
        program.poll()
        assert "did not open the comm" in (program.acks[sync_id] or "")
        assert "1 values are still held" in (program.acks[sync_id] or "")
        world.front_end.open()
        world.settle()
        assert world.front_end.received("/s") == [1]


def test_forced_headless_never_installs_and_syncs_at_once(vtime):
    with running_world(vtime, quiet_settings(connection={"headless": True})) as world:
        program = world.start_program()
        program.send("/a", 1)
        sync_id = program.sync()
        world.settle()
        program.poll()
        assert program.acks == {sync_id: None}
        assert world.front_end.of_kind("display") == []
        warnings = [p for p in world.front_end.of_kind("stream") if p.data["name"] == "stderr"]
        assert len(warnings) == 1 and "headless" in warnings[0].data["text"]
        assert world.router.link_state().not_shown == 1


def test_a_page_that_opens_after_a_headless_start_ends_it(vtime):
    with running_world(vtime, auto_open=False) as world:
        program = world.start_program()
        program.send("/a", 1)
        world.advance(3.0)
        assert world.router.link_state().headless
        world.front_end.open()
        world.settle()
        program.send("/a", 2)
        world.settle()
        assert not world.router.link_state().headless
        assert world.front_end.received("/a") == [1, 2]  # the state it missed, then the new


def test_a_batch_from_the_page_reaches_the_program_in_order(world: World):
    world.open_link()
    program = world.start_program()
    program.subscribe("/in")
    world.settle()
    world.front_end.send_batch([("/in", 1), ("/in", 2), ("#ack", 0), ("/in", 3)])
    world.settle()
    program.poll()
    assert program.received("/in") == [1, 2, 3]


def two_sent_one_acked(world: World) -> None:
    """Values 1 and 2 published; the page acknowledged 1."""
    world.open_link()
    program = world.start_program()
    program.send("/a", 1)
    program.send("/b", 2)
    world.settle()
    world.front_end.ack(1)
    world.settle()


def test_an_ack_that_says_gap_sends_again_at_once(vtime):
    """The page saw a number skipped and acked again what it had, saying `gap`: no waiting for
    the timer."""
    with running_world(vtime, auto_ack=False) as world:
        two_sent_one_acked(world)
        world.front_end.ack(1, gap=True)  # message 2 never came
        world.front_end.ack(1, gap=True)  # and again: still one resend per ack value
        world.settle()
        [resent] = world.log.find("connection.resent")
        assert resent["first_seq"] == 2 and "again" in resent["reason"]


def test_an_ack_repeated_without_gap_sends_nothing_again(vtime):
    """A page that took a resend it already had acks the same number again: that is no gap,
    and sending on it would make each resend cause the next (every window sent twice)."""
    with running_world(vtime, auto_ack=False) as world:
        two_sent_one_acked(world)
        world.front_end.ack(1)  # the duplicates of a resend
        world.settle()
        assert not world.log.find("connection.resent")


def test_the_resend_timer_follows_the_measured_ack_round_trip(vtime):
    """A page that acks after 0.8 s: the next values wait 1.6 s before being sent again."""
    with running_world(vtime, auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        program.send("/a", 1)
        world.settle()
        world.advance(0.8)
        world.front_end.ack()
        world.settle()
        program.send("/a", 2)
        world.settle()
        world.advance(1.5)
        assert world.log.find("connection.resent") == []
        world.advance(0.2)  # 1.6 s after it was sent
        assert len(world.log.find("connection.resent")) == 1


def test_a_page_whose_acks_wait_behind_the_cell_gets_syncs_answered_once_sent(vtime):
    """ipykernel without a subshell queues the page's messages behind the running cell: a sync
    there cannot wait for acks, so it is answered once everything before it was sent."""
    with running_world(vtime, auto_open=False, auto_ack=False) as world:
        world.front_end.comm_id = "main-shell"
        content = {"comm_id": "main-shell", "target_name": "commrouter"}
        content["data"] = {"kernel_id": world.front_end.kernel_id}
        world.router.handle_comm_open(content, concurrent=False)
        world.settle()
        program = world.start_program()
        program.send("/a", 1)
        sync_id = program.sync()
        world.settle()
        program.poll()
        assert program.acks == {sync_id: None}
        assert world.router.link_state().in_flight == 1  # its ack comes after the cell
        world.advance(10.0)
        assert world.log.find("connection.resent") == []  # and no resends meanwhile


def test_a_headless_run_installs_again_only_when_asked_or_after_the_retry(vtime):
    """Every install would leave a script in the saved notebook when no page erases it: once
    headless, uses of the link do not install; the program's start() and the host do, and a
    use `connection.headless_retry` after the last attempt does (a page that missed it)."""
    with running_world(vtime, auto_open=False) as world:
        program = world.start_program()
        program.send("/a", 1)
        world.advance(3.0)  # the install times out: headless
        program.send("/a", 2)
        program.subscribe("/b")
        world.advance(3.0)
        installs = [p for p in world.front_end.of_kind("display")]
        assert len(installs) == 1
        program.start_link()
        world.settle()
        assert len(world.front_end.of_kind("display")) == 2
        world.advance(29.0)
        program.send("/a", 3)  # 29 s after the last attempt: not yet
        world.settle()
        assert len(world.front_end.of_kind("display")) == 2
        world.advance(1.0)
        program.send("/a", 4)  # 30 s after: another script, for a page that missed it
        world.settle()
        assert len(world.front_end.of_kind("display")) == 3
