"""`FifoLink`: the kernel side of the program link, over two named pipes (FIFOs).

The link creates a private directory (mode 0700) holding two FIFOs (mode 0600): `to_kernel`
(the program writes, the kernel reads) and `to_program` (the kernel writes, the program reads).
The program learns their paths and a per-run secret from environment variables (`env()`); its
first frame must be `hello` with that secret. The frame format and every op are in
`commrouter.program.wire` and docs/program-link.md.

The kernel side never blocks on a pipe:

- `to_program` is opened `O_RDWR | O_NONBLOCK`: the open never waits for a reader, a write never
  fails for want of one, and the program's `O_RDONLY` open never waits either. `offer` writes
  without blocking; what the pipe cannot take waits in a bounded buffer flushed by the link's
  thread; a full buffer refuses the offer, and `LinkWritable` follows once it drained.
- `to_kernel` is opened `O_RDONLY | O_NONBLOCK`, and the kernel also holds a write end, so there
  is no end-of-file before the program connects (or if it never does). The end of the program is
  learnt from its process (`program_exited()` drops that write end, the rest is drained, then
  end-of-file).
- Hold the sender: once `inflight_limit` decoded requests wait for the executor, the link stops
  reading; the pipe fills and the program's blocking write waits. Nothing is dropped. The
  executor acknowledges by resolving `LinkCheckpoint`s, which follow the requests in its inbox.

One thread per link polls both pipes and a wake-up pipe; it owns the file descriptors and
closes them when it ends. `close()` removes the FIFOs and the directory at once, from any thread.
The files and descriptors are `fifo_files.FifoFiles`; frames are decoded into the router's
messages, and encoded back, by `program_frames`.
"""

from __future__ import annotations

import os
import secrets
import select
import threading
from collections.abc import Callable
from typing import Any

from commrouter.actors.runtime import Promise
from commrouter.program import wire
from commrouter.router.messages import (
    FromProgram,
    LinkCheckpoint,
    LinkClosed,
    LinkEvent,
    LinkFault,
    LinkWritable,
    ToProgram,
)
from commrouter.transports.fifo_files import FifoFiles, drain
from commrouter.transports.program_frames import (
    FRAME_TOO_LARGE,
    TRUNCATED,
    VALUE_NOT_JSON,
    VALUE_TOO_LARGE,
    BadFrame,
    check_hello,
    decode_request,
    encode_for_program,
    parse_payload,
)

# Bytes `offer` may hold beyond what the pipe itself holds (about 64 KiB on Linux); past this an
# offer is refused and the executor's outbox policy takes over.
WRITE_BUFFER = 64 * 1024
READ_CHUNK = 64 * 1024


class FifoLink:
    """`ProgramLink` over two FIFOs in a private temporary directory. Thread-safe.

    Args:
        program_id: the run this link belongs to (stamped on every decoded request).
        max_frame_bytes: largest frame payload accepted or sent (`program.max_frame_bytes`).
        inflight_limit: decoded requests that may wait for the executor before the link stops
            reading (`program.inflight_limit`).
        logger: a structlog logger for the link's own events (`pipe.*`), or None.
        directory: where the private directory is created (default: the system temp dir).
    """

    def __init__(
        self,
        program_id: str,
        *,
        max_frame_bytes: int,
        inflight_limit: int,
        logger: Any = None,
        directory: str | None = None,
    ) -> None:
        self.program_id = program_id
        self.max_frame_bytes = max_frame_bytes
        self.inflight_limit = inflight_limit
        self.secret = secrets.token_hex(16)
        self.pid: int | None = None  # as the program announced it in hello
        self._log = logger
        # Held while calling the sink, so nothing is emitted after close; re-entrant because a
        # sink may answer synchronously (resolve a checkpoint, offer a reply).
        self._lock = threading.RLock()
        self._sink: Callable[[LinkEvent], None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._drained = threading.Event()  # closed (at end-of-file, or before): nothing to read
        self._frames = wire.FrameBuffer(max_frame_bytes)
        self._hello = False
        self._eof = False
        self._pending = bytearray()  # kernel -> program bytes the pipe did not take yet
        self._refused = False
        # flow control: requests emitted to the sink, and how many the executor acknowledged
        self._emitted = 0
        self._acked = 0
        self._chunk = max(1, inflight_limit // 4)
        self._held = False
        self.stats = {"frames_in": 0, "frames_out": 0, "faults": 0, "held": 0, "refused": 0}

        self._files = FifoFiles(directory)
        self.directory = self._files.directory
        self.to_kernel_path = self._files.to_kernel_path
        self.to_program_path = self._files.to_program_path

    def env(
        self, read_timeout: float, sync_timeout: float, kernel_id: str = "", page: str = ""
    ) -> dict[str, str]:
        """The environment variables that tell the program how to connect (and, for the
        page's widgets, which kernel it runs in and the page hub's config for it)."""
        return {
            wire.ENV_KERNEL_ID: kernel_id,
            wire.ENV_PAGE: page,
            wire.ENV_TO_KERNEL: self.to_kernel_path,
            wire.ENV_TO_PROGRAM: self.to_program_path,
            wire.ENV_SECRET: self.secret,
            wire.ENV_PROGRAM_ID: self.program_id,
            wire.ENV_MAX_FRAME: str(self.max_frame_bytes),
            wire.ENV_READ_TIMEOUT: repr(float(read_timeout)),
            wire.ENV_SYNC_TIMEOUT: repr(float(sync_timeout)),
        }

    # ------------------------------------------------------------------- ProgramLink

    def attach(self, sink: Callable[[LinkEvent], None]) -> None:
        with self._lock:
            if self._sink is not None or self._closed:
                return
            self._sink = sink
            self._thread = threading.Thread(
                target=self._run, name=f"commrouter-link-{self.program_id}", daemon=True
            )
            self._thread.start()

    def offer(self, message: ToProgram) -> bool:
        try:
            frame = encode_for_program(message, self.max_frame_bytes)
        except wire.FrameTooLarge as error:
            self._fault(VALUE_TOO_LARGE, f"{error}; dropped")
            return True  # taken: it can never fit, retrying would block the outbox forever
        except (TypeError, ValueError) as error:  # NaN, Infinity, a lone surrogate...
            self._fault(VALUE_NOT_JSON, f"{error}; dropped")
            return True  # taken: it can never be encoded, retrying would poison the outbox
        with self._lock:
            if self._closed:
                return False
            if len(self._pending) >= WRITE_BUFFER:
                self._refused = True
                self.stats["refused"] += 1
                return False
            written = 0
            if not self._pending:
                try:
                    written = os.write(self._files.tx, frame)
                except BlockingIOError:
                    written = 0
            if written < len(frame):
                self._pending += frame[written:]
                self._files.wake()
            self.stats["frames_out"] += 1
            return True

    def close(self) -> None:
        self._shutdown("closed by the kernel")

    # ---------------------------------------------------------------- process events

    def program_exited(self) -> None:
        """The program's process ended: drop the kernel's own write end of `to_kernel`, so
        reading ends with end-of-file once everything the program wrote was read."""
        with self._lock:
            # Even if the link is not attached yet (a program that exits at once can end before
            # the executor attaches it, right after the spawn): the thread it starts reads what
            # the program wrote, then end-of-file, and only then is the link drained.
            self._files.drop_write_end()
            self._files.wake()

    def wait_drained(self, timeout: float) -> bool:
        """Wait (bounded) until everything the program wrote was read, or the link closed."""
        return self._drained.wait(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ the I/O thread

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._files.wake_r, select.POLLIN)
        registered = {self._files.rx: 0, self._files.tx: 0}
        try:
            while True:
                self._decode_buffered()
                with self._lock:
                    if self._closed:
                        return
                    credit = self._credit_left()
                    if not credit and not self._held:
                        self._held = True  # _acknowledged wakes us (both under the lock)
                        self.stats["held"] += 1
                    want = {
                        self._files.rx: select.POLLIN if credit and not self._eof else 0,
                        self._files.tx: select.POLLOUT if self._pending else 0,
                    }
                for fd, mask in want.items():
                    if mask != registered[fd]:
                        if registered[fd] == 0:
                            poller.register(fd, mask)
                        elif mask == 0:
                            poller.unregister(fd)
                        else:
                            poller.modify(fd, mask)
                        registered[fd] = mask
                for fd, _ in poller.poll():
                    if fd == self._files.wake_r:
                        drain(self._files.wake_r)
                    elif fd == self._files.rx:
                        self._read()
                    elif fd == self._files.tx:
                        self._flush()
        except Exception as error:  # noqa: BLE001 - a bug here must not leave the program hanging
            self._fail("link error", repr(error))
        finally:
            self._shutdown("link thread ended")  # a no-op unless the thread failed
            with self._lock:
                self._files.close_fds()

    def _read(self) -> None:
        try:
            data = os.read(self._files.rx, READ_CHUNK)
        except BlockingIOError:
            return
        if data:
            self._frames.feed(data)
        else:
            self._eof = True  # the program and the kernel's own write end are both gone

    def _decode_buffered(self) -> None:
        while not self._closed and self._credit_left():
            try:
                payload = self._frames.next()
            except wire.FrameTooLarge as error:
                self._fail(FRAME_TOO_LARGE, str(error))
                return
            if payload is None:
                break
            self.stats["frames_in"] += 1
            self._handle(payload)
        else:
            return  # closed, or waiting for the executor (it wakes the thread)
        if self._eof:  # every whole frame was handled: end the stream
            if self._frames.pending:
                partial = self._frames.describe_partial()
                self._fail(TRUNCATED, f"the stream ended inside a frame: {partial}")
            else:
                self._emit(LinkClosed(self.program_id, "program exited"))
                self._shutdown("program exited")

    def _handle(self, payload: bytes) -> None:
        try:
            if not self._hello:
                self._check_hello(payload)
                return
            message = decode_request(self.program_id, parse_payload(payload))
        except BadFrame as bad:
            if self._hello:
                self._fault(bad.reason, bad.detail)  # well delimited: keep serving
            else:
                self._fail(bad.reason, bad.detail)  # not authenticated: close
            return
        self._request(message)

    def _check_hello(self, payload: bytes) -> None:
        self.pid = check_hello(payload, self.secret)
        self._hello = True
        if self._log is not None:
            self._log.info("pipe.connected", program_id=self.program_id, pid=self.pid)

    # -------------------------------------------------------------- flow control

    def _credit_left(self) -> bool:
        return self._emitted - self._acked < self.inflight_limit

    def _request(self, message: FromProgram) -> None:
        self._emit(message)
        self._emitted += 1
        if self._emitted % self._chunk == 0:
            reply: Promise[int] = Promise()
            reply.on_done(self._acknowledged)
            self._emit(LinkCheckpoint(self.program_id, self._emitted, reply))

    def _acknowledged(self, reply: Promise[int]) -> None:
        count = reply.get(0)
        with self._lock:
            if count > self._acked:
                self._acked = count
            if self._held:
                self._held = False
                self._files.wake()

    # ------------------------------------------------------------------- writing

    def _flush(self) -> None:
        writable = False
        with self._lock:
            if self._closed or not self._pending:
                return
            try:
                written = os.write(self._files.tx, self._pending)
            except BlockingIOError:
                return
            del self._pending[:written]
            if self._refused and len(self._pending) <= WRITE_BUFFER // 2:
                self._refused, writable = False, True
        if writable:
            self._emit(LinkWritable(self.program_id))

    # ------------------------------------------------------------------ events, close

    def _emit(self, event: LinkEvent) -> None:
        with self._lock:  # never after close: the router may be gone
            if not self._closed and self._sink is not None:
                self._sink(event)

    def _fault(self, reason: str, detail: str) -> None:
        self.stats["faults"] += 1
        self._emit(LinkFault(self.program_id, reason, detail))

    def _fail(self, reason: str, detail: str) -> None:
        """A fault after which the stream cannot be trusted: report it, then close."""
        self._fault(reason, detail)
        self._emit(LinkClosed(self.program_id, reason))
        self._shutdown(reason)

    def _shutdown(self, reason: str) -> None:
        with self._lock:  # whoever closes second returns only once the files are gone
            if self._closed:
                return
            self._closed = True
            if self._thread is None:
                self._files.close_fds()
            else:
                self._files.wake()
            self._files.remove()
            self._drained.set()
        if self._log is not None:
            self._log.info(
                "pipe.closed",
                program_id=self.program_id,
                reason=reason,
                unsent_bytes=len(self._pending),
                **self.stats,
            )
