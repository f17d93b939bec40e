"""FifoLink, the kernel side of the named-pipe link, driven in-process: the program side is
either `commrouter.program.Link` (on its own thread) or raw writes to the FIFO."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from commrouter.program import FrameTooLarge, Link, LinkClosedError, SyncError, wire
from commrouter.router.messages import (
    LinkCheckpoint,
    LinkClosed,
    LinkFault,
    LinkWritable,
    ProgramDisplay,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    SyncAck,
    ValueForProgram,
)
from commrouter.transports.fifo_link import FifoLink

WAIT = 5.0


class Sink:
    """What the executor would be: collects link events; resolves checkpoints unless held."""

    def __init__(self, hold_checkpoints: bool = False) -> None:
        self.events: list[Any] = []
        self.held: list[LinkCheckpoint] = []
        self.hold = hold_checkpoints
        self.on_event: Callable[[Any], None] | None = None
        self._cond = threading.Condition()

    def __call__(self, event: Any) -> None:
        if isinstance(event, LinkCheckpoint):
            if self.hold:
                self.held.append(event)
            else:
                event.reply.resolve(event.count)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    def release(self) -> None:
        self.hold = False
        for checkpoint in self.held:
            checkpoint.reply.resolve(checkpoint.count)

    def requests(self) -> list[Any]:
        with self._cond:
            return [e for e in self.events if not isinstance(e, LinkCheckpoint | LinkWritable)]

    def of(self, kind: type) -> list[Any]:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), f"not met; got {self.events[-5:]}"


def make_link(tmp_path: Path, **kwargs: Any) -> FifoLink:
    options = {"max_frame_bytes": 1024, "inflight_limit": 8, **kwargs}
    return FifoLink("p1", directory=str(tmp_path), **options)


@pytest.fixture
def link(tmp_path: Path) -> Iterator[FifoLink]:
    fifo = make_link(tmp_path)
    try:
        yield fifo
    finally:
        fifo.close()
    assert not os.path.exists(fifo.directory)


@pytest.fixture
def sink(link: FifoLink) -> Sink:
    collected = Sink()
    link.attach(collected)
    return collected


@pytest.fixture
def program(link: FifoLink) -> Iterator[Link]:
    prog = Link(link.env(read_timeout=2.0, sync_timeout=2.0))
    try:
        yield prog
    finally:
        prog.close()


def raw_writer(link: FifoLink, hello: bool = True) -> int:
    fd = os.open(link.to_kernel_path, os.O_WRONLY)
    if hello:
        os.write(fd, wire.encode({"op": "hello", "secret": link.secret, "pid": 1}, 1024))
    return fd


# ----------------------------------------------------------------------- files and set-up


def test_private_directory_fifos_and_environment(link: FifoLink) -> None:
    assert stat.S_IMODE(os.stat(link.directory).st_mode) == 0o700
    for path in (link.to_kernel_path, link.to_program_path):
        mode = os.stat(path).st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    env = link.env(read_timeout=1.5, sync_timeout=1.5, kernel_id="k-1", page='{"kernel_id": 1}')
    assert env == {
        "COMMROUTER_LINK_KERNEL_ID": "k-1",
        "COMMROUTER_LINK_PAGE": '{"kernel_id": 1}',
        "COMMROUTER_LINK_TO_KERNEL": link.to_kernel_path,
        "COMMROUTER_LINK_TO_PROGRAM": link.to_program_path,
        "COMMROUTER_LINK_SECRET": link.secret,
        "COMMROUTER_LINK_PROGRAM_ID": "p1",
        "COMMROUTER_LINK_MAX_FRAME": "1024",
        "COMMROUTER_LINK_READ_TIMEOUT": "1.5",
        "COMMROUTER_LINK_SYNC_TIMEOUT": "1.5",
    }
    assert len(link.secret) == 32 and link.secret != make_link(Path(link.directory)).secret
    assert Link(env).kernel_id == "k-1"  # what program.kernel_id() says; the widgets use it


def test_close_removes_the_files_at_once_and_is_idempotent(tmp_path: Path) -> None:
    for attached in (False, True):
        fifo = make_link(tmp_path)
        if attached:
            fifo.attach(Sink())
        fifo.close()
        assert not os.path.exists(fifo.directory)
        fifo.close()
        assert fifo.offer(ValueForProgram("/a", 1)) is False
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- decoding


def test_every_program_op_is_decoded_once_at_the_edge(
    link: FifoLink, sink: Sink, program: Link
) -> None:
    sink.on_event = lambda e: (
        link.offer(SyncAck(e.sync_id, None)) if isinstance(e, ProgramSync) else None
    )
    program.send("/a", {"x": [1, 2.5, None, True, "é"]})
    first = program.subscribe("/s", lambda v: None)
    second = program.subscribe("/s", lambda v: None)  # the kernel hears of /s once
    program.unsubscribe(first)
    second.close()  # ... and of its end when the last callback goes
    program.start()
    program.display({"text/html": "<b>x</b>"}, {"m": 1}, "d1")
    program.update_display("d1", {"text/plain": "y"})
    program.display({"text/plain": "z"})
    program.sync()
    assert sink.requests() == [
        ProgramSend("p1", "/a", {"x": [1, 2.5, None, True, "é"]}),
        ProgramSubscribe("p1", "/s"),
        ProgramUnsubscribe("p1", "/s"),
        ProgramStartLink("p1"),
        ProgramDisplay("p1", {"text/html": "<b>x</b>"}, {"m": 1}, "d1", False),
        ProgramDisplay("p1", {"text/plain": "y"}, {}, "d1", True),
        ProgramDisplay("p1", {"text/plain": "z"}, {}, None, False),
        ProgramSync("p1", 1),
    ]
    assert link.pid == os.getpid()


def test_values_reach_callbacks_and_listeners_in_order(
    link: FifoLink, sink: Sink, program: Link
) -> None:
    got: list[int] = []
    program.subscribe("/v", got.append)
    with program.listen("/v") as values:
        sink.wait_for(lambda: sink.of(ProgramSubscribe))
        for i in range(100):
            assert link.offer(ValueForProgram("/v", i))
        assert [values.get(timeout=WAIT) for _ in range(100)] == list(range(100))
    assert got == list(range(100))
    assert sink.of(ProgramUnsubscribe) == []  # the callback still listens


def test_read_is_answered_and_sync_reports_an_error(
    link: FifoLink, sink: Sink, program: Link
) -> None:
    def answer(event: Any) -> None:
        if isinstance(event, ProgramRead):
            link.offer(ValueForProgram(event.address, "answer"))
        elif isinstance(event, ProgramSync):
            link.offer(SyncAck(event.sync_id, "front-end unavailable"))

    sink.on_event = answer
    assert program.read("/r") == "answer"
    sink.wait_for(lambda: sink.requests()[-1] == ProgramUnsubscribe("p1", "/r"))
    with pytest.raises(SyncError, match="front-end unavailable"):
        program.sync()


def test_read_and_sync_work_inside_a_callback(link: FifoLink, sink: Sink, program: Link) -> None:
    """On click, read the slider: the answer is settled by the reader thread, not by the
    callback thread that waits for it."""
    results: list[Any] = []
    done = threading.Event()

    def answer(event: Any) -> None:
        if isinstance(event, ProgramRead):
            link.offer(ValueForProgram(event.address, "answer"))
        elif isinstance(event, ProgramSync):
            link.offer(SyncAck(event.sync_id, None))

    def callback(value: Any) -> None:
        results.append(program.read("/other"))
        program.sync()
        results.append("synced")
        done.set()

    sink.on_event = answer
    program.subscribe("/v", callback)
    sink.wait_for(lambda: sink.of(ProgramSubscribe))
    link.offer(ValueForProgram("/v", 1))
    assert done.wait(WAIT)
    assert results == ["answer", "synced"]
    assert program.callback_errors == 0


def test_a_frame_too_large_is_refused_before_writing(
    link: FifoLink, sink: Sink, program: Link
) -> None:
    with pytest.raises(FrameTooLarge, match="above the program link's limit of 1024"):
        program.send("/big", "x" * 2000)
    program.send("/small", 1)
    sink.wait_for(lambda: sink.requests())
    assert sink.requests() == [ProgramSend("p1", "/small", 1)]


def test_a_value_too_large_for_the_program_is_a_fault_not_a_stall(
    link: FifoLink, sink: Sink
) -> None:
    assert link.offer(ValueForProgram("/big", "x" * 2000)) is True
    [fault] = sink.of(LinkFault)
    assert fault.reason == "value too large" and "'/big'" in fault.detail
    assert link.offer(ValueForProgram("/small", 1)) is True


# ------------------------------------------------------------------ never blocking


def test_offer_never_blocks_refuses_when_full_and_says_when_writable(
    link: FifoLink, sink: Sink
) -> None:
    value = "v" * 900
    offered = 0
    while link.offer(ValueForProgram("/a", value)):  # nobody reads: pipe, then buffer fill
        offered += 1
        assert offered < 1000
    assert offered > 100
    assert link.offer(ValueForProgram("/a", value)) is False
    reader = os.open(link.to_program_path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        frames = wire.FrameBuffer(1024)
        received = 0
        while received < offered:
            try:
                frames.feed(os.read(reader, 65536))
            except BlockingIOError:
                sink.wait_for(lambda: True, 0.01)
            while frames.next() is not None:
                received += 1
        sink.wait_for(lambda: sink.of(LinkWritable))
        assert received == offered
    finally:
        os.close(reader)
    assert link.offer(ValueForProgram("/a", value)) is True


def test_the_sender_is_held_once_inflight_limit_requests_wait(tmp_path: Path) -> None:
    fifo = make_link(tmp_path, inflight_limit=8)
    sink = Sink(hold_checkpoints=True)
    fifo.attach(sink)
    program = Link(fifo.env(2.0, 2.0))
    sends = 200  # about 200 KB: more than the pipe holds
    writer = threading.Thread(
        target=lambda: [program.send("/flood", {"i": i, "pad": "p" * 900}) for i in range(sends)],
        daemon=True,
    )
    try:
        writer.start()
        sink.wait_for(lambda: len(sink.requests()) == 8)
        writer.join(0.2)
        assert writer.is_alive()  # its write blocks: the kernel stopped reading
        assert len(sink.requests()) == 8  # nothing more was decoded
        sink.release()
        writer.join(WAIT)
        assert not writer.is_alive()
        sink.wait_for(lambda: len(sink.requests()) == sends)
        assert [r.value["i"] for r in sink.requests()] == list(range(sends))
        assert fifo.stats["held"] >= 1
    finally:
        fifo.close()
        program.close()


# ------------------------------------------------------------------ faults and ends


def test_end_of_stream_inside_a_frame_is_a_truncated_frame(link: FifoLink, sink: Sink) -> None:
    fd = raw_writer(link)
    os.write(fd, wire.encode({"op": "send", "address": "/a", "value": 1}, 1024))
    os.write(fd, (50).to_bytes(4, "big") + b"{")
    os.close(fd)
    link.program_exited()
    sink.wait_for(lambda: sink.of(LinkClosed))
    assert sink.requests()[0] == ProgramSend("p1", "/a", 1)
    [fault] = sink.of(LinkFault)
    assert (fault.reason, fault.detail) == (
        "truncated frame",
        "the stream ended inside a frame: 1 of 50 payload bytes",
    )
    assert sink.of(LinkClosed) == [LinkClosed("p1", "truncated frame")]
    assert link.wait_drained(WAIT) and not os.path.exists(link.directory)


def test_a_program_that_never_connects_ends_cleanly(link: FifoLink, sink: Sink) -> None:
    link.program_exited()
    sink.wait_for(lambda: sink.of(LinkClosed))
    assert sink.events == [LinkClosed("p1", "program exited")]
    assert link.wait_drained(WAIT)


def test_the_program_sees_the_kernel_close_the_link(
    link: FifoLink, sink: Sink, program: Link
) -> None:
    with program.listen("/v") as values:
        sink.wait_for(lambda: sink.of(ProgramSubscribe))
        link.close()
        assert list(values) == []  # iteration ends
    with pytest.raises(LinkClosedError):
        program.sync()
    assert program.closed


def test_nothing_is_emitted_after_close(link: FifoLink, sink: Sink) -> None:
    fd = raw_writer(link)
    link.close()
    try:
        os.write(fd, wire.encode({"op": "send", "address": "/late", "value": 1}, 1024))
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)
    assert sink.requests() == []
