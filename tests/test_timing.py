"""The injected clock and scheduler: virtual time and the production timer thread."""

from __future__ import annotations

import threading

import pytest

from commrouter.timing import MonotonicClock, Scheduler, ThreadScheduler, VirtualTime


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
