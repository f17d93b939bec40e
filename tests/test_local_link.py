"""The in-process program link with a real router and the in-memory front-end: every publish
carries the parent of the request that caused it, callbacks run in the subscribing request's
context, a slow callback backs up into the router's outbox, and closing ends the program side."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from commrouter import CommRouter
from commrouter.program import LinkClosedError
from commrouter.program.local import LocalLink
from commrouter.transports.local_link import LocalProgramLink
from commrouter.transports.memory import InMemoryFrontEnd

WAIT = 10.0


class Cells:
    """A host's output context: whose output the calling thread's is (a thread-local cell)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.activated: list[Any] = []

    def current(self) -> Any:
        return getattr(self.local, "cell", None)

    @contextlib.contextmanager
    def activate(self, parent: Any) -> Iterator[None]:
        self.activated.append(parent)
        yield

    @contextlib.contextmanager
    def running(self, cell: str) -> Iterator[None]:
        self.local.cell = {"header": {"msg_id": cell}}
        try:
            yield
        finally:
            self.local.cell = None


def eventually(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)  # bounded: polling actor threads


@pytest.fixture
def world() -> Iterator[tuple[CommRouter, InMemoryFrontEnd, LocalProgramLink, LocalLink, Cells]]:
    fe = InMemoryFrontEnd("k")
    router = CommRouter("k", fe).start()
    fe.connect(router)
    cells = Cells()
    kernel_side = LocalProgramLink("session")
    router.program_started("session", kernel_side)
    program = kernel_side.program_side(cells, timeout=WAIT)
    try:
        yield router, fe, kernel_side, program, cells
    finally:
        kernel_side.close()
        router.stop()


def cell_of(published: Any) -> str | None:
    return None if published.parent is None else published.parent["header"]["msg_id"]


def test_every_publish_carries_the_parent_of_its_request(world):
    _, fe, _, program, cells = world
    with cells.running("cell-1"):
        program.send("/a", 1)
    with cells.running("cell-2"):
        program.display({"text/plain": "hi"}, display_id="d")
        program.sync()
    eventually(lambda: fe.received("/a") == [1])
    sends = [p for p in fe.of_kind("comm_msg") if p.data.get("address") == "/a"]
    assert [cell_of(p) for p in sends] == ["cell-1"]  # queued during the install, parent kept
    installs = [p for p in fe.of_kind("display") if p.display_id != "d"]
    assert [cell_of(p) for p in installs] == ["cell-1"]  # the install shows in the cell asking
    assert [cell_of(p) for p in fe.of_kind("display") if p.display_id == "d"] == ["cell-2"]


def test_callbacks_run_in_the_context_of_the_subscribing_cell(world):
    _, fe, _, program, cells = world
    done = threading.Event()

    def on_value(value: Any) -> None:
        program.send("/echo", value)
        answer = program.read("/r")  # read works inside a callback
        program.send("/answer", answer)
        done.set()

    fe.synced["/r"] = "from the page"
    with cells.running("cell-1"):
        program.subscribe("/in", on_value)
        program.sync()
    with cells.running("cell-7"):  # a later cell runs when the value comes
        fe.send("/in", 5)
        assert done.wait(WAIT)
    eventually(lambda: fe.received("/answer") == ["from the page"])
    echoes = [p for p in fe.of_kind("comm_msg") if p.data.get("address") == "/echo"]
    assert [cell_of(p) for p in echoes] == ["cell-1"]
    assert cells.activated == [{"header": {"msg_id": "cell-1"}}]


def test_a_slow_callback_backs_up_into_the_router_outbox_and_the_newest_value_wins(world):
    router, fe, _, program, _ = world
    gate = threading.Event()
    seen: list[int] = []

    def slow(value: int) -> None:
        gate.wait(WAIT)
        seen.append(value)

    program.subscribe("/flood", slow)
    program.sync()
    n = 3000
    for i in range(n):
        fe.send("/flood", i)

    def settled() -> bool:
        state = router.program_state()
        return state.delivered + state.merged + state.outbox == n

    eventually(settled)
    gate.set()
    eventually(lambda: seen and seen[-1] == n - 1)
    state = router.program_state()
    assert state.merged > 0  # the callback thread refused offers: the router merged values
    assert len(seen) + state.merged == n and seen == sorted(seen)


def test_closing_the_kernel_side_ends_the_program_side(world):
    _, _, kernel_side, program, _ = world
    listener = program.listen("/l")
    kernel_side.close()
    assert list(listener) == []  # iteration ends
    with pytest.raises(LinkClosedError):
        program.send("/a", 1)
    with pytest.raises(LinkClosedError):
        program.read("/a")


def test_a_read_returns_after_the_callbacks_of_the_same_value(world):
    _, fe, _, program, _ = world
    order: list[str] = []
    program.subscribe("/s", lambda v: order.append(f"callback {v}"))
    fe.synced["/s"] = 7
    for _ in range(20):  # callbacks and answers share one ordered thread: never interleaved
        order.clear()
        order.append(f"read {program.read('/s')}")
        assert order == ["callback 7", "read 7"], order


def test_a_flooding_cell_is_held_and_the_router_stays_bounded():
    """As over the pipes: a cell sending 20,000 values as fast as it can waits for the executor
    once `inflight_limit` requests wait, so the actors' inboxes stay bounded; every value
    arrives, in order."""
    fe = InMemoryFrontEnd("k")
    router = CommRouter("k", fe).start()
    fe.connect(router)
    kernel_side = LocalProgramLink("session", inflight_limit=16)
    router.program_started("session", kernel_side)
    program = kernel_side.program_side(Cells(), timeout=WAIT)
    fe.open()
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, router.backlog())
            time.sleep(0.001)  # bounded: sampling the actors' inboxes while the cell floods

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        total = 20_000
        for i in range(total):
            program.send("/flood", i, stream=True)
        program.sync(timeout=WAIT * 3)
        assert fe.received("/flood") == list(range(total))
        assert kernel_side.held > 0  # the cell did wait for the executor
        assert peak < 1_000  # without the hold, 20,000 requests pile up in the inboxes
    finally:
        stop.set()
        watcher.join(WAIT)
        kernel_side.close()
        router.stop()
