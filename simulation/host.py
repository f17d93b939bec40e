"""The kernel host's side of a run: the kernel process, the host's calls into the router,
and what crosses between the kernel and the windows.

`HostSide` is a part of `runner.Simulation` (a mixin). It starts and stops the kernel (a
`CommRouter` with its `KernelHost` publisher) and does the `host.*` actions of a scenario:
restarts, injected crashes, and the calls whose promises the host holds (ensure, send, heartbeat,
close), tracked until they settle, are abandoned by a restart or are left pending at the end. It
hands a window's message that reached the kernel to the router, and broadcasts what the router
published to the windows: a window acts only on its own comm; a comm message no window holds is
logged `host.unheard` with the comm's fate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commrouter.actors.runtime import Promise
from commrouter.embedding import CommRouter
from commrouter.simulation.publisher import (
    KernelHost,
    Published,
    cell_parent,
    connect_of,
    is_install,
    parent_session,
)

if TYPE_CHECKING:
    import random
    import threading
    from collections.abc import Callable

    from commrouter.config import Settings
    from commrouter.simulation.cell import Cell
    from commrouter.simulation.network import Network
    from commrouter.simulation.page import Page
    from commrouter.simulation.runlog import RunLog
    from commrouter.simulation.runner import Hooks
    from commrouter.simulation.scenario import Scenario
    from commrouter.simulation.simtime import Item
    from commrouter.timing import VirtualTime

__all__ = ["HostSide", "Kernel", "Tracked"]


@dataclass
class Tracked:
    """A promise the host holds (ensure, send, heartbeat, close), with its bound."""

    kind: str
    kernel_id: str
    started: float
    bound: float
    promise: Promise[Any]
    index: int


@dataclass
class Kernel:
    """The running kernel process: its id and its router."""

    kernel_id: str
    router: CommRouter


class HostSide:
    """The kernel host's part of `Simulation` (see the module doc)."""

    if TYPE_CHECKING:  # what it uses of the rest of Simulation
        scenario: Scenario
        settings: Settings
        hooks: Hooks
        time: VirtualTime
        log: RunLog
        pages: dict[str, Page]
        network: Network
        cells: dict[str, Cell]
        current_cell: Cell | None
        server_up: bool
        kernel: Kernel | None
        kernel_count: int
        comm_fate: dict[str, str]
        tracked: list[Tracked]
        outbox: list[Published]
        outbox_lock: threading.Lock
        rng: random.Random
        iopub_arrival: dict[str, float]

        def now(self) -> float: ...
        def next_id(self, prefix: str) -> str: ...
        def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None: ...
        def schedule(
            self, delay: float, label: str, fn: Callable[[], None], entry: str | None = None
        ) -> Item: ...
        def schedule_at(
            self, at: float, label: str, fn: Callable[[], None], entry: str | None = None
        ) -> Item: ...
        def flush(self, entry: str | None, facade_last: bool = False) -> None: ...

    # --------------------------------------------------------------- kernel lifecycle

    def kernel_id(self) -> str | None:
        return self.kernel.kernel_id if self.kernel else None

    def _router(self, what: str) -> CommRouter | None:
        if self.kernel is None:
            self.emit("sim.skipped", "sim", what=what, why="no kernel running")
            return None
        return self.kernel.router

    def _start_kernel(self) -> None:
        self.kernel_count += 1
        kernel_id = f"kernel-{self.kernel_count}"
        host = KernelHost(kernel_id, self.outbox, self.outbox_lock)
        publisher = (
            host if self.hooks.publisher_wrapper is None else self.hooks.publisher_wrapper(host)
        )
        router = self.hooks.router_factory(
            kernel_id,
            publisher,
            settings=self.settings,
            time=self.time,
            log_sinks=[self.log.sink(kernel_id)],
        )
        self.log.given_up.clear()
        self.kernel = Kernel(kernel_id, router)
        self.emit("host.kernel_started", "host")
        router.start()
        router.health()  # returns once the Supervisor started every actor
        self.flush("supervisor")

    def _stop_kernel(self, why: str) -> None:
        kernel = self.kernel
        if kernel is None:
            return
        router = kernel.router
        health = router.health()
        link = router.link_state() if health.get("connection") else None
        queued = link.queued if link is not None else None
        in_flight = getattr(link, "in_flight", 0) if link is not None else None
        outbox = router.program_state().outbox if health.get("program_executor") else None
        self.emit(
            "host.kernel_stopping",
            "host",
            why=why,
            health=health,
            queued=queued,
            in_flight=in_flight,
            outbox=outbox,
        )
        for cell in self.cells.values():
            if cell.running and cell.kernel_id == kernel.kernel_id:
                cell.running = False
                cell.link.close()
                cell.emit("cell.killed", why=why)
                cell.lose_unread(f"killed: {why}")
        for tracked in [t for t in self.tracked if t.kernel_id == kernel.kernel_id]:
            self.tracked.remove(tracked)
            self.emit(f"host.{tracked.kind}_abandoned", "host", why=why, index=tracked.index)
        router.stop()
        self.flush("supervisor", facade_last=True)
        self.kernel = None
        self.emit("host.kernel_stopped", "host", kernel_id=kernel.kernel_id, why=why)

    # ------------------------------------------------------------- the host's actions

    def _do_host_crash(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.crash")
        if router is not None:
            router.crash(p["target"], "injected by the simulation")

    def _do_host_restart_kernel(self, p: Mapping[str, Any]) -> None:
        if self.kernel is None:
            self.emit("sim.skipped", "sim", what="host.restart_kernel", why="no kernel running")
            return
        self._stop_kernel("kernel restart")
        if p.get("websocket", "close") == "close":
            for page in self.pages.values():
                page.websocket_closed("websocket closed")
        self._start_kernel()

    def _do_host_restart_server(self, p: Mapping[str, Any]) -> None:
        if not self.server_up:
            self.emit("sim.skipped", "sim", what="host.restart_server", why="server is down")
            return
        down = float(p.get("down", 1.0))
        self.server_up = False
        self.emit("host.server_down", "host", down=down)
        for page in self.pages.values():
            page.websocket_closed("server down")
        self._stop_kernel("server restart")
        self.schedule(down, "server up", self._server_back, entry="supervisor")

    def _server_back(self) -> None:
        self.server_up = True
        self.emit("host.server_up", "host")
        self._start_kernel()

    def _wait_bound(self) -> float:
        """An ensure waits at most for a probe (the link declared dead) and an install."""
        heartbeat = self.settings.heartbeat
        probe = heartbeat.dead_after + 1.5 * max(heartbeat.timeout, heartbeat.timeout_ceiling)
        return probe + self.settings.connection.wait_for_connection_timeout

    def _do_host_ensure(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.ensure")
        if router is not None:
            parent = cell_parent(self.next_id("exec"), p.get("page"))
            self._track("ensure", router.ensure_front_end(parent), self._wait_bound())

    def _do_host_send(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.send")
        if router is not None:
            promise = router.send(p["address"], p["value"], stream=bool(p.get("stream", False)))
            # settled once the page acknowledged it, or when it is dropped (at the latest after
            # waiting `queue_max_age` for a page)
            bound = self._wait_bound() + self.settings.connection.queue_max_age
            self._track("send", promise, bound, address=p["address"], value=p["value"])

    def _do_host_heartbeat(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.heartbeat")
        if router is not None:
            timeout = float(p["timeout"]) if "timeout" in p else None  # None: adaptive
            heartbeat = self.settings.heartbeat
            bound = timeout if timeout is not None else heartbeat.timeout_ceiling
            self._track("heartbeat", router.heartbeat(timeout=timeout), bound)

    def _do_host_close(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.close")
        if router is not None:
            parent = cell_parent(self.next_id("exec"), None)
            self._track("close", router.close(parent), 0.0)

    # ------------------------------------------------------------ the host's promises

    def _track(self, kind: str, promise: Promise[Any], bound: float, **fields: Any) -> None:
        index = int(self.next_id("promise").rsplit("-", 1)[1])
        tracked = Tracked(kind, self.kernel_id() or "", self.now(), bound, promise, index)
        self.tracked.append(tracked)
        self.emit(f"host.{kind}", "host", index=index, bound=bound, **fields)

    def _check_promises(self) -> None:
        for tracked in [t for t in self.tracked if t.promise.done]:
            self.tracked.remove(tracked)
            error = tracked.promise.error
            fields: dict[str, Any] = {"index": tracked.index}
            if error is None:
                fields.update(outcome="ok", result=tracked.promise.get(0))
            else:
                fields.update(outcome="failed", error=f"{type(error).__name__}: {error}")
            fields["waited"] = round(self.now() - tracked.started, 6)
            self.emit(f"host.{tracked.kind}_done", "host", **fields)

    def _report_pending(self) -> None:
        """At the end of the run: every promise still unsettled is an error."""
        for tracked in self.tracked:
            self.emit(f"host.{tracked.kind}_pending", "host", "error", index=tracked.index)

    # ------------------------------------------------------- between pages and kernel

    def deliver_to_kernel(self, page: str, msg_type: str, content: Any, msg_id: str) -> None:
        """A page's shell message reaches the kernel host, which hands it to the router."""
        if not self.server_up or self.kernel is None:
            self.network.dropped(page, msg_type, msg_id, "kernel not running")
            return
        fields: dict[str, Any] = {"page": page, "msg_type": msg_type, "msg_id": msg_id}
        if isinstance(content, Mapping):
            fields["comm_id"] = content.get("comm_id")
            data = content.get("data")
            if msg_type == "comm_msg" and isinstance(data, Mapping):
                if isinstance(data.get("address"), str):
                    fields["address"] = data["address"]
                if "value" in data:
                    fields["value"] = data["value"]
                if isinstance(data.get("batch"), list):
                    fields["batch"] = data["batch"]
            if msg_type == "comm_open" and isinstance(data, Mapping):
                fields["for_kernel"] = data.get("kernel_id")
                if "resume" in data:
                    fields["resume"] = data["resume"]
        self.emit("host.comm_received", "host", **fields)
        parent = {"header": {"msg_id": msg_id, "msg_type": msg_type, "session": page}}
        router = self.kernel.router
        handle = {
            "comm_open": router.handle_comm_open,
            "comm_msg": router.handle_comm_msg,
            "comm_close": router.handle_comm_close,
        }[msg_type]
        handle(content, parent=parent, msg_id=msg_id)

    def _iopub(self, item: Published) -> None:
        """One IOPub message toward the windows: at once, or after the IOPub latency (a
        kernel's messages keep their order)."""
        low, high = self.scenario.frontend.iopub_latency
        if high <= 0.0:
            self._hand_to_windows(item)
            return
        latency = low if low == high else round(self.rng.uniform(low, high), 6)
        at = max(self.now() + latency, self.iopub_arrival.get(item.kernel_id, 0.0))
        self.iopub_arrival[item.kernel_id] = at
        self.schedule_at(at, f"iopub {item.kind}", lambda: self._hand_to_windows(item))

    def _hand_to_windows(self, item: Published) -> None:
        """Broadcast one IOPub message: a window acts only on its own comm."""
        data = item.data or {}
        if item.kind in ("comm_msg", "comm_close"):
            holder = next((p for p in self.pages.values() if p.holds(item.comm_id)), None)
            if item.kind == "comm_close":
                self.comm_fate.setdefault(str(item.comm_id), "closed by the kernel")
            if holder is None:
                self._unheard(item, data)
            elif holder.busy(lambda: self._hand_to_windows(item), f"takes {item.kind}"):
                return
            elif item.kind == "comm_msg":
                holder.on_comm_msg(data, item.kernel_id)
            else:
                holder.on_comm_close()
            return
        if item.kind == "display":
            display_id = self.log.normalize(item.display_id or "")
            install = is_install(data)
            session = parent_session(item.parent)
            running = self.current_cell
            if session is None and running is not None and running.running:
                session = running.page  # as kernel/publisher.py: no parent = the running cell
            shown = [
                page
                for page in self.pages.values()
                if page.alive
                and self.server_up
                and (
                    session == page.name
                    or (session is None and self.scenario.frontend.render_parentless)
                )
            ]
            self.emit(
                "host.display",
                "host",
                display_id=display_id,
                install=install,
                shown=[page.name for page in shown],
                session=session,
            )
            connect = connect_of(data)
            if connect is not None and shown:  # saved with the notebook
                display_id = display_id or self.next_id("output")
                self.saved_connects.setdefault(display_id, connect)
            for page in shown:
                page.displays.add(display_id)
                if connect is not None:
                    page.connect_later(connect[0], display_id)
                if install:
                    self.schedule(
                        self.scenario.frontend.install_delay,
                        f"{page.name} runs the install script",
                        lambda page=page, k=item.kernel_id, d=display_id: page.run_install(k, d),
                    )
        elif item.kind == "update":
            self.emit(
                "host.display_updated",
                "host",
                display_id=self.log.normalize(item.display_id or ""),
                erased=not data,
            )
        else:
            self.emit("host.stream", "host", name=data.get("name"), text=data.get("text"))

    def _unheard(self, item: Published, data: Mapping[str, Any]) -> None:
        """Published on a comm no window holds: logged per item, with its number."""
        why = self.comm_fate.get(str(item.comm_id), "no window holds it")
        base: dict[str, Any] = {
            "msg_type": item.kind,
            "comm_id": item.comm_id,
            "kernel_id": item.kernel_id,
        }
        if item.kind != "comm_msg":
            self.emit("host.unheard", "host", **base, why=why)
            return
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        first = data.get("seq")
        for index, entry in enumerate(items):
            fields = dict(base, address=entry.get("address"))
            if "value" in entry:
                fields["value"] = entry["value"]
            if entry.get("read_request"):
                fields["read_request"] = True
            if isinstance(first, int):
                fields["number"] = first + index
            self.emit("host.unheard", "host", **fields, why=why)
