"""The simulated cell program: `Cell`, on an in-memory `ProgramLink`, on the simulation's own
thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commrouter.router.messages import (
    LinkEvent,
    LinkFault,
    ProgramDisplay,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    ReadFailed,
    SyncAck,
    ValueForProgram,
)
from commrouter.simulation.publisher import connect_marker
from commrouter.transports.memory import InMemoryProgramLink

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation


class Cell:
    """A cell program on an in-memory `ProgramLink` (the same interface as the named pipes).

    It reads its link after every step (unless hung or silent), sends what the scenario says,
    and records what it received. Like the pipes, a closed link carries nothing more.
    """

    def __init__(
        self, sim: Simulation, program_id: str, link: InMemoryProgramLink, page: str | None
    ) -> None:
        self.sim = sim
        self.program_id = program_id
        self.link = link
        self.page = page
        self.kernel_id: str | None = None
        self.running = True
        self.hung = False
        self.sync_ids = 0
        self.displayed = False  # its first display carries the hub's `connect` (as widgets do)

    def request(self, message: LinkEvent, what: str, **fields: Any) -> bool:
        """Emit one request toward the kernel; logged as `cell.<what>`, or as `cell.unsent`
        (with the request's name) when the program cannot: not running, hung, link closed."""
        if not self.running or self.hung or self.link.closed:
            why = "not running" if not self.running else "hung" if self.hung else "link closed"
            request = type(message).__name__.removeprefix("Program").removeprefix("Link").lower()
            self.emit("cell.unsent", request=request, why=why, **fields)
            return False
        self.emit(f"cell.{what}", **fields)
        self.link.emit(message)
        return True

    def send(self, address: str, value: Any, stream: bool = False) -> None:
        """`program.send(address, value, stream=...)`: a stream value is never merged."""
        fields: dict[str, Any] = {"address": address, "value": value}
        if stream:
            fields["stream"] = True
        self.request(ProgramSend(self.program_id, address, value, stream), "sent", **fields)

    def subscribe(self, address: str) -> None:
        self.request(ProgramSubscribe(self.program_id, address), "subscribed", address=address)

    def unsubscribe(self, address: str) -> None:
        self.request(ProgramUnsubscribe(self.program_id, address), "unsubscribed", address=address)

    def read(self, address: str) -> None:
        self.request(ProgramRead(self.program_id, address), "read", address=address)

    def sync(self) -> None:
        sync_id = self.sync_ids + 1
        if self.request(ProgramSync(self.program_id, sync_id), "sync", sync_id=sync_id):
            self.sync_ids = sync_id

    def start_link(self) -> None:
        self.request(ProgramStartLink(self.program_id), "start_link")

    def display(self, html: str) -> None:
        """`program.display(...)`. The first display of the cell carries the hub and its
        `commrouter.connect(config)`, as a program's first widget does (program/widget_base.py
        `hub_bootstrap`): saved with the notebook, it links a reloaded window or a second tab."""
        shown = html
        if not self.displayed and self.kernel_id is not None:
            shown = html + connect_marker(self.kernel_id, self.program_id)
        message = ProgramDisplay(self.program_id, {"text/html": shown}, {}, None, False)
        if self.request(message, "displayed", html=html):
            self.displayed = True

    def garbage(self, reason: str) -> None:
        """Bytes the link cannot decode: a `LinkFault`; a desynchronising one closes the link."""
        closes = reason in ("frame too large", "bad secret")
        if not self.request(
            LinkFault(self.program_id, reason, "injected by the simulation"),
            "garbage",
            reason=reason,
            closes=closes,
        ):
            return
        if closes:
            self.link.hang_up(reason)

    def poll(self) -> bool:
        """Read what arrived (unless hung). True if anything was taken."""
        if self.hung or not self.running:
            return False
        taken = self.link.take()
        for message in taken:
            self._record(message, "cell.received")
        return bool(taken)

    def lose_unread(self, why: str) -> None:
        """The program is gone: what still waits in its link is lost (logged, explained)."""
        for message in self.link.take():
            self._record(message, "cell.lost", why=why)

    def _record(self, message: Any, event: str, **fields: Any) -> None:
        if isinstance(message, ValueForProgram):
            self.emit(event, address=message.address, value=message.value, **fields)
        elif isinstance(message, SyncAck):
            name = "cell.sync_ack" if event == "cell.received" else event
            self.emit(name, sync_id=message.sync_id, error=message.error, **fields)
        elif isinstance(message, ReadFailed):
            name = "cell.read_failed" if event == "cell.received" else event
            self.emit(name, address=message.address, reason=message.reason, **fields)

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self.sim.emit(event, "cell", level, program_id=self.program_id, **fields)
