"""The simulated browser windows: `Page` and its hub, on the simulation's own thread.

`Page` mirrors `frontend/commrouter.js` (one hub per window). The link: install -> open a comm
with a new id (with `data.resume`, where the kernel's numbered stream stopped, for a kernel the
hub was linked to before) and wait `frontend.open_ack_timeout` for `#comm_open_ack`; retry with
back-off 0.5, 1, 2 s (three attempts) when the ack does not come or the websocket closes;
forget the link on the kernel's comm_close. What crosses it (kernel -> page numbered values,
acks, batches, the page's bounded queue) is `PageStream`'s (simulation/stream.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from commrouter.simulation.stream import (
    ACK,
    HEARTBEAT_ADDRESSES,
    OPEN_ACK,
    PING,
    PONG,
    Hub,
    PageStream,
)

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation

__all__ = [
    "ACK",
    "FAULT_FATES",
    "HEARTBEAT_ADDRESSES",
    "OPEN_ACK",
    "PING",
    "PONG",
    "Hub",
    "Page",
    "malformed",
]

#: how long a display's `commrouter.connect` waits for the kernel's own install before it links
#: the window itself (frontend/commrouter.js `CONNECT_DELAY_MS`)
CONNECT_DELAY = 2.0

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


class Page(PageStream):
    """One browser window showing the notebook."""

    def __init__(self, sim: Simulation, name: str) -> None:
        self.sim = sim
        self.name = name
        self.alive = True
        self.answer_pings = True
        self.hub: Hub | None = None
        self.synced: dict[str, Any] = {}
        self.displays: set[str] = set()
        self.busy_until = 0.0  # the main thread is busy (frozen) until then
        self._ws_ids = 0
        self.loads = 1  # how many times the window loaded the notebook (a reload adds one)

    # ------------------------------------------------------------------- scenario actions

    def set(self, address: str, value: Any) -> None:
        """A synced variable's `set(value)`: remembered for read requests, and sent."""
        self.synced[address] = value
        self.send(address, value)

    def reload(self) -> None:
        """The window reloads: the hub and everything it queued are gone; the kernel lives on."""
        hub = self.hub
        discarded = len(hub.queue) if hub else 0
        if hub is not None:
            self._cancel_timers(hub)
            if hub.comm_id is not None:
                self.sim.comm_fate[hub.comm_id] = "reloaded"
        self.hub = None
        self.synced.clear()
        self.displays.clear()
        self.answer_pings = True
        self.loads += 1
        self.emit("page.reloaded", discarded=discarded)
        self.render_saved()

    def close(self) -> None:
        """The window closes: commrouter.js sends comm_close, then the window is gone."""
        hub = self.hub
        discarded = len(hub.queue) if hub else 0
        if hub is not None and hub.ws is not None and hub.comm_id is not None:
            msg_id = self.sim.next_id("m")
            self.emit("page.comm_close_sent", comm_id=hub.comm_id, msg_id=msg_id)
            self.sim.network.transmit(
                self.name, "comm_close", {"comm_id": hub.comm_id, "data": {}}, msg_id
            )
        self._gone("closed by the page")
        self.emit("page.closed", discarded=discarded)

    def vanish(self) -> None:
        """The window is gone without a word (crashed tab, lost laptop)."""
        discarded = len(self.hub.queue) if self.hub else 0
        self._gone("vanished")
        self.emit("page.vanished", discarded=discarded)

    def _gone(self, fate: str) -> None:
        if self.hub is not None:
            self._cancel_timers(self.hub)
            if self.hub.comm_id is not None:
                self.sim.comm_fate[self.hub.comm_id] = fate
        self.hub = None
        self.alive = False

    def freeze(self, seconds: float) -> None:
        """The page's main thread is busy for `seconds`: what arrives for it meanwhile waits
        and is taken in order when it is free (`busy`); it answers, acks and sends nothing."""
        self.busy_until = max(self.busy_until, round(self.sim.now() + seconds, 6))
        self.emit("page.frozen", until=self.busy_until)
        self.sim.schedule_at(self.busy_until, f"{self.name} thaws", self._thawed)

    def _thawed(self) -> None:
        if self.alive and self.sim.now() >= self.busy_until:
            self.emit("page.thawed")

    def busy(self, fn: Callable[[], None], label: str) -> bool:
        """While the page is frozen, `fn` waits until it is free (True: it was put off)."""
        if self.busy_until <= self.sim.now():
            return False
        self.sim.schedule_at(self.busy_until, f"{self.name} {label} (was busy)", fn)
        return True

    def reopen(self) -> None:
        """The hub opens its link again with the kernel id it knows (as a retry does)."""
        hub = self.hub
        if hub is None or hub.kernel_id is None:
            self.emit("page.skipped", what="reopen", why="no hub installed")
            return
        self._open_link()

    # ------------------------------------------------------------------- the hub's link

    def render_saved(self) -> None:
        """The window renders the saved notebook (it opened or reloaded): every display there
        that carries a `connect` of a program still running links its kernel, as the saved
        widget's script does. (A program that ended re-rendered its widgets without one.)"""
        for display_id, (kernel_id, program_id) in self.sim.saved_connects.items():
            cell = self.sim.cells.get(program_id)
            if cell is not None and cell.running:
                self.displays.add(display_id)
                self.connect_later(kernel_id, display_id)

    def connect_later(self, kernel_id: str, display_id: str) -> None:
        """`commrouter.connect(config)`: after `CONNECT_DELAY` (the live page's own install
        comes first), link `kernel_id` unless this window's hub has installed it already."""
        loads = self.loads
        self.sim.schedule(
            CONNECT_DELAY,
            f"{self.name} connects",
            lambda: self._connect(kernel_id, display_id, loads),
        )

    def _connect(self, kernel_id: str, display_id: str, loads: int) -> None:
        if not self.alive or loads != self.loads:  # the window that rendered it is gone
            return
        if self.busy(lambda: self._connect(kernel_id, display_id, loads), "connects"):
            return
        hub = self.hub
        if hub is not None and hub.kernel_id == kernel_id and hub.live:
            return  # linked (by the kernel's install, or an earlier connect): nothing to do
        self.emit("page.connect_ran", display_id=display_id, for_kernel=kernel_id)
        self._install(kernel_id)

    def run_install(self, kernel_id: str, display_id: str) -> None:
        """The install script ran in this window: `commrouter.install(config)`."""
        if not self.alive or not self.sim.server_up:
            return
        if self.busy(lambda: self.run_install(kernel_id, display_id), "runs the install"):
            return
        self.emit("page.install_ran", display_id=display_id, for_kernel=kernel_id)
        self._install(kernel_id)

    def _install(self, kernel_id: str) -> None:
        """`commrouter.install(config)`: (re)link the hub to `kernel_id` on a new comm."""
        if self.hub is None:
            self.hub = Hub()
        self.hub.kernel_id = kernel_id
        self.hub.queue_limit = self.sim.settings.frontend.queue_limit  # the install config's
        self.hub.attempts = 0
        self._open_link("replaced by a new install")

    def _open_link(self, fate: str = "abandoned by a retry") -> None:
        hub = self.hub
        assert hub is not None
        self._drop_link(fate)
        self._ws_ids += 1
        ws = hub.ws = self._ws_ids
        hub.comm_id = self.sim.next_id("comm")
        hub.position = None  # until this comm's #comm_open_ack says where the stream is
        if not self.sim.server_up:  # the websocket cannot connect: onclose comes at once
            self.sim.schedule(0.0, f"{self.name} websocket failed", lambda: self._ws_closed(ws))
            return
        msg_id = self.sim.next_id("m")
        data: dict[str, Any] = {"kernel_id": hub.kernel_id}
        known = hub.streams.get(str(hub.kernel_id))
        if known is not None:
            data["resume"] = {"stream": known.stream, "seq": known.seq}
        content = {
            "comm_id": hub.comm_id,
            "target_name": self.sim.settings.connection.target_name,
            "data": data,
        }
        self.emit(
            "page.comm_open_sent",
            comm_id=hub.comm_id,
            msg_id=msg_id,
            for_kernel=hub.kernel_id,
            attempt=hub.attempts,
            resume=data.get("resume"),
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

    def _cancel_timers(self, hub: Hub) -> None:
        """The hub is gone (reload, close, vanish): none of its timers fires."""
        self._cancel_ack(hub)
        self._cancel_retry(hub)
        for item in (hub.flush_task, hub.ack_task):
            if item is not None:
                item.cancel()
        hub.flush_task = hub.ack_task = None

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
        hub.retry_timer = None  # this one (a cancelled retry never fires)
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

    def on_comm_open_ack(self, value: Any) -> None:
        """`#comm_open_ack {stream, seq}`: the link is open; the stream resumes at `seq`."""
        hub = self.hub
        assert hub is not None
        self._cancel_ack(hub)
        self._cancel_retry(hub)
        position = hub.open_stream(value)
        hub.opened = True
        hub.attempts = 0
        self.emit(
            "page.link_open",
            comm_id=hub.comm_id,
            flushed=len(hub.queue),
            stream=position.stream,
            number=position.seq,
        )
        self._flush("flush")

    def on_comm_close(self) -> None:
        hub = self.hub
        assert hub is not None
        hub.opened = False
        self.emit("page.comm_closed", comm_id=hub.comm_id)

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
