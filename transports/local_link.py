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

from commrouter.program.base import DEFAULT_MAX_FRAME, DEFAULT_TIMEOUT
from commrouter.program.local import LocalLink, OutputContext
from commrouter.router.messages import (
    LinkClosed,
    LinkEvent,
    LinkWritable,
    ToProgram,
)
from commrouter.transports.program_frames import BadFrame, decode_request, program_frame


class LocalProgramLink:
    """The kernel side of an in-process program link (thread-safe)."""

    def __init__(self, program_id: str) -> None:
        self.program_id = program_id
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
        self._emit(message)

    def _emit(self, event: LinkEvent) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                self._early.append(event)
                return
        sink(event)
