"""The program link's gate (issue 16): sends go straight to the Connection only while that keeps
every ordering the ProgramExecutor keeps. The gate alone, with recording slots, and the router
in real time (the gate is not used in virtual time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from commrouter import CommRouter
from commrouter.actors.program_gate import ProgramGate
from commrouter.observability import Recorder
from commrouter.router.messages import (
    GatedEvent,
    LinkCheckpoint,
    ProgramContext,
    ProgramRead,
    ProgramSend,
    ProgramSubscribe,
)
from commrouter.transports.memory import InMemoryFrontEnd, InMemoryProgram
from tests.conftest import quiet_settings

WAIT = 10.0  # bound of every real wait here


class Recording:
    """A slot that records what it is told (optionally holding the first tell until released)."""

    def __init__(self, hold: bool = False) -> None:
        self.got: list[Any] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    @property
    def ref(self) -> Any:  # as a Slot's: the actor's inbox, empty here
        return self

    @property
    def actor_inbox(self) -> Any:
        return self

    def empty(self) -> bool:
        return self.idle

    idle = True  # the actor's inbox is empty

    def tell(self, message: Any) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)
        self.got.append(message)

    def tell_urgent(self, message: Any) -> None:
        self.got.append(message)


class NoLog:
    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass


def gate_with(connection: Recording | None = None) -> tuple[ProgramGate, Recording, Recording]:
    executor, connection = Recording(), connection or Recording()
    gate = ProgramGate("p", "cell-parent", executor, connection, NoLog())  # type: ignore[arg-type]
    return gate, executor, connection


def test_a_send_goes_straight_to_the_connection_only_when_the_executor_caught_up():
    gate, executor, connection = gate_with()
    gate(ProgramSend("p", "/a", 1))
    assert connection.got == [ProgramSend("p", "/a", 1, parent="cell-parent")]
    read = ProgramRead("p", "/r")
    gate(read)  # not a send: through the executor
    gate(ProgramSend("p", "/a", 2))  # the read is not handled yet: behind it, through the executor
    assert [type(m) for m in executor.got] == [GatedEvent, GatedEvent]
    assert [m.event for m in executor.got] == [read, ProgramSend("p", "/a", 2)]
    gate.handled(False)
    gate(ProgramSend("p", "/a", 3))  # one of two handled: still behind
    gate.handled(False)
    gate.handled(False)
    gate(ProgramSend("p", "/a", 4))  # all three handled: straight
    assert [m.value for m in connection.got] == [1, 4]
    assert gate.direct == 2


def test_a_send_goes_through_the_executor_while_the_connection_has_work_waiting():
    gate, executor, connection = gate_with()
    connection.idle = False  # under load: the executor hands the Connection bursts
    gate(ProgramSend("p", "/a", 1))
    assert connection.got == [] and [m.event.value for m in executor.got] == [1]
    gate.handled(False)
    connection.idle = True
    gate(ProgramSend("p", "/a", 2))
    assert [m.value for m in connection.got] == [2]


def test_a_subscribe_holds_every_send_after_it_until_its_route_is_ready():
    gate, executor, connection = gate_with()
    gate(ProgramSubscribe("p", "/s"))
    gate.handled(True)  # handled, its route not confirmed yet
    gate(ProgramSend("p", "/a", 1))
    gate.handled(True)
    gate(ProgramSend("p", "/a", 2))
    gate.handled(True)
    assert connection.got == [] and len(executor.got) == 3
    gate.routes_ready()
    gate(ProgramSend("p", "/a", 3))
    assert [m.value for m in connection.got] == [3]


def test_checkpoints_go_through_the_executor():
    gate, executor, connection = gate_with()
    checkpoint = LinkCheckpoint("p", 4, None)  # type: ignore[arg-type]
    gate(checkpoint)
    assert [m.event for m in executor.got] == [checkpoint] and connection.got == []


def test_after_close_every_send_goes_to_the_executor_which_drops_it():
    gate, executor, connection = gate_with()
    gate.close()
    gate(ProgramSend("p", "/a", 1))
    assert connection.got == [] and [m.event.value for m in executor.got] == [1]


def test_a_send_told_while_the_program_finishes_lands_before_its_context_ends():
    """The finish race: the link's thread is telling a send straight to the Connection when the
    executor finishes the program. The executor's close waits for the gate, so the Connection
    gets the send before `ProgramContext(None)`, never after."""
    connection = Recording(hold=True)
    gate, _, _ = gate_with(connection)
    link = threading.Thread(target=gate, args=(ProgramSend("p", "/a", 1),))
    link.start()
    assert connection.entered.wait(WAIT)  # the send is being told, under the gate's lock

    def finish() -> None:  # what ProgramExecutor._finish does, in this order
        gate.close()
        connection.got.append(ProgramContext(None, None))

    executor_thread = threading.Thread(target=finish)
    executor_thread.start()
    executor_thread.join(0.2)
    assert executor_thread.is_alive()  # held by the gate while the send is told
    connection.release.set()
    link.join(WAIT)
    executor_thread.join(WAIT)
    assert connection.got == [
        ProgramSend("p", "/a", 1, parent="cell-parent"),
        ProgramContext(None, None),
    ]


# --------------------------------------------------------------------- the router, real time


@pytest.fixture
def live() -> Iterator[tuple[CommRouter, InMemoryFrontEnd, Recorder]]:
    fe, log = InMemoryFrontEnd("k"), Recorder()
    settings = quiet_settings(
        flow={"max_messages_per_second": 100_000}, program={"direct_sends": True}
    )
    router = CommRouter("k", fe, settings=settings, log_sinks=[log]).start()
    fe.connect(router)
    try:
        assert router.ensure_front_end().get(WAIT) is True
        yield router, fe, log
    finally:
        router.stop()


def eventually(predicate: Any) -> None:
    pause = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("not within the bound")


def numbered_items(fe: InMemoryFrontEnd) -> list[dict[str, Any]]:
    """What the page received, numbered items in the order of their numbers."""
    items: dict[int, dict[str, Any]] = {}
    for p in fe.of_kind("comm_msg"):
        if "seq" not in p.data:
            continue
        batch = p.data.get("batch")
        for i, item in enumerate(batch if isinstance(batch, list) else [p.data]):
            items.setdefault(p.data["seq"] + i, item)
    return [items[n] for n in sorted(items)]


def test_in_real_time_sends_reads_and_subscribes_reach_the_page_in_program_order(live):
    """The `test_an_answer_never_overtakes_the_route_of_the_subscribe_before_it` family in real
    time, with sends between: sends that go straight to the Connection never overtake what the
    executor still forwards, and no read's answer overtakes its subscribe's route."""
    router, fe, log = live
    program = InMemoryProgram("p")
    router.program_started("p", program.link)
    executor = router._slots["program_executor"]
    eventually(lambda: executor.state.gate is not None)
    gate = executor.state.gate
    for n in range(50):  # a value alone on its way (the Connection idle) goes straight there
        program.send("/alone", n)
        eventually(lambda n=n: fe.received("/alone")[-1:] == [n])
        eventually(lambda: router.link_state().in_flight == 0)
        if gate.direct:
            break
    assert gate.direct > 0
    expected: list[tuple[str, Any]] = []
    for i in range(150):
        fe.synced[f"/var/{i}"] = i
        program.send("/stream", i, stream=True)
        program.subscribe(f"/var/{i}")
        program.read(f"/var/{i}")
        program.send("/stream", -i, stream=True)
        program.send(f"/state/{i}", i)
        expected += [("/stream", i), (f"/var/{i}", "read"), ("/stream", -i), (f"/state/{i}", i)]
    eventually(lambda: len(numbered_items(fe)) == len(expected) + len(fe.received("/alone")))
    got = [
        (item["address"], "read" if item.get("read_request") else item["value"])
        for item in numbered_items(fe)
        if item["address"] != "/alone"
    ]
    assert got == expected
    eventually(lambda: program.poll() == [] and len(program.values) == 150)
    assert program.values == {f"/var/{i}": [i] for i in range(150)}
    assert log.find("router.dropped") == []


def test_in_real_time_a_program_finished_mid_flood_reaches_the_page_as_a_prefix(live):
    """The finish race with the whole router: what the page gets of a flood cut by the end of
    its program is a prefix, and nothing the program sends once it is finished gets through."""
    router, fe, log = live
    program = InMemoryProgram("p")
    router.program_started("p", program.link)
    started = threading.Event()

    def flood() -> None:
        for i in range(3000):
            program.send("/flood", i, stream=True)
            if i == 100:
                started.set()

    thread = threading.Thread(target=flood)
    thread.start()
    assert started.wait(WAIT)
    router.program_finished("p")
    thread.join(WAIT)
    eventually(lambda: bool(log.find("program.finished", program_id="p")))
    program.send("/after", 1)  # finished: the gate is closed, the executor drops it
    eventually(lambda: bool(log.find("program.request_dropped", address="/after")))
    eventually(lambda: router.link_state().in_flight == 0 and router.link_state().queued == 0)
    got = fe.received("/flood")
    dropped = [e for e in log.find("program.request_dropped") if e.get("address") == "/flood"]
    assert got == list(range(len(got))) and len(got) >= 101
    assert len(got) + len(dropped) == 3000
    assert fe.received("/after") == []


def test_without_direct_sends_every_request_goes_through_the_executor():
    fe = InMemoryFrontEnd("k")
    router = CommRouter("k", fe, settings=quiet_settings(program={"direct_sends": False})).start()
    fe.connect(router)
    try:
        assert router.ensure_front_end().get(WAIT) is True
        program = InMemoryProgram("p")
        router.program_started("p", program.link)
        program.send("/a", 1)
        eventually(lambda: fe.received("/a") == [1])
        assert router._slots["program_executor"].state.gate is None
    finally:
        router.stop()


def test_in_virtual_time_no_gate_is_used(world):
    world.open_link()
    program = world.start_program()
    program.send("/a", 1)
    world.settle()
    assert world.router._slots["program_executor"].state.gate is None
    assert world.front_end.received("/a") == [1]


def test_a_gated_checkpoint_that_cannot_be_handled_fails_its_waiter():
    from commrouter.actors.runtime import Promise, answer_failure

    reply: Promise[int] = Promise()
    gated = GatedEvent(LinkCheckpoint("p", 4, reply), None)
    answer_failure(gated, RuntimeError("stopping"))  # as a stopping or given-up executor does
    assert isinstance(reply.error, RuntimeError)
