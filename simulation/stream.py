"""What crosses a simulated window's link, as `frontend/commrouter.js` does it: `PageStream`
(a part of `page.Page`) and the hub's state (`Hub`).

- Kernel -> page values are numbered (`seq`, a single item or a batch `{seq, batch}`). Per
  kernel, the hub remembers the kernel's stream id and the highest number it received in order
  (`Position`). It takes each number once and in order: an item already received is a duplicate
  (ignored), and a message whose first new number skips ahead is a gap (the rest of it is
  ignored). Either way it acknowledges again what it has: one cumulative `#ack` per JS task (a
  zero-delay step on the agenda), so every message delivered in one step gets one ack.
- Unnumbered messages (`#comm_open_ack`, pings, pongs) are handled at once; a ping is answered
  at once with a pong carrying its number.
- Page -> kernel values wait in the hub's queue. While the link is open the queue is sent at the
  end of the task (a microtask; here a zero-delay step): one value in the single form, more as
  one `{batch: [...]}` message (`BATCH_LIMIT` items at most). While the link is down at most
  `queue_limit` values wait (the install config's, `frontend.queue_limit`); the oldest beyond it
  are dropped and counted (`page.queue_dropped`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation
    from commrouter.simulation.simtime import Item

OPEN_ACK = "#comm_open_ack"
PING = "#heartbeat/ping"
PONG = "#heartbeat/pong"
ACK = "#ack"
HEARTBEAT_ADDRESSES = (PING, PONG)
QUEUE_LIMIT = 10_000  # commrouter.js's default, until an install config sets `queue_limit`
BATCH_LIMIT = 1_000  # values per page -> kernel batch message, as commrouter.js


def is_seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(slots=True)
class Position:
    """Where a kernel's numbered stream stands for this hub."""

    stream: Any
    seq: int  # the highest number received in order


@dataclass(slots=True)
class Hub:
    """The page's `globalThis.commrouter` (frontend/commrouter.js)."""

    queue_limit: int = QUEUE_LIMIT
    kernel_id: str | None = None
    comm_id: str | None = None
    ws: int | None = None  # the current websocket (an id), None when dropped
    opened: bool = False
    attempts: int = 0
    ack_timer: Item | None = None  # the pending open-ack timeout, cancelled on the ack
    retry_timer: Item | None = None  # the pending retry
    queue: list[dict[str, Any]] = field(default_factory=list)  # {address, value}, not sent yet
    flush_task: Item | None = None  # the end-of-task flush, when scheduled
    ack_task: Item | None = None  # the end-of-task #ack, when scheduled
    ack_gap: bool = False  # this task saw a message skip a number: the #ack says `gap`
    streams: dict[str, Position] = field(default_factory=dict)  # by kernel id
    position: Position | None = None  # the current comm's (after its #comm_open_ack)
    pings: int = 0  # the page's own ping numbers
    dropped: int = 0  # values dropped from the full queue while the link was down

    @property
    def link_open(self) -> bool:
        return self.opened and self.ws is not None

    @property
    def live(self) -> bool:
        """Up or on its way up (open, awaiting its open ack, waiting to retry): commrouter.js
        `Link.live`, which a saved widget's `connect` checks."""
        return self.ws is not None and (
            self.opened or self.ack_timer is not None or self.retry_timer is not None
        )

    def open_stream(self, value: Any) -> Position:
        """`#comm_open_ack {stream, seq}`: the same stream keeps what was received (the kernel
        may send some of it again); a new one starts where the kernel says."""
        ack = value if isinstance(value, Mapping) else {}
        first = ack["seq"] if is_seq(ack.get("seq")) else 1
        known = self.streams.get(str(self.kernel_id))
        stream = ack.get("stream")
        seq = max(known.seq, first - 1) if known and known.stream == stream else first - 1
        self.position = Position(stream, seq)
        self.streams[str(self.kernel_id)] = self.position
        return self.position


class PageStream:
    """The sending and receiving half of `Page` (see the module doc)."""

    if TYPE_CHECKING:  # what it uses of the rest of Page
        sim: Simulation
        name: str
        hub: Hub | None
        synced: dict[str, Any]
        answer_pings: bool

        def emit(self, event: str, level: str = "info", **fields: Any) -> None: ...
        def on_comm_open_ack(self, value: Any) -> None: ...

    # ---------------------------------------------------------------- page -> kernel

    def send(self, address: str, value: Any) -> None:
        """`commrouter.send(address, value)`: sent at the end of the task, or queued."""
        if self.hub is None:
            self.hub = Hub()
        hub = self.hub
        hub.queue.append({"address": address, "value": value})
        if hub.link_open:
            if hub.flush_task is None:
                hub.flush_task = self.sim.schedule(
                    0.0, f"{self.name} flush", lambda: self._flush("send")
                )
            return
        self.emit("page.queued", address=address, value=value)
        excess = len(hub.queue) - hub.queue_limit
        if excess > 0:
            dropped, hub.queue[:excess] = hub.queue[:excess], []
            hub.dropped += excess
            for item in dropped:
                self.emit(
                    "page.queue_dropped",
                    "warning",
                    address=item["address"],
                    value=item["value"],
                    dropped=hub.dropped,
                )

    def _flush(self, why: str) -> None:
        """Send every queued value: one message in the single form, or batches."""
        hub = self.hub
        if hub is None:
            return
        hub.flush_task = None
        if not hub.link_open:
            return
        while hub.queue:
            items, hub.queue[:BATCH_LIMIT] = hub.queue[:BATCH_LIMIT], []
            self._comm_msg(items[0] if len(items) == 1 else {"batch": items}, why)

    def ping(self) -> None:
        """The page pings the kernel (numbered; the kernel's pong echoes the number)."""
        hub = self.hub
        if hub is None or hub.comm_id is None or hub.ws is None:
            self.emit("page.skipped", what="ping", why="no comm")
            return
        hub.pings += 1
        self._comm_msg({"address": PING, "value": hub.pings}, "ping")

    def _comm_msg(self, data: dict[str, Any], why: str) -> None:
        hub = self.hub
        assert hub is not None
        msg_id = self.sim.next_id("m")
        fields: dict[str, Any] = {"comm_id": hub.comm_id, "msg_id": msg_id, "why": why}
        if "batch" in data:
            fields["batch"] = data["batch"]
        elif "read_failed" in data:
            fields.update(address=data["address"], read_failed=data["read_failed"])
        else:
            fields.update(address=data["address"], value=data["value"])
        self.emit("page.sent", **fields)
        content = {"comm_id": hub.comm_id, "data": data}
        self.sim.network.transmit(self.name, "comm_msg", content, msg_id)

    # ---------------------------------------------------------------- kernel -> page

    def on_comm_msg(self, data: Mapping[str, Any], kernel_id: str) -> None:
        """A comm_msg on this window's comm, from kernel `kernel_id`."""
        hub = self.hub
        assert hub is not None
        if "seq" in data:
            self._numbered(data, kernel_id)
            return
        address = data.get("address")
        if address == OPEN_ACK:
            self.on_comm_open_ack(data.get("value"))
        elif address == PING:
            number = data.get("value")
            self.emit("page.pinged", comm_id=hub.comm_id, ping=number, answered=self.answer_pings)
            if self.answer_pings:
                self._comm_msg({"address": PONG, "value": number}, "pong")
        elif address == PONG:
            number = data.get("value")
            self.emit("page.ponged", comm_id=hub.comm_id, ping=number, pending=hub.pings)
        else:  # an unnumbered value (not in this protocol): taken as it is
            self._dispatch(data, kernel_id, None)

    def _numbered(self, data: Mapping[str, Any], kernel_id: str) -> None:
        hub = self.hub
        assert hub is not None
        position, first = hub.position, data.get("seq")
        if position is None or not is_seq(first):
            why = "bad seq" if position is not None else "no stream yet"
            self.emit("page.ignored", comm_id=hub.comm_id, number=first, why=why)
            return
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        duplicates = 0
        for index, item in enumerate(items):
            seq = first + index
            if seq <= position.seq:
                duplicates += 1
                continue
            if seq > position.seq + 1:
                self.emit("page.gap", comm_id=hub.comm_id, number=seq, after=position.seq)
                hub.ack_gap = True
                break
            position.seq = seq
            self._dispatch(item if isinstance(item, Mapping) else {}, kernel_id, seq)
        if duplicates:
            self.emit("page.duplicates", comm_id=hub.comm_id, first=first, count=duplicates)
        self._schedule_ack()

    def _dispatch(self, data: Mapping[str, Any], kernel_id: str, seq: int | None) -> None:
        hub = self.hub
        assert hub is not None
        address = data.get("address")
        if data.get("read_request"):
            known = address in self.synced
            self.emit(
                "page.read_requested",
                comm_id=hub.comm_id,
                kernel_id=kernel_id,
                address=address,
                number=seq,
                known=known,
            )
            if known:
                self.send(str(address), self.synced[str(address)])
            else:  # as commrouter.js: nothing here, said at once
                reason = f"no synced variable for {address} on this page"
                self._comm_msg({"address": str(address), "read_failed": reason}, "read failed")
            return
        value = data.get("value")
        if isinstance(address, str) and address in self.synced:
            self.synced[address] = value
        self.emit(
            "page.received",
            comm_id=hub.comm_id,
            kernel_id=kernel_id,
            address=address,
            value=value,
            number=seq,
        )

    def _schedule_ack(self) -> None:
        """One `#ack` per JS task: every message delivered in this step is taken first."""
        hub = self.hub
        assert hub is not None
        if hub.ack_task is None:
            hub.ack_task = self.sim.schedule(0.0, f"{self.name} ack", self._send_ack)

    def _send_ack(self) -> None:
        hub = self.hub
        if hub is None:
            return
        hub.ack_task = None
        gap, hub.ack_gap = hub.ack_gap, False
        if hub.link_open and hub.position is not None:
            ack: dict[str, Any] = {"address": ACK, "value": hub.position.seq}
            if gap:  # a number was skipped: the kernel sends again from here
                ack["gap"] = True
            self._comm_msg(ack, "ack")
