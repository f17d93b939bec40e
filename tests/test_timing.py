"""The injected clock and scheduler: virtual time and the production timer thread."""

from __future__ import annotations

import threading

import pytest

from commrouter.timing import MonotonicClock, Scheduler, ThreadScheduler, Timer, VirtualTime


class Inbox:
    def __init__(self) -> None:
        self.got: list[object] = []
        self.event = threading.Event()

    def tell(self, message: object) -> None:
        self.got.append(message)
        self.event.set()


def test_virtual_time_fires_timers_in_deadline_order_and_only_when_due(vtime: VirtualTime):
    inbox = Inbox()
    vtime.scheduler.call_later(0.5, inbox, "b")
    vtime.scheduler.call_later(0.25, inbox, "a")
    cancelled = vtime.scheduler.call_later(0.3, inbox, "never")
    cancelled.cancel()
    vtime.advance(0.249)
    assert inbox.got == []
    vtime.advance(0.001)
    assert inbox.got == ["a"]
    vtime.advance(10)
    assert inbox.got == ["a", "b"]
    assert vtime.now() == pytest.approx(10.25)
    assert vtime.pending_timers() == 0


def test_virtual_time_never_moves_backwards(vtime: VirtualTime):
    with pytest.raises(ValueError, match="forward"):
        vtime.advance(-1)


def test_timers_scheduled_by_a_timer_fire_within_the_same_advance(vtime: VirtualTime):
    fired: list[float] = []

    class Chain:
        def tell(self, message: object) -> None:
            fired.append(vtime.now())
            if len(fired) < 3:
                vtime.scheduler.call_later(1.0, self, "again")

    vtime.scheduler.call_later(1.0, Chain(), "start")
    vtime.advance(5.0)
    assert fired == pytest.approx([1.0, 2.0, 3.0])


def test_frozen_clock_reads_the_factory_from_any_thread(vtime: VirtualTime):
    vtime.advance(2.5)
    seen: list[float] = []
    thread = threading.Thread(target=lambda: seen.append(vtime.clock.now()))
    thread.start()
    thread.join(5)
    assert seen == [pytest.approx(2.5)]


def test_move_to_moves_the_clock_forward_only_and_fires_nothing(vtime: VirtualTime):
    inbox = Inbox()
    vtime.scheduler.call_later(1.0, inbox, "due")
    vtime.move_to(2.5)
    assert vtime.now() == pytest.approx(2.5)
    assert inbox.got == [] and vtime.pending_timers() == 1  # due, but step or advance fires it
    vtime.move_to(1.0)  # never backward
    assert vtime.now() == pytest.approx(2.5)
    vtime.advance(0)
    assert inbox.got == ["due"]


def test_step_fires_only_the_earliest_deadline_not_after_until(vtime: VirtualTime):
    inbox = Inbox()
    vtime.scheduler.call_later(1.0, inbox, "a1")
    vtime.scheduler.call_later(2.0, inbox, "b")
    vtime.scheduler.call_later(1.0, inbox, "a2")
    assert vtime.step(until=0.5) is False  # the earliest deadline is after `until`
    assert vtime.now() == 0.0 and inbox.got == []
    assert vtime.step(until=10.0) is True
    assert inbox.got == ["a1", "a2"]  # that deadline's timers, in creation order; not "b"
    assert vtime.now() == pytest.approx(1.0)
    assert vtime.step(until=2.0) is True  # a deadline at `until` is not after it
    assert inbox.got == ["a1", "a2", "b"] and vtime.now() == pytest.approx(2.0)
    assert vtime.step(until=100.0) is False  # nothing left
    assert vtime.now() == pytest.approx(2.0)


def test_step_hands_timers_over_one_at_a_time(vtime: VirtualTime):
    fired: list[object] = []
    inbox = Inbox()

    class Canceller:
        def tell(self, message: object) -> None:
            later.cancel()
            vtime.scheduler.call_later(0.0, inbox, "same instant, next step")

    vtime.scheduler.call_later(1.0, Canceller(), "first")
    later = vtime.scheduler.call_later(1.0, inbox, "cancelled by the first")  # same deadline

    def fire(timer: Timer) -> None:
        fired.append(timer.message)
        timer.target.tell(timer.message)

    assert vtime.step(10.0, fire) is True
    assert fired == ["first"]  # the other one of that deadline was cancelled by the first
    assert inbox.got == []  # what the first scheduled waits for the next step
    assert vtime.step(10.0, fire) is True
    assert fired == ["first", "same instant, next step"]
    assert inbox.got == ["same instant, next step"] and vtime.now() == pytest.approx(1.0)


def test_step_settles_after_each_timer(vtime: VirtualTime):
    """A timer of the same deadline fires only once the actors handled the one before."""
    handled: list[object] = []
    seen: list[list[object]] = []
    second_told = threading.Event()

    class Worker:  # handles each message on its own thread, in flight until handled
        def tell(self, message: object) -> None:
            seen.append(list(handled))
            if message == "second":
                second_told.set()
            vtime.activity.begin()
            threading.Thread(target=self.handle, args=(message,)).start()

        def handle(self, message: object) -> None:
            second_told.wait(0.05)  # without a settle in between, "second" comes at once
            handled.append(message)
            vtime.activity.done()

    worker = Worker()
    vtime.scheduler.call_later(1.0, worker, "first")
    vtime.scheduler.call_later(1.0, worker, "second")
    assert vtime.step(1.0) is True
    assert seen == [[], ["first"]]
    assert handled == ["first", "second"] and vtime.activity.in_flight == 0


def test_thread_scheduler_fires_on_the_real_clock():
    scheduler = ThreadScheduler()
    scheduler.start()
    try:
        inbox = Inbox()
        scheduler.call_later(0.01, inbox, "tick")
        assert inbox.event.wait(5.0)  # bounded real wait on a real timer thread
        assert inbox.got == ["tick"]
    finally:
        scheduler.stop()


def test_base_scheduler_orders_by_deadline_then_insertion():
    scheduler = Scheduler(MonotonicClock())
    inbox = Inbox()
    scheduler.call_later(0, inbox, 1)
    scheduler.call_later(0, inbox, 2)
    assert [t.message for t in scheduler.pop_due(scheduler.clock.now() + 1)] == [1, 2]
