"""DisplayQueue: the program's rich output (display_data, update_display_data) at a bounded rate.

A plain data structure owned by the ProgramExecutor (no I/O; times are passed in). A program
that updates a display in a tight loop (a progress readout) would otherwise publish thousands of
IOPub messages a second: over a slow reader's high-water mark, where the page hears nothing
from the kernel and is found dead, and possibly over jupyter_server's IOPub rate limit, which
then drops every IOPub message for a while (the router's comm messages included).

- While the token bucket (`program.display_messages_per_second`, bursts of `DISPLAY_BURST`) has a
  token and nothing waits, a display goes out at once.
- Otherwise it waits, in order. An update of a display id whose latest waiting entry is an
  update replaces that entry's data (the latest wins, counted in `merged`): only the last data
  is ever seen. A new display is never merged (each makes its own output area), nor is an
  update merged into one: an update changes every output area of its id, shown ones too.
- `due(now)` hands out what the tokens allow; `drain()` everything (the program ended: its
  output goes before its cell's reply).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commrouter.timing.rate import TokenBucket

DISPLAY_BURST = 10


@dataclass(slots=True)
class HeldDisplay:
    """One display or update, as the program asked for it."""

    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    display_id: str | None
    update: bool
    parent: Any


class DisplayQueue:
    """The program's displays, in order, at most `rate` a second after a burst."""

    def __init__(self, rate: float, now: float) -> None:
        self.bucket = TokenBucket(rate, DISPLAY_BURST, now)
        self.held: deque[HeldDisplay] = deque()
        self.by_id: dict[str, HeldDisplay] = {}  # display id -> its latest waiting entry
        self.merged = 0

    def offer(self, display: HeldDisplay, now: float) -> list[HeldDisplay]:
        """Queue `display`; returns what goes out now (it, or nothing)."""
        if not self.held and self.bucket.take(now):
            return [display]
        key = display.display_id
        waiting = self.by_id.get(key) if key is not None and display.update else None
        if waiting is not None and waiting.update:
            waiting.data, waiting.metadata, waiting.parent = (
                display.data,
                display.metadata,
                display.parent,
            )
            self.merged += 1
            return []
        self.held.append(display)
        if key is not None:
            self.by_id[key] = display
        return []

    def due(self, now: float) -> list[HeldDisplay]:
        """What waited and may go out now, in order."""
        out: list[HeldDisplay] = []
        while self.held and self.bucket.take(now):
            out.append(self._pop())
        return out

    def wait(self, now: float) -> float | None:
        """Seconds until the next waiting display may go (None: nothing waits)."""
        return self.bucket.wait(now) if self.held else None

    def drain(self) -> list[HeldDisplay]:
        """Everything waiting, in order, regardless of the rate."""
        return [self._pop() for _ in range(len(self.held))]

    def _pop(self) -> HeldDisplay:
        display = self.held.popleft()
        key = display.display_id
        if key is not None and self.by_id.get(key) is display:
            del self.by_id[key]
        return display
