"""The simulated ends around the real actors: browser windows, the network, the kernel host's
publisher and the cell program. Only these are simulated; the actors are production code.

Everything here runs on the simulation's own thread, except `KernelHost`'s publisher methods,
which the actors call from their threads: they only buffer what was published, and the
simulation hands it to the windows once the step is quiet, in its canonical order. A window
never answers the router from inside a publisher call: every answer is a new message that
crosses the simulated network at a later step. That is what keeps runs deterministic.

`Page` mirrors `frontend/commrouter.js` (one hub per window): install -> open a comm with a new
id and wait `frontend.open_ack_timeout` for `#comm_open_ack`; retry with back-off 0.5, 1, 2 s
(three attempts) when the ack does not come or the websocket closes; queue sends until the
link is open; answer pings and read requests; forget the link on the kernel's comm_close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from commrouter.frontend import INSTALL_MARKER
from commrouter.router.messages import (
    LinkEvent,
    LinkFault,
    Parent,
    ProgramDisplay,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    SyncAck,
    ValueForProgram,
)
from commrouter.transports.memory import InMemoryProgramLink

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation

OPEN_ACK = "#comm_open_ack"
PING = "#heartbeat/ping"
PONG = "#heartbeat/pong"
HEARTBEAT_ADDRESSES = (PING, PONG)

#: pykka names an actor's thread "<ClassName>-<n>"; this maps the class to the actor's name.
THREAD_ACTORS = {
    "Connection": "connection",
    "Heartbeat": "heartbeat",
    "Router": "router",
    "Subscriptions": "subscriptions",
    "ProgramExecutor": "program_executor",
    "Supervisor": "supervisor",
}

#: Why a comm no window holds any more, when an injected fault is the cause: a value published
#: on such a comm is lost with it, explained. Other fates ("closed by the kernel", "replaced by
#: a new install", "no window holds it") leave a value published on the comm unexplained.
FAULT_FATES = (
    "reloaded",
    "closed by the page",
    "vanished",
    "websocket closed",
    "abandoned by a retry",
    "page gave up",
    "server down",
)


def publishing_actor() -> str:
    """The actor whose thread is calling (from its pykka thread name), else "host"."""
    name = threading.current_thread().name
    return THREAD_ACTORS.get(name.rsplit("-", 1)[0], "host")


def cell_parent(msg_id: str, page: str | None) -> dict[str, Any]:
    """The kernel message context of a cell run (or a host call) made from window `page`."""
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": page}}


def parent_session(parent: Parent) -> str | None:
    if not isinstance(parent, Mapping):
        return None
    header = parent.get("header", parent)
    return header.get("session") if isinstance(header, Mapping) else None


# ------------------------------------------------------------------- the kernel host side


@dataclass(frozen=True, slots=True)
class Published:
    """One thing a router published, with the actor that published it."""

    actor: str
    kernel_id: str
    kind: str  # comm_msg, comm_close, display, update, stream
    comm_id: str | None = None
    data: Mapping[str, Any] | None = None
    display_id: str | None = None
    parent: Parent = None


class KernelHost:
    """The `Publisher` of one kernel (router instance): IOPub, broadcast to every window.

    Called from actor threads; only buffers. `Simulation.flush` drains the buffer in its
    canonical order and hands each item to the windows.
    """

    def __init__(self, kernel_id: str, outbox: list[Published], lock: threading.Lock) -> None:
        self.kernel_id = kernel_id
        self._outbox = outbox
        self._lock = lock

    def _put(self, item: Published) -> None:
        with self._lock:
            self._outbox.append(item)

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._put(
            Published(publishing_actor(), self.kernel_id, "comm_msg", comm_id, data, None, parent)
        )

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._put(
            Published(publishing_actor(), self.kernel_id, "comm_close", comm_id, data, None, parent)
        )

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Parent,
    ) -> None:
        kind = "update" if update else "display"
        self._put(
            Published(publishing_actor(), self.kernel_id, kind, None, data, display_id, parent)
        )

    def stream(self, name: str, text: str, parent: Parent) -> None:
        data = {"name": name, "text": text}
        self._put(Published(publishing_actor(), self.kernel_id, "stream", None, data, None, parent))


# -------------------------------------------------------------------------- the network


@dataclass(slots=True)
class Held:
    """A message the network holds back to deliver after the page's next one (reorder)."""

    deliver: Callable[[float], None]
    msg_id: str
    released: bool = False


class Network:
    """Page -> kernel messages: latency, and the injected faults of the current profile."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.profile = sim.scenario.network
        self.last_arrival: dict[str, float] = {}
        self.held: dict[str, Held] = {}

    def transmit(self, page: str, msg_type: str, content: Any, msg_id: str) -> None:
        """Send one shell message from window `page` toward the kernel."""
        sim, profile = self.sim, self.profile
        if not sim.server_up:
            self._dropped(page, msg_type, msg_id, "server down")
            return
        if profile.drop and sim.rng.random() < profile.drop:
            self._dropped(page, msg_type, msg_id, "injected drop")
            return
        low, high = sim.scenario.frontend.latency
        latency = low if low == high else round(sim.rng.uniform(low, high), 6)
        if profile.delay:
            extra = round(sim.rng.uniform(0.0, profile.delay), 6)
            latency += extra
            sim.emit("net.delayed", "net", page=page, msg_id=msg_id, by=extra)
        arrival = max(sim.now() + latency, self.last_arrival.get(page, 0.0))
        copies = [msg_id]
        if profile.duplicate and sim.rng.random() < profile.duplicate:
            copies.append(f"{msg_id}.dup")
            sim.emit("net.duplicated", "net", "warning", page=page, msg_id=msg_id, copy=copies[1])
        if profile.reorder and page not in self.held and sim.rng.random() < profile.reorder:
            held = Held(
                lambda at: self._deliver_copies(page, msg_type, content, copies, at), msg_id
            )
            self.held[page] = held
            sim.emit("net.reordered", "net", "warning", page=page, msg_id=msg_id)
            sim.schedule(0.25, f"net.release {msg_id}", lambda: self._release(page, held, None))
            return
        self._deliver_copies(page, msg_type, content, copies, arrival)
        held = self.held.get(page)
        if held is not None:
            self._release(page, held, arrival)

    def _release(self, page: str, held: Held, at: float | None) -> None:
        if held.released:
            return
        held.released = True
        self.held.pop(page, None)
        arrival = max(self.sim.now(), self.last_arrival.get(page, 0.0)) if at is None else at
        held.deliver(arrival)

    def _deliver_copies(
        self, page: str, msg_type: str, content: Any, copies: list[str], arrival: float
    ) -> None:
        self.last_arrival[page] = arrival
        for msg_id in copies:
            self.sim.schedule_at(
                arrival,
                f"arrive {msg_type} {msg_id}",
                lambda m=msg_id: self.sim.deliver_to_kernel(page, msg_type, content, m),
                entry=_entry_for(msg_type, content),
            )

    def _dropped(self, page: str, msg_type: str, msg_id: str, reason: str) -> None:
        self.sim.emit(
            "net.dropped",
            "net",
            "warning",
            page=page,
            msg_type=msg_type,
            msg_id=msg_id,
            reason=reason,
        )


def _entry_for(msg_type: str, content: Any) -> str:
    """The actor that handles a page message first, for the canonical order of its step."""
    if msg_type == "comm_msg" and isinstance(content, Mapping):
        data = content.get("data")
        if isinstance(data, Mapping) and data.get("address") in HEARTBEAT_ADDRESSES:
            return "heartbeat"
    return "connection"


# ------------------------------------------------------------------------- the windows


@dataclass(slots=True)
class Hub:
    """The page's `globalThis.commrouter` (frontend/commrouter.js)."""

    kernel_id: str | None = None
    comm_id: str | None = None
    ws: int | None = None  # the current websocket (an id), None when dropped
    opened: bool = False
    attempts: int = 0
    ack_timer: Any = None  # the pending ack timeout (an agenda item), cancelled on the ack
    retry_timer: Any = None  # the pending retry (an agenda item)
    queue: list[tuple[str, Any]] = field(default_factory=list)


class Page:
    """One browser window showing the notebook."""

    def __init__(self, sim: Simulation, name: str) -> None:
        self.sim = sim
        self.name = name
        self.alive = True
        self.answer_pings = True
        self.hub: Hub | None = None
        self.synced: dict[str, Any] = {}
        self.displays: set[str] = set()
        self._ws_ids = 0

    # ------------------------------------------------------------------- scenario actions

    def send(self, address: str, value: Any) -> None:
        """`commrouter.send(address, value)`: queued until the link is open."""
        hub = self.hub
        if hub is None or not hub.opened or hub.ws is None:
            if hub is None:
                self.hub = hub = Hub()
            hub.queue.append((address, value))
            self.emit("page.queued", address=address, value=value)
            return
        self._shell_msg(address, value, "send")

    def set(self, address: str, value: Any) -> None:
        """A synced variable's `set(value)`: remembered for read requests, and sent."""
        self.synced[address] = value
        self.send(address, value)

    def ping(self) -> None:
        hub = self.hub
        if hub is None or hub.comm_id is None or hub.ws is None:
            self.emit("page.skipped", what="ping", why="no comm")
            return
        self._shell_msg(PING, True, "ping")

    def reload(self) -> None:
        """The window reloads: the hub and everything it queued are gone; the kernel lives on."""
        hub = self.hub
        discarded = len(hub.queue) if hub else 0
        if hub is not None and hub.comm_id is not None:
            self.sim.comm_fate[hub.comm_id] = "reloaded"
        self.hub = None
        self.synced.clear()
        self.displays.clear()
        self.answer_pings = True
        self.emit("page.reloaded", discarded=discarded)

    def close(self) -> None:
        """The window closes: commrouter.js sends comm_close, then the window is gone."""
        hub = self.hub
        if hub is not None and hub.ws is not None and hub.comm_id is not None:
            msg_id = self.sim.next_id("m")
            self.emit("page.comm_close_sent", comm_id=hub.comm_id, msg_id=msg_id)
            self.sim.network.transmit(
                self.name, "comm_close", {"comm_id": hub.comm_id, "data": {}}, msg_id
            )
        self._gone("closed by the page")
        self.emit("page.closed")

    def vanish(self) -> None:
        """The window is gone without a word (crashed tab, lost laptop)."""
        self._gone("vanished")
        self.emit("page.vanished")

    def _gone(self, fate: str) -> None:
        if self.hub is not None and self.hub.comm_id is not None:
            self.sim.comm_fate[self.hub.comm_id] = fate
        self.hub = None
        self.alive = False

    def reopen(self) -> None:
        """The hub opens its link again with the kernel id it knows (as a retry does)."""
        hub = self.hub
        if hub is None or hub.kernel_id is None:
            self.emit("page.skipped", what="reopen", why="no hub installed")
            return
        self._open_link()

    # ------------------------------------------------------------------- the hub's link

    def run_install(self, kernel_id: str, display_id: str) -> None:
        """The install script ran in this window: `commrouter.install(config)`."""
        if not self.alive or not self.sim.server_up:
            return
        if self.hub is None:
            self.hub = Hub()
        self.emit("page.install_ran", display_id=display_id, for_kernel=kernel_id)
        self.hub.kernel_id = kernel_id
        self.hub.attempts = 0
        self._open_link("replaced by a new install")

    def _open_link(self, fate: str = "abandoned by a retry") -> None:
        hub = self.hub
        assert hub is not None
        self._drop_link(fate)
        self._ws_ids += 1
        ws = hub.ws = self._ws_ids
        hub.comm_id = self.sim.next_id("comm")
        if not self.sim.server_up:  # the websocket cannot connect: onclose comes at once
            self.sim.schedule(0.0, f"{self.name} websocket failed", lambda: self._ws_closed(ws))
            return
        msg_id = self.sim.next_id("m")
        content = {
            "comm_id": hub.comm_id,
            "target_name": self.sim.settings.connection.target_name,
            "data": {"kernel_id": hub.kernel_id},
        }
        self.emit(
            "page.comm_open_sent",
            comm_id=hub.comm_id,
            msg_id=msg_id,
            for_kernel=hub.kernel_id,
            attempt=hub.attempts,
        )
        self.sim.network.transmit(self.name, "comm_open", content, msg_id)
        hub.ack_timer = self.sim.schedule(
            self.sim.settings.frontend.open_ack_timeout,
            f"{self.name} ack timeout",
            lambda: self._ack_timeout(hub, ws),
        )

    def _ack_timeout(self, hub: Hub, ws: int) -> None:
        if hub is self.hub and hub.ws == ws and not hub.opened:
            self._retry("no #comm_open_ack")

    @staticmethod
    def _cancel_ack(hub: Hub) -> None:
        if hub.ack_timer is not None:
            hub.ack_timer.cancel()
            hub.ack_timer = None

    @staticmethod
    def _cancel_retry(hub: Hub) -> None:
        if hub.retry_timer is not None:
            hub.retry_timer.cancel()
            hub.retry_timer = None

    def _ws_closed(self, ws: int) -> None:
        hub = self.hub
        if hub is None or hub.ws != ws:
            return
        if hub.comm_id is not None:
            self.sim.comm_fate.setdefault(hub.comm_id, "websocket closed")
        hub.ws = None
        hub.opened = False
        self._retry("websocket closed")

    def websocket_closed(self, fate: str) -> None:
        """The server closed the websocket (kernel or server restart)."""
        hub = self.hub
        if not self.alive or hub is None or hub.ws is None:
            return
        if hub.comm_id is not None:
            self.sim.comm_fate[hub.comm_id] = fate
        self.emit("page.websocket_closed", comm_id=hub.comm_id)
        self._ws_closed(hub.ws)

    def _retry(self, reason: str) -> None:
        hub = self.hub
        assert hub is not None
        self._cancel_ack(hub)
        if hub.attempts >= 3:
            self.emit("page.gave_up", reason=reason, comm_id=hub.comm_id)
            self._drop_link("page gave up")
            return
        delay = 0.5 * 2**hub.attempts
        hub.attempts += 1
        self.emit("page.retry", reason=reason, delay=delay, attempt=hub.attempts)
        ws = hub.ws
        hub.retry_timer = self.sim.schedule(
            delay, f"{self.name} retry", lambda: self._retry_fire(hub, ws)
        )

    def _retry_fire(self, hub: Hub, ws: int | None) -> None:
        # as commrouter.js: a late ack may have opened this very link meanwhile
        if hub is self.hub and hub.ws == ws and self.alive and not hub.opened:
            self._open_link()

    def _drop_link(self, fate: str) -> None:
        hub = self.hub
        assert hub is not None
        self._cancel_ack(hub)
        self._cancel_retry(hub)
        if hub.comm_id is not None and hub.ws is not None:
            self.sim.comm_fate.setdefault(hub.comm_id, fate)
        hub.ws = None
        hub.opened = False

    # --------------------------------------------------------- what the kernel published

    def holds(self, comm_id: str | None) -> bool:
        hub = self.hub
        return (
            self.alive
            and self.sim.server_up
            and hub is not None
            and hub.ws is not None
            and comm_id is not None
            and hub.comm_id == comm_id
        )

    def on_comm_msg(self, data: Mapping[str, Any]) -> None:
        hub = self.hub
        assert hub is not None
        address = data.get("address")
        if address == OPEN_ACK:
            self._cancel_ack(hub)
            self._cancel_retry(hub)
            hub.opened = True
            hub.attempts = 0
            queued, hub.queue = hub.queue, []
            self.emit("page.link_open", comm_id=hub.comm_id, flushed=len(queued))
            for queued_address, value in queued:
                self._shell_msg(queued_address, value, "flush")
            return
        if address == PING:
            self.emit("page.pinged", comm_id=hub.comm_id, answered=self.answer_pings)
            if self.answer_pings:
                self._shell_msg(PONG, True, "pong")
            return
        if address == PONG:
            self.emit("page.ponged", comm_id=hub.comm_id)
            return
        if data.get("read_request"):
            known = address in self.synced
            self.emit("page.read_requested", comm_id=hub.comm_id, address=address, known=known)
            if known:
                self._shell_msg(str(address), self.synced[str(address)], "read answer")
            return
        value = data.get("value")
        if isinstance(address, str) and address in self.synced:
            self.synced[address] = value
        self.emit("page.received", comm_id=hub.comm_id, address=address, value=value)

    def on_comm_close(self) -> None:
        hub = self.hub
        assert hub is not None
        hub.opened = False
        self.emit("page.comm_closed", comm_id=hub.comm_id)

    def _shell_msg(self, address: str, value: Any, why: str) -> None:
        hub = self.hub
        assert hub is not None
        msg_id = self.sim.next_id("m")
        content = {"comm_id": hub.comm_id, "data": {"address": address, "value": value}}
        self.emit(
            "page.sent", comm_id=hub.comm_id, address=address, value=value, msg_id=msg_id, why=why
        )
        self.sim.network.transmit(self.name, "comm_msg", content, msg_id)

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self.sim.emit(event, "page", level, page=self.name, **fields)


def malformed(kind: str, page: Page, kernel_id: str | None, target: str) -> tuple[str, Any]:
    """A malformed shell message of the given kind: (msg_type, content)."""
    comm_id = page.hub.comm_id if page.hub is not None and page.hub.comm_id else "comm-0"
    data = {"address": "/malformed", "value": 1}
    table: dict[str, tuple[str, Any]] = {
        "no_content": ("comm_msg", None),
        "no_comm_id": ("comm_msg", {"data": data}),
        "unknown_comm": ("comm_msg", {"comm_id": "comm-unknown", "data": data}),
        "no_data": ("comm_msg", {"comm_id": comm_id}),
        "no_address": ("comm_msg", {"comm_id": comm_id, "data": {"value": 1}}),
        "no_value": ("comm_msg", {"comm_id": comm_id, "data": {"address": "/malformed"}}),
        "unknown_private": (
            "comm_msg",
            {"comm_id": comm_id, "data": {"address": "#bogus", "value": 1}},
        ),
        "open_no_content": ("comm_open", None),
        "open_wrong_target": (
            "comm_open",
            {"comm_id": "comm-x", "target_name": "not-" + target, "data": {"kernel_id": kernel_id}},
        ),
        "open_wrong_kernel": (
            "comm_open",
            {"comm_id": "comm-x", "target_name": target, "data": {"kernel_id": "kernel-0"}},
        ),
        "close_unknown": ("comm_close", {"comm_id": "comm-unknown", "data": {}}),
    }
    return table[kind]


# ---------------------------------------------------------------------------- the cell


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

    def send(self, address: str, value: Any) -> None:
        self.request(
            ProgramSend(self.program_id, address, value), "sent", address=address, value=value
        )

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
        message = ProgramDisplay(self.program_id, {"text/html": html}, {}, None, False)
        self.request(message, "displayed", html=html)

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

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self.sim.emit(event, "cell", level, program_id=self.program_id, **fields)


def is_install(data: Mapping[str, Any] | None) -> bool:
    return data is not None and INSTALL_MARKER in str(data.get("text/html", ""))
