"""The wire format of the program link, shared by both ends (standard library only).

A frame is a 4-byte big-endian unsigned length N followed by N bytes of UTF-8 JSON: one JSON
object with an `op` field. See docs/program-link.md for every op and the start-up order.
"""

from __future__ import annotations

import json
from typing import Any, Final

# Environment variables the kernel sets for the program it starts.
ENV_TO_KERNEL: Final = "COMMROUTER_LINK_TO_KERNEL"  # FIFO path, program -> kernel
ENV_TO_PROGRAM: Final = "COMMROUTER_LINK_TO_PROGRAM"  # FIFO path, kernel -> program
ENV_SECRET: Final = "COMMROUTER_LINK_SECRET"  # presented in the first frame ("hello")
ENV_PROGRAM_ID: Final = "COMMROUTER_LINK_PROGRAM_ID"  # for the program's own messages
ENV_MAX_FRAME: Final = "COMMROUTER_LINK_MAX_FRAME"  # largest frame payload, bytes
ENV_READ_TIMEOUT: Final = "COMMROUTER_LINK_READ_TIMEOUT"  # default read timeout, seconds
ENV_SYNC_TIMEOUT: Final = "COMMROUTER_LINK_SYNC_TIMEOUT"  # default sync timeout, seconds
ENV_KERNEL_ID: Final = "COMMROUTER_LINK_KERNEL_ID"  # the kernel's id (widgets name their kernel)
ENV_PAGE: Final = "COMMROUTER_LINK_PAGE"  # the hub's config for this kernel (JSON), for widgets

REQUIRED_ENV: Final = (ENV_TO_KERNEL, ENV_TO_PROGRAM, ENV_SECRET)

HEADER: Final = 4
MAX_LENGTH: Final = 2**32 - 1

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class FrameTooLarge(ValueError):
    """A frame's payload is above the link's `max_frame_bytes`."""

    def __init__(self, size: int, limit: int, what: str = "frame") -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} of {size} bytes is above the program link's limit of {limit} bytes "
            "(program.max_frame_bytes)"
        )


def encode(message: dict[str, Any], max_bytes: int, what: str = "frame") -> bytes:
    """Header + UTF-8 JSON payload of `message`. Raises FrameTooLarge, or TypeError/ValueError
    from json for data that is not JSON."""
    payload = _encoder.encode(message).encode("utf-8")
    if len(payload) > min(max_bytes, MAX_LENGTH):
        raise FrameTooLarge(len(payload), max_bytes, what)
    return len(payload).to_bytes(HEADER, "big") + payload


class FrameBuffer:
    """Incremental decoder: `feed` bytes as they come, take whole payloads with `next`."""

    __slots__ = ("_buf", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> bytes | None:
        """The next whole payload, or None if it has not fully arrived.

        Raises FrameTooLarge when the next header announces more than `max_bytes`: the stream
        cannot be trusted after that (the caller closes the link).
        """
        buf = self._buf
        if len(buf) < HEADER:
            return None
        size = int.from_bytes(buf[:HEADER], "big")
        if size > self.max_bytes:
            raise FrameTooLarge(size, self.max_bytes)
        end = HEADER + size
        if len(buf) < end:
            return None
        payload = bytes(buf[HEADER:end])
        del buf[:end]
        return payload

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a whole frame."""
        return len(self._buf)

    def describe_partial(self) -> str:
        """What a truncated stream held: for the error message."""
        buf = self._buf
        if len(buf) < HEADER:
            return f"{len(buf)} of the {HEADER} header bytes"
        size = int.from_bytes(buf[:HEADER], "big")
        return f"{len(buf) - HEADER} of {size} payload bytes"
