"""The page's half of the kernel -> page numbering, as commrouter.js does it.

The in-memory front-end uses it; the browser hub (frontend/commrouter.js) and the simulated
page (simulation/) implement the same rules (docs/protocol.md, "Flow control").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PageStream:
    """What a page received from one kernel: the stream id and the highest number in order."""

    __slots__ = ("received", "stream")

    def __init__(self) -> None:
        self.stream: str | None = None
        self.received = 0

    def resume(self) -> dict[str, Any] | None:
        """`data.resume` for the next comm_open, or None for a page that never linked."""
        return None if self.stream is None else {"stream": self.stream, "seq": self.received}

    def opened(self, ack: Any) -> None:
        """`#comm_open_ack`'s value `{stream, seq}`: the next value is numbered `seq`."""
        if isinstance(ack, Mapping) and isinstance(ack.get("seq"), int):
            self.stream = ack.get("stream")
            self.received = ack["seq"] - 1

    def accept(self, data: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], bool]:
        """The new items of a message, in order, and whether it skipped a number (then what
        follows the gap is ignored: the kernel sends it again)."""
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        seq = data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return list(items), False
        fresh: list[Mapping[str, Any]] = []
        for offset, item in enumerate(items):
            number = seq + offset
            if number <= self.received:
                continue  # seen already (a resend)
            if number != self.received + 1:
                return fresh, True
            self.received = number
            fresh.append(item)
        return fresh, False
