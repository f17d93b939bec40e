"""In-memory transports: a front-end and a program link without sockets or pipes.

They drive the very same actors as production, for fast tests and the simulation harness.
`InMemoryFrontEnd` is both the host's `Publisher` and a browser that behaves like
commrouter.js: it runs the install script (opens the comm), answers pings and read requests,
and keeps every value it received. `InMemoryProgramLink` is a `ProgramLink` whose program side
is `InMemoryProgram`.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commrouter.frontend import INSTALL_MARKER
from commrouter.router.messages import (
    LinkClosed,
    LinkEvent,
    LinkWritable,
    NoPage,
    Parent,
    ProgramDisplay,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    ReadFailed,
    SyncAck,
    ToProgram,
    ValueForProgram,
)
from commrouter.router.values import check_address, check_json
from commrouter.transports.page_stream import PageStream

if TYPE_CHECKING:
    from commrouter.embedding import CommRouter


@dataclass(frozen=True, slots=True)
class Published:
    """One thing the router published: kind is comm_msg, comm_close, display, update or
    stream (`data` is `{"name": "stdout" | "stderr", "text": ...}`)."""

    kind: str
    comm_id: str | None = None
    data: Mapping[str, Any] | None = None
    display_id: str | None = None
    parent: Parent = None


class InMemoryFrontEnd:
    """A browser plus its kernel host, in memory. Thread-safe."""

    def __init__(
        self,
        kernel_id: str,
        *,
        target_name: str = "commrouter",
        auto_open: bool = True,
        answer_pings: bool = True,
        auto_ack: bool = True,
        name: str = "",
    ) -> None:
        self.kernel_id = kernel_id
        self.name = name  # a window's name prefixes its comm ids (several windows, one kernel)
        self.target_name = target_name
        self.auto_open = auto_open
        self.answer_pings = answer_pings
        self.auto_ack = auto_ack  # acknowledge each message as it arrives, as commrouter.js
        self.numbering = PageStream()
        self.gaps = 0
        self.fail_publish = False
        self.router: CommRouter | None = None
        self.comm_id: str | None = None
        self.acked = False
        self.published: list[Published] = []
        self.values: dict[str, list[Any]] = {}
        self.synced: dict[str, Any] = {}  # what a SyncedVariable holds, answers read requests
        self.pings = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    def connect(self, router: CommRouter) -> None:
        """Hand incoming comm messages to `router` (as the kernel host would)."""
        self.router = router

    # ------------------------------------------------------------------- Publisher side

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._record(Published("comm_msg", comm_id, data, parent=parent))
        if comm_id != self.comm_id:
            return  # a browser only hears its own comm
        address = data.get("address")
        if address == "#comm_open_ack":
            self.acked = True
            self.numbering.opened(data.get("value"))
            return
        if address == "#heartbeat/ping":
            self.pings += 1
            if self.answer_pings:
                self._to_kernel("#heartbeat/pong", data.get("value"))
            return
        if address == "#heartbeat/pong":
            return
        with self._lock:
            items, gap = self.numbering.accept(data)
            self.gaps += gap
            for item in items:
                self._item(item)
            received = self.numbering.received
        if self.auto_ack and "seq" in data:
            self.ack(received, gap=gap)

    def _item(self, item: Mapping[str, Any]) -> None:
        address = item.get("address")
        if item.get("read_request"):
            if address in self.synced:
                self._to_kernel(address, self.synced[address])
            else:  # as commrouter.js: no synced variable here, say so at once
                reason = f"no synced variable for {address} on this page"
                data = {"address": address, "read_failed": reason}
                self._router().handle_comm_msg({"comm_id": self.comm_id, "data": data})
        elif isinstance(address, str):
            self.values.setdefault(address, []).append(item.get("value"))

    def ack(self, seq: int | None = None, gap: bool = False) -> None:
        """Acknowledge everything received up to `seq` (default: all received in order);
        `gap`: a message skipped a number, so the kernel sends again from there."""
        data: dict[str, Any] = {"address": "#ack"}
        data["value"] = self.numbering.received if seq is None else seq
        if gap:
            data["gap"] = True
        self._router().handle_comm_msg({"comm_id": self.comm_id, "data": data})

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._record(Published("comm_close", comm_id, data, parent=parent))
        if comm_id == self.comm_id:
            self.comm_id, self.acked = None, False

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Parent,
    ) -> None:
        self._record(Published("update" if update else "display", None, data, display_id, parent))
        if not update and INSTALL_MARKER in str(data.get("text/html", "")) and self.auto_open:
            self.open()

    def stream(self, name: str, text: str, parent: Parent) -> None:
        self._record(Published("stream", None, {"name": name, "text": text}, parent=parent))

    def _record(self, item: Published) -> None:
        if self.fail_publish:
            raise ConnectionError("in-memory publisher told to fail")
        with self._lock:
            self.published.append(item)

    # --------------------------------------------------------------------- browser side

    def open(self, kernel_id: str | None = None, target_name: str | None = None) -> str:
        """Open a new comm, as the install script does (a reload opens a new one too)."""
        comm_id = f"{self.name}comm-{next(self._ids)}"
        self.comm_id, self.acked = comm_id, False
        data: dict[str, Any] = {"kernel_id": kernel_id or self.kernel_id}
        resume = self.numbering.resume()
        if resume is not None:
            data["resume"] = resume
        self._router().handle_comm_open(
            {"comm_id": comm_id, "target_name": target_name or self.target_name, "data": data}
        )
        return comm_id

    def reload(self) -> None:
        """The page reloads: it forgets what it received (a new page sends no resume)."""
        with self._lock:
            self.numbering = PageStream()
            self.values.clear()
            self.comm_id, self.acked = None, False

    def send(self, address: str, value: Any) -> None:
        """What `commrouter.send(address, value)` does in the browser."""
        self._to_kernel(address, value)

    def send_batch(self, items: list[tuple[str, Any]]) -> None:
        """Several values in one comm message, as the hub sends what waits."""
        batch = [{"address": a, "value": v} for a, v in items]
        self._router().handle_comm_msg({"comm_id": self.comm_id, "data": {"batch": batch}})

    def close(self) -> None:
        comm_id, self.comm_id, self.acked = self.comm_id, None, False
        if comm_id is not None:
            self._router().handle_comm_close({"comm_id": comm_id, "data": {}})

    def received(self, address: str) -> list[Any]:
        with self._lock:
            return list(self.values.get(address, ()))

    def of_kind(self, kind: str) -> list[Published]:
        with self._lock:
            return [p for p in self.published if p.kind == kind]

    def _to_kernel(self, address: str, value: Any) -> None:
        self._router().handle_comm_msg(
            {"comm_id": self.comm_id, "data": {"address": address, "value": value}}
        )

    def _router(self) -> CommRouter:
        if self.router is None:
            raise RuntimeError("InMemoryFrontEnd.connect(router) was not called")
        return self.router


class InMemoryProgramLink:
    """A `ProgramLink` whose other end is an `InMemoryProgram`; holds `capacity` messages."""

    def __init__(self, program_id: str, capacity: int = 1_000_000) -> None:
        self.program_id = program_id
        self.capacity = capacity
        self._sink: Callable[[LinkEvent], None] | None = None
        self._early: list[LinkEvent] = []  # sent before the router attached, as a pipe holds it
        self._inbox: deque[ToProgram] = deque()
        self._refused = False
        self._closed = False
        self._cond = threading.Condition()

    def attach(self, sink: Callable[[LinkEvent], None]) -> None:
        with self._cond:
            self._sink = sink
            early, self._early = self._early, []
        for event in early:
            sink(event)

    def offer(self, message: ToProgram) -> bool:
        with self._cond:
            if self._closed:
                return True  # swallowed: the program is gone; the executor logs the close
            if len(self._inbox) >= self.capacity:
                self._refused = True
                return False
            self._inbox.append(message)
            self._cond.notify_all()
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------- program side

    def emit(self, event: LinkEvent) -> None:
        with self._cond:
            sink = self._sink
            if sink is None:
                self._early.append(event)
                return
        sink(event)

    def take(self, limit: int | None = None) -> list[ToProgram]:
        """Remove and return what waits for the program (at most `limit`)."""
        with self._cond:
            n = len(self._inbox) if limit is None else min(limit, len(self._inbox))
            taken = [self._inbox.popleft() for _ in range(n)]
            refused, self._refused = self._refused, False
        if refused and taken and self._sink is not None:
            self._sink(LinkWritable(self.program_id))
        return taken

    def wait(self, timeout: float) -> bool:
        """Block the program side (bounded, real time) until something waits for it."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._inbox) or self._closed, timeout)

    def hang_up(self, reason: str = "program closed its pipes") -> None:
        self.close()
        self.emit(LinkClosed(self.program_id, reason))


class InMemoryProgram:
    """What a cell program does, through an in-memory link. Values are checked at this edge."""

    def __init__(self, program_id: str, capacity: int = 1_000_000) -> None:
        self.program_id = program_id
        self.link = InMemoryProgramLink(program_id, capacity)
        self.values: dict[str, list[Any]] = {}
        self.acks: dict[int, str | None] = {}
        self.no_page: str | None = None
        self.read_failures: list[tuple[str, str]] = []
        self._sync_ids = itertools.count(1)

    def send(self, address: str, value: Any, stream: bool = False) -> None:
        check_address(address)
        self.link.emit(ProgramSend(self.program_id, address, check_json(address, value), stream))

    def subscribe(self, address: str) -> None:
        self.link.emit(ProgramSubscribe(self.program_id, check_address(address)))

    def unsubscribe(self, address: str) -> None:
        self.link.emit(ProgramUnsubscribe(self.program_id, check_address(address)))

    def read(self, address: str) -> None:
        self.link.emit(ProgramRead(self.program_id, check_address(address)))

    def sync(self) -> int:
        sync_id = next(self._sync_ids)
        self.link.emit(ProgramSync(self.program_id, sync_id))
        return sync_id

    def start_link(self) -> None:
        self.link.emit(ProgramStartLink(self.program_id))

    def display(
        self, data: Mapping[str, Any], display_id: str | None = None, update: bool = False
    ) -> None:
        self.link.emit(ProgramDisplay(self.program_id, data, {}, display_id, update))

    def poll(self, limit: int | None = None) -> list[ToProgram]:
        """Take what arrived; values are filed by address and sync acks by id."""
        taken = self.link.take(limit)
        for message in taken:
            if isinstance(message, ValueForProgram):
                self.values.setdefault(message.address, []).append(message.value)
            elif isinstance(message, SyncAck):
                self.acks[message.sync_id] = message.error
            elif isinstance(message, NoPage):
                self.no_page = message.reason
            elif isinstance(message, ReadFailed):
                self.read_failures.append((message.address, message.reason))
        return taken

    def received(self, address: str) -> list[Any]:
        return list(self.values.get(address, ()))


class InMemoryWindows:
    """Several browser windows on one kernel, each an `InMemoryFrontEnd` with its own name:
    what the kernel publishes reaches every window (as IOPub does), and each acts only on its
    own comm. The publisher of a router under test with fan-out to several windows."""

    def __init__(self, *windows: InMemoryFrontEnd) -> None:
        self.windows = list(windows)

    def connect(self, router: CommRouter) -> None:
        for window in self.windows:
            window.connect(router)

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        for window in self.windows:
            window.comm_msg(comm_id, data, parent)

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        for window in self.windows:
            window.comm_close(comm_id, data, parent)

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Parent,
    ) -> None:
        for window in self.windows:
            window.display(data, metadata, display_id, update=update, parent=parent)

    def stream(self, name: str, text: str, parent: Parent) -> None:
        for window in self.windows:
            window.stream(name, text, parent)
