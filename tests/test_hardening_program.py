"""Bad values and faults between the router and a real cell program (a subprocess on named
pipes): a host that hands the router NaN, Infinity or a lone surrogate (as an embedding kernel
whose wire decoder allows them may), a flood with one such value queued in the outbox, an
executor the supervisor gives up on. Nothing crashes, nothing accepted is lost, and every run
settles (docs/reliability.md)."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commrouter.actors.runtime import Promise, RouterActor, Slot
from commrouter.router.errors import HandlerFailed, ValueNotJSON
from tests.programs.harness import WAIT, Rig, running_rig, wait_until

POISONS = [math.nan, math.inf, -math.inf, "\ud800", {"deep": [math.nan]}, ["ok", "\udfff"]]


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rig]:
    yield from running_rig(monkeypatch, tmp_path)


def ready(rig: Rig, run) -> None:
    rig.fe.wait_for(lambda: rig.fe.comm_values("/ready"))


def test_values_that_are_not_json_are_refused_at_the_pipe_and_the_rest_arrive(rig: Rig) -> None:
    good = list(range(5))
    run = rig.run("echo.py", str(len(good)))
    ready(rig, run)
    for value, poison in zip(good, POISONS, strict=False):
        rig.fe.send("/in", poison)
        rig.fe.send("/in", value)
    for poison in POISONS[len(good) :]:
        rig.fe.send("/in", poison)
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/got") == [good]
    faults = rig.log.find("program.link_fault", program_id=run.program_id)
    assert [f["reason"] for f in faults] == ["value not JSON"] * len(POISONS)
    assert not rig.log.find("actor.crashed")
    assert all(rig.router.health().values())


def test_a_poisoned_value_queued_in_the_outbox_does_not_poison_it(rig: Rig, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = rig.run("flood_in.py", str(gate))
    ready(rig, run)
    # the program is stuck on the first: the rest fill its pipe (64 KB), the link's write buffer
    # (64 KB) and then queue in the outbox; 3,000 small values only just did, so not always
    total = 10_000
    for i in range(total):
        rig.fe.send("/flood", i)
        if i == total // 2:
            rig.fe.send("/flood", math.nan)
    wait_until(lambda: rig.router.program_state().outbox > 0)
    gate.touch()
    rig.fe.send("/done", True)
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    [count] = rig.fe.comm_values("/count")
    state = rig.router.program_state()
    assert count["in_order"] and count["last"] == total - 1
    # every value accepted (the NaN too) is delivered, merged (newest kept), dropped with a log
    # line, or, the NaN, refused at the pipe with its reason, unless a newer value replaced it
    # in the outbox first: either way it poisoned nothing
    refused = [
        f
        for f in rig.log.find("program.link_fault", program_id=run.program_id)
        if f["reason"] == "value not JSON"
    ]
    assert len(refused) <= 1
    assert count["count"] + state.merged + state.dropped + len(refused) == total + 1
    assert refused or state.merged > 0
    assert not rig.log.find("actor.crashed")


def give_up_on_the_executor(rig: Rig) -> None:
    limit = rig.router.settings.actors.restart_limit
    for _ in range(limit + 1):
        rig.router.crash("program_executor")
    wait_until(lambda: rig.router.health()["program_executor"] is False)


def test_a_run_settles_when_the_executor_is_given_up(rig: Rig) -> None:
    run = rig.run("listener.py")
    rig.fe.wait_for(lambda: rig.fe.comm_values("/listening"))
    started = time.monotonic()
    give_up_on_the_executor(rig)
    assert run.wait(WAIT) == -signal.SIGKILL  # killed, its handle settled: no cell waits forever
    assert time.monotonic() - started < 5.0
    assert rig.event("program.killed", program_id=run.program_id)["reason"] == (
        "program executor given up"
    )
    later = rig.run("sender.py", "1")  # a dead letter: fails at once, does not hang
    with pytest.raises(Exception, match="not running"):
        later.wait(WAIT)
    later.interrupt()  # and signalling it neither raises nor hangs


def test_a_program_sync_is_answered_when_the_connection_is_given_up(rig: Rig) -> None:
    limit = rig.router.settings.actors.restart_limit
    for _ in range(limit + 1):
        rig.router.crash("connection")
    wait_until(lambda: rig.router.health()["connection"] is False)
    started = time.monotonic()
    run = rig.run("syncer.py")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert "SyncError" in rig.fe.output("stdout") and "not running" in rig.fe.output("stdout")
    assert time.monotonic() - started < 3.0  # answered, not left to the 5 s read timeout


@dataclasses.dataclass(frozen=True, slots=True)
class Ask:
    reply: Promise[bool]


class Faulty(RouterActor):
    """An actor whose handler has a bug."""

    name = "faulty"

    def handle_Ask(self, m: Ask) -> None:
        raise RuntimeError("a bug in a handler")


def test_a_handler_that_fails_fails_its_caller_at_once(rig: Rig) -> None:
    slot = Slot("faulty", rig.router.time.activity)
    ref = Faulty.start(rig.router._ctx, slot)
    slot.attach(ref)
    reply: Promise[bool] = Promise()
    slot.tell(Ask(reply))
    with pytest.raises(HandlerFailed, match="a bug in a handler"):
        reply.get(WAIT)
    assert rig.event("actor.crashed", actor="faulty")["dropped_message"] == "Ask"


def test_a_program_killed_during_a_flood_is_finished_ahead_of_the_queued_values(
    rig: Rig,
) -> None:
    run = rig.run("listener.py")
    rig.fe.wait_for(lambda: rig.fe.comm_values("/listening"))
    for i in range(30_000):  # the program never reads them: they pile up in the executor
        rig.fe.send("/never", i)
    killed = time.monotonic()
    run.kill()  # straight to the process group, not behind the values
    assert run.wait(WAIT) == -signal.SIGKILL
    assert time.monotonic() - killed < 2.0


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("\ud800", "lone surrogate"),
        ({"\udc00": 1}, "as a mapping key"),
        ([1, [math.inf]], "NaN or infinity"),
        ("circular", "circular"),
    ],
)
def test_a_host_send_that_is_not_json_is_refused_at_once(rig: Rig, value, named) -> None:
    if value == "circular":
        value = []
        value.append(value)
    with pytest.raises(ValueNotJSON, match=named):
        rig.router.send("/out", value)
    assert all(rig.router.health().values())


def test_stopping_overtakes_a_flood_queued_in_an_actor(rig: Rig) -> None:
    from commrouter.router.messages import DeliverToProgram

    executor = rig.router._slots["program_executor"]
    for i in range(200_000):  # far more than the executor handles in its 0.5 s of grace
        executor.tell(DeliverToProgram("/nowhere", i, None))
    started = time.monotonic()
    rig.router.stop()
    took = time.monotonic() - started
    assert rig.event("supervisor.discarding")["target"] == "program_executor"
    assert took < 3.0, f"stopping took {took:.1f} s behind the queued values"
