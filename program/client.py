"""The pipe transport of the program link: what a cell program started by a commrouter kernel
uses (standard library only).

A `Link` connects lazily, on its first call: it opens `to_kernel` for writing, sends `hello`
with the run's secret, opens `to_program` for reading and starts one daemon thread that reads
the kernel's frames (answers are settled there; callbacks run on the link's callback thread,
see `base.BaseLink`). Writes block when the pipe is full (the kernel holds a fast sender back);
reads and syncs wait with a timeout.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from commrouter.program import wire
from commrouter.program.base import (
    DEFAULT_MAX_FRAME,
    DEFAULT_SYNC_TIMEOUT,
    DEFAULT_TIMEOUT,
    AsyncListener,
    BaseLink,
    Callback,
    Listener,
    Subscription,
)
from commrouter.program.errors import LinkClosedError, NotUnderRouter

__all__ = ["AsyncListener", "Callback", "Link", "Listener", "Subscription"]


class Link(BaseLink):
    """One program's link to its kernel over named pipes, configured from the environment
    (`environ`)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        missing = [name for name in wire.REQUIRED_ENV if not env.get(name)]
        if missing:
            raise NotUnderRouter(missing)
        super().__init__(
            timeout=_number(env, wire.ENV_READ_TIMEOUT, float, DEFAULT_TIMEOUT),
            sync_timeout=_number(env, wire.ENV_SYNC_TIMEOUT, float, DEFAULT_SYNC_TIMEOUT),
            max_frame_bytes=_number(env, wire.ENV_MAX_FRAME, int, DEFAULT_MAX_FRAME),
            program_id=env.get(wire.ENV_PROGRAM_ID, ""),
            kernel_id=env.get(wire.ENV_KERNEL_ID, ""),
            page=env.get(wire.ENV_PAGE, ""),
        )
        self.to_kernel_path = env[wire.ENV_TO_KERNEL]
        self.to_program_path = env[wire.ENV_TO_PROGRAM]
        self._secret = env[wire.ENV_SECRET]
        self._write_lock = threading.Lock()
        self._out: int | None = None
        self._broken: str | None = None  # why writing is impossible
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------------ writing

    def _transmit(self, frame: dict[str, Any], data: bytes) -> None:
        with self._write_lock:
            if self._out is None and self._broken is None:
                self._connect()
            self._write_all(data)

    def _writable(self) -> bool:
        return self._broken is None

    def close(self) -> None:
        """Stop writing to the kernel (the kernel ends the link when the program exits)."""
        with self._write_lock:
            fd, self._out = self._out, None
            if self._broken is None:
                self._broken = "the program closed its link"
            if fd is not None:
                os.close(fd)

    def _write_all(self, data: bytes) -> None:
        if self._broken is not None:
            raise LinkClosedError(self._broken)
        assert self._out is not None
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._out, view[written:])
        except BrokenPipeError:
            self._broken = "the kernel closed the program link"
            raise LinkClosedError(self._broken) from None
        except BaseException:
            if written:  # the kernel would read the rest of this frame as the next one's start
                self._broken = "a write was interrupted inside a frame"
            raise

    def _connect(self) -> None:
        """Open `to_kernel`, say hello, open `to_program`, start the reader (write lock held)."""
        try:
            # O_NONBLOCK: fail at once (ENXIO) rather than wait if the kernel is not reading
            out = os.open(self.to_kernel_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            self._broken = f"cannot open the program link ({error}); was the program finished?"
            raise LinkClosedError(self._broken) from None
        os.set_blocking(out, True)
        self._out = out
        hello = {"op": "hello", "secret": self._secret, "pid": os.getpid()}
        self._write_all(wire.encode(hello, self.max_frame_bytes))
        try:
            fd = os.open(self.to_program_path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            self._broken = f"cannot open the program link ({error}); was the program finished?"
            raise LinkClosedError(self._broken) from None
        os.set_blocking(fd, True)
        self._reader = threading.Thread(
            target=self._read_loop, args=(fd,), name="commrouter-program-link", daemon=True
        )
        self._reader.start()

    # ------------------------------------------------------------------ the reader thread

    def _read_loop(self, fd: int) -> None:
        frames = wire.FrameBuffer(max(self.max_frame_bytes, DEFAULT_MAX_FRAME))
        reason = "the kernel closed the program link"
        try:
            while data := os.read(fd, 65536):
                frames.feed(data)
                while (payload := frames.next()) is not None:
                    self._receive(json.loads(payload))
        except Exception as error:  # noqa: BLE001 - reported, and every waiter is woken
            reason = f"the program link failed: {error!r}"
            print(f"commrouter.program: {reason}", file=sys.stderr, flush=True)
        finally:
            os.close(fd)
            self._kernel_gone(reason)


def _number(env: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default
