"""The in-process program link, kernel side: for a host whose whole session is one program.

`LocalProgramLink` is a `ProgramLink` whose program side is a `commrouter.program.local.LocalLink`
in the same process (see `program_side`). The program's requests arrive as frames (dicts) with
the caller's parent; they are decoded once, here, into the router's messages, each carrying
that parent. Messages for the program are handed to its callback thread without blocking; when
that thread is full the offer is refused and `LinkWritable` follows once it has room, exactly
as over the pipes. Nothing is private: a host uses this and `commrouter.program.use_link`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from commrouter.actors.runtime import Promise
from commrouter.program.base import DEFAULT_MAX_FRAME, DEFAULT_TIMEOUT
from commrouter.program.local import LocalLink, OutputContext
from commrouter.router.messages import (
    LinkCheckpoint,
    LinkClosed,
    LinkEvent,
    LinkWritable,
    ToProgram,
)
from commrouter.transports.program_frames import BadFrame, decode_request, program_frame

#: Requests the program side writes while holding its state lock, which the executor's own
#: deliveries take too: those are never held back (they are few: one per address).
UNDER_LOCK = frozenset({"subscribe", "unsubscribe"})


class LocalProgramLink:
    """The kernel side of an in-process program link (thread-safe).

    Flow control as over the pipes: once `inflight_limit` requests wait for the executor, the
    thread that makes the next one (a cell flooding `send`) waits until the executor has
    caught up, told by the `LinkCheckpoint` that follows every quarter of the limit. The
    router's inboxes stay bounded; nothing is dropped."""

    def __init__(self, program_id: str, inflight_limit: int = 256) -> None:
        self.program_id = program_id
        self.inflight_limit = inflight_limit
        self._chunk = max(1, inflight_limit // 4)
        self._emitted = 0  # requests handed to the executor
        self._acked = 0  # of which the executor has reached this many (checkpoints)
        self._credit = threading.Condition()
        self.held = 0  # how often a caller waited for credit
        self._sink: Callable[[LinkEvent], None] | None = None
        self._early: list[LinkEvent] = []  # requests made before the router attached
        self._program: LocalLink | None = None
        self._closed = False
        self._lock = threading.Lock()

    def program_side(
        self,
        output: OutputContext | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME,
        kernel_id: str = "",
        page: str = "",
    ) -> LocalLink:
        """Make the program side (once); install it with `commrouter.program.use_link`."""
        if self._program is not None:
            raise RuntimeError("this link's program side was already made")
        program = LocalLink(
            self._request,
            output=output,
            timeout=timeout,
            max_frame_bytes=max_frame_bytes,
            program_id=self.program_id,
            kernel_id=kernel_id,
            page=page,
        )
        program.set_on_room(lambda: self._emit(LinkWritable(self.program_id)))
        self._program = program
        return program

    # ------------------------------------------------------------ the ProgramLink protocol

    def attach(self, sink: Callable[[LinkEvent], None]) -> None:
        with self._lock:
            self._sink = sink
            early, self._early = self._early, []
        for event in early:
            sink(event)

    def offer(self, message: ToProgram) -> bool:
        program = self._program
        if self._closed or program is None:
            return True  # swallowed: the program is gone; the executor logs the close
        return program.deliver(program_frame(message))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._credit:  # a caller waiting for credit gets its LinkClosedError instead
            self._credit.notify_all()
        if self._program is not None:
            self._program.kernel_closed("the kernel closed the program link")
        self._emit(LinkClosed(self.program_id, "closed by the kernel"))

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------- from the program

    def _request(self, frame: dict[str, Any], parent: Any) -> None:
        try:
            message = decode_request(self.program_id, frame)
        except BadFrame as bad:  # the program side checks first: only the router's own limits
            raise ValueError(str(bad)) from None
        if hasattr(message, "parent"):  # unsubscribe publishes nothing: it has none
            message = dataclasses.replace(message, parent=parent)
        if frame.get("op") not in UNDER_LOCK:
            self._wait_for_credit()
        with self._credit:
            self._emitted += 1
            emitted = self._emitted
        self._emit(message)
        if emitted % self._chunk == 0:
            reply: Promise[int] = Promise()
            reply.on_done(self._acknowledged)
            self._emit(LinkCheckpoint(self.program_id, emitted, reply))

    def _wait_for_credit(self) -> None:
        """Hold the caller while `inflight_limit` requests wait (in short waits, so that an
        interrupt reaches a cell held here)."""
        with self._credit:
            if self._emitted - self._acked < self.inflight_limit or self._closed:
                return
            self.held += 1
            while self._emitted - self._acked >= self.inflight_limit and not self._closed:
                self._credit.wait(0.1)

    def _acknowledged(self, reply: Promise[int]) -> None:
        """A checkpoint was reached (or failed: an executor given up holds nobody)."""
        with self._credit:
            count = self._emitted if reply.error is not None else reply.get(0)
            self._acked = max(self._acked, count)
            self._credit.notify_all()

    def _emit(self, event: LinkEvent) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                self._early.append(event)
                return
        sink(event)
