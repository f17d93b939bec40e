"""Drain batching (issue 16): stream values the Connection handles before its `DrainDue` comes
go out together, as one batch. In virtual time `DrainDue` comes when the actors are quiet (the
same injected events give the same batches); in real time it is told behind the inbox."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from commrouter.actors.runtime import RouterActor, Slot
from commrouter.timing import Activity, VirtualTime
from commrouter.timing.activity import UntrackedActivity
from tests.conftest import World, numbered_messages, quiet_settings, running_world

messages = numbered_messages


def test_stream_values_handled_together_go_out_as_one_batch(world: World):
    world.open_link()
    program = world.start_program()
    for i in range(5):
        program.send("/s", i, stream=True)
    world.settle()
    assert messages(world) == [
        {"seq": 1, "batch": [{"address": "/s", "value": i} for i in range(5)]}
    ]
    assert world.front_end.received("/s") == [0, 1, 2, 3, 4]
    program.send("/s", 5, stream=True)  # alone: one value, one message
    world.settle()
    assert messages(world)[-1] == {"seq": 6, "address": "/s", "value": 5}
    assert world.router.link_state().acked == 6


def test_state_values_are_not_held_for_a_drain(world: World):
    world.open_link()
    program = world.start_program()
    for i in range(3):
        program.send(f"/v/{i}", i)
    world.settle()
    assert [m.get("batch") for m in messages(world)] == [None, None, None]
    assert [m["seq"] for m in messages(world)] == [1, 2, 3]


def test_a_drain_never_holds_values_that_fill_the_window(vtime: VirtualTime):
    with running_world(vtime, quiet_settings(flow={"window": 3}), auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(7):
            program.send("/s", i, stream=True)
        world.settle()
        # the third value fills the window: the three go out at once, the rest wait for room
        assert [m["seq"] for m in messages(world)] == [1]
        assert [item["value"] for item in messages(world)[0]["batch"]] == [0, 1, 2]
        state = world.router.link_state()
        assert state.in_flight == 3 and state.queued == 4
        world.front_end.ack()
        world.settle()
        world.front_end.ack()
        world.settle()
        assert world.front_end.received("/s") == list(range(7))


def test_a_sync_after_held_stream_values_sends_them_and_waits_for_their_ack(vtime: VirtualTime):
    with running_world(vtime, auto_ack=False) as world:
        world.open_link()
        program = world.start_program()
        for i in range(3):
            program.send("/s", i, stream=True)
        sync_id = program.sync()  # handled before the drain: it sends what is held at once
        world.settle()
        assert [m["seq"] for m in messages(world)] == [1]
        assert world.front_end.received("/s") == [0, 1, 2]
        program.poll()
        assert program.acks == {}  # published, not acknowledged
        world.front_end.ack()
        world.settle()
        program.poll()
        assert program.acks == {sync_id: None}


def test_quiet_messages_are_told_before_wait_idle_returns():
    activity = Activity()
    got: list[str] = []

    class Target:
        def tell(self, message: str) -> None:
            activity.begin()
            got.append(message)
            threading.Thread(target=activity.done).start()  # handled on another thread

    activity.begin()  # a handler runs
    activity.when_quiet(Target(), "drain")
    assert got == [] and activity.in_flight == 1
    activity.done()  # the last message handled: quiet, so "drain" goes out
    activity.wait_idle(5.0)
    assert got == ["drain"] and activity.in_flight == 0


class _Recorder(RouterActor):
    name = "recorder"

    def __init__(
        self, slot: Slot, gate: threading.Event, record: list[Any], told: list[bool]
    ) -> None:
        pykka_init = super(RouterActor, self).__init__  # no ActorContext needed here
        pykka_init()
        self.slot, self.state, self._current, self._deferred = slot, None, None, None
        self.gate, self.record, self.told = gate, record, told

    def on_receive(self, message: Any) -> Any:
        if message == "first":
            self.gate.wait(5.0)  # the test queues more behind it meanwhile
            self.told.append(self.tell_self_when_drained("drain"))
        elif message == "alone":
            self.told.append(self.tell_self_when_drained("never"))
        self.record.append(message)
        return None


def _wait_for(record: list[Any], count: int) -> None:
    pause = threading.Event()
    for _ in range(500):  # bounded: 5 s
        if len(record) >= count:
            return
        pause.wait(0.01)


def test_in_real_time_the_drain_message_comes_behind_what_was_queued():
    slot = Slot("recorder", UntrackedActivity())
    gate, record, told = threading.Event(), [], []
    ref = _Recorder.start(slot, gate, record, told)
    slot.attach(ref)
    try:
        slot.tell("first")
        slot.tell("a")
        slot.tell("b")
        gate.set()
        _wait_for(record, 4)
        slot.tell("alone")  # nothing queued behind it: no drain message, act at once
        _wait_for(record, 5)
        assert record == ["first", "a", "b", "drain", "alone"]
        assert told == [True, False]
    finally:
        ref.stop(timeout=5.0)


@pytest.mark.parametrize("seed", [3, 11])
def test_the_same_seed_gives_the_same_run_with_drain_batching(seed: int):
    from commrouter.simulation.runner import run_scenario, without_ts
    from commrouter.simulation.scenario import load_scenario

    scenario = load_scenario("basic-flow")
    first = run_scenario(scenario, seed)
    assert first.passed, first.violations
    assert without_ts(first.log) == without_ts(run_scenario(scenario, seed).log)


def test_without_drain_batching_each_stream_value_goes_alone(vtime: VirtualTime):
    with running_world(vtime, quiet_settings(flow={"drain_batching": False})) as world:
        world.open_link()
        program = world.start_program()
        for i in range(4):
            program.send("/s", i, stream=True)
        world.settle()
        assert [m["seq"] for m in messages(world)] == [1, 2, 3, 4]
        assert world.front_end.received("/s") == [0, 1, 2, 3]
