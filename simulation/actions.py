"""The scenario's actions on the windows, the network and the cells: what a step's
`do = "page.*"`, `"net.set"` or `"cell.*"` does in the simulated world.

`StepActions` is a part of `runner.Simulation` (a mixin). A step's action `a.b_c` is handled by
`_do_a_b_c(params)`; the `host.*` actions are the kernel host's, in `host.HostSide`. An action
that cannot apply (no such window or cell, no kernel running, ...) logs `sim.skipped` and does
nothing. Which actor a step enters the router by (`entry_of`) fixes the canonical order of its
events (`runlog.actor_ranks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from commrouter.simulation.cell import Cell
from commrouter.simulation.page import Page, malformed
from commrouter.simulation.publisher import cell_parent
from commrouter.simulation.scenario import GARBAGE_REASONS, MALFORMED_KINDS, NetworkProfile, Step

if TYPE_CHECKING:
    import random

    from commrouter.config import Settings
    from commrouter.embedding import CommRouter
    from commrouter.simulation.host import Kernel
    from commrouter.simulation.network import Network
    from commrouter.simulation.runner import Hooks

__all__ = ["StepActions", "entry_of"]


def entry_of(step: Step) -> str | None:
    """The actor a scenario step enters the router by (None: a window's, through the net)."""
    if step.action.startswith("cell."):
        return "program_executor"
    if step.action == "host.crash":
        return str(step.params["target"])
    if step.action.startswith("host.restart"):
        return "supervisor"
    if step.action.startswith("host."):
        return "connection"
    return None


class StepActions:
    """The windows', the network's and the cells' actions, as a part of `Simulation`."""

    if TYPE_CHECKING:  # what it uses of the rest of Simulation
        settings: Settings
        hooks: Hooks
        rng: random.Random
        network: Network
        pages: dict[str, Page]
        cells: dict[str, Cell]
        current_cell: Cell | None
        kernel: Kernel | None
        after_step: list[Callable[[], None]]

        def next_id(self, prefix: str) -> str: ...
        def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None: ...
        def kernel_id(self) -> str | None: ...
        def _router(self, what: str) -> CommRouter | None: ...

    # ------------------------------------------------------------------ windows

    def _page(self, params: Mapping[str, Any], what: str) -> Page | None:
        name = params.get("page")
        if name is None:
            name = next((p.name for p in self.pages.values() if p.alive), None)
        page = self.pages.get(name) if name else None
        if page is None or not page.alive:
            self.emit("sim.skipped", "sim", what=what, why=f"no open window {name!r}")
            return None
        return page

    def _cell(self, params: Mapping[str, Any], what: str) -> Cell | None:
        name = params.get("program")
        cell = self.cells.get(name) if name else self.current_cell
        if cell is None:
            self.emit("sim.skipped", "sim", what=what, why=f"no cell {name or ''}".strip())
        return cell

    def _open_page(self, name: str) -> None:
        page = self.pages[name] = Page(self, name)
        self.emit("page.opened", "page", page=name)
        page.render_saved()

    def _do_page_open(self, p: Mapping[str, Any]) -> None:
        name = p.get("page") or f"window-{len(self.pages) + 1}"
        if name in self.pages and self.pages[name].alive:
            self.emit("sim.skipped", "sim", what="page.open", why=f"{name} is already open")
            return
        self._open_page(name)

    def _do_page_send(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.send")
        if page is not None:
            for value in p["values"] if "values" in p else [p["value"]]:
                page.send(p["address"], value)

    def _do_page_set(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.set")
        if page is not None:
            page.set(p["address"], p["value"])

    def _page_method(self, p: Mapping[str, Any], what: str, method: str) -> None:
        page = self._page(p, what)
        if page is not None:
            getattr(page, method)()

    def _do_page_ping(self, p: Mapping[str, Any]) -> None:
        self._page_method(p, "page.ping", "ping")

    def _do_page_reload(self, p: Mapping[str, Any]) -> None:
        self._page_method(p, "page.reload", "reload")

    def _do_page_close(self, p: Mapping[str, Any]) -> None:
        self._page_method(p, "page.close", "close")

    def _do_page_vanish(self, p: Mapping[str, Any]) -> None:
        self._page_method(p, "page.vanish", "vanish")

    def _do_page_reopen(self, p: Mapping[str, Any]) -> None:
        self._page_method(p, "page.reopen", "reopen")

    def _do_page_freeze(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.freeze")
        if page is not None:
            page.freeze(float(p["seconds"]))

    def _do_page_ignore_pings(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.ignore_pings")
        if page is not None:
            page.answer_pings = False

    def _do_page_answer_pings(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.answer_pings")
        if page is not None:
            page.answer_pings = True

    def _do_page_malformed(self, p: Mapping[str, Any]) -> None:
        page = self._page(p, "page.malformed")
        if page is None:
            return
        kind = p.get("kind") or self.rng.choice(MALFORMED_KINDS)
        kernel_id = self.kernel.kernel_id if self.kernel else None
        msg_type, content = malformed(kind, page, kernel_id, self.settings.connection.target_name)
        msg_id = self.next_id("m")
        page.emit("page.malformed_sent", "warning", kind=kind, msg_type=msg_type, msg_id=msg_id)
        self.network.transmit(page.name, msg_type, content, msg_id)

    # ------------------------------------------------------------------ network

    def _do_net_set(self, p: Mapping[str, Any]) -> None:
        self.network.profile = NetworkProfile(**{k: float(v) for k, v in p.items()})
        self.emit("net.profile", "net", **dataclasses.asdict(self.network.profile))

    # -------------------------------------------------------------------- cells

    def _do_cell_start(self, p: Mapping[str, Any]) -> None:
        router = self._router("cell.start")
        if router is None:
            return
        program_id = p.get("program") or self.next_id("cell")
        if program_id in self.cells:
            self.emit("sim.skipped", "sim", what="cell.start", why=f"{program_id} already ran")
            return
        page = p.get("page") or next((q.name for q in self.pages.values() if q.alive), None)
        capacity = int(p.get("capacity", 1_000_000))
        previous = self.current_cell
        if previous is not None and previous.running:
            if not previous.hung:
                previous.poll()
            previous.running = False
            previous.emit("cell.replaced", by=program_id)
            self._lose(previous, "replaced while hung" if previous.hung else "replaced")
        link = self.hooks.link_factory(program_id, capacity)
        cell = Cell(self, program_id, link, page)
        cell.kernel_id = self.kernel.kernel_id if self.kernel else None
        cell.hung = bool(p.get("silent", False))
        self.cells[program_id] = self.current_cell = cell
        cell.emit("cell.started", page=page, capacity=capacity, silent=cell.hung)
        router.program_started(program_id, link, parent=cell_parent(self.next_id("exec"), page))

    def _cell_request(self, p: Mapping[str, Any], what: str, call: Callable[[Cell], None]) -> None:
        cell = self._cell(p, what)
        if cell is not None:
            call(cell)

    def _do_cell_subscribe(self, p: Mapping[str, Any]) -> None:
        self._cell_request(p, "cell.subscribe", lambda c: c.subscribe(p["address"]))

    def _do_cell_unsubscribe(self, p: Mapping[str, Any]) -> None:
        self._cell_request(p, "cell.unsubscribe", lambda c: c.unsubscribe(p["address"]))

    def _do_cell_send(self, p: Mapping[str, Any]) -> None:
        values = p["values"] if "values" in p else [p["value"]]
        stream = bool(p.get("stream", False))
        self._cell_request(
            p, "cell.send", lambda c: [c.send(p["address"], v, stream) for v in values]
        )

    def _do_cell_read(self, p: Mapping[str, Any]) -> None:
        self._cell_request(p, "cell.read", lambda c: c.read(p["address"]))

    def _do_cell_sync(self, p: Mapping[str, Any]) -> None:
        self._cell_request(p, "cell.sync", Cell.sync)

    def _do_cell_start_link(self, p: Mapping[str, Any]) -> None:
        self._cell_request(p, "cell.start_link", Cell.start_link)

    def _do_cell_display(self, p: Mapping[str, Any]) -> None:
        html = p.get("html", "<b>output</b>")
        self._cell_request(p, "cell.display", lambda c: c.display(html))

    def _do_cell_flood(self, p: Mapping[str, Any]) -> None:
        stream = bool(p.get("stream", False))
        self._cell_request(
            p, "cell.flood", lambda c: [c.send(p["address"], i, stream) for i in range(p["count"])]
        )

    def _do_cell_hang(self, p: Mapping[str, Any]) -> None:
        cell = self._cell(p, "cell.hang")
        if cell is not None and cell.running:
            cell.hung = True
            cell.emit("cell.hung", "warning")

    def _do_cell_resume(self, p: Mapping[str, Any]) -> None:
        cell = self._cell(p, "cell.resume")
        if cell is not None and cell.running:
            cell.hung = False
            cell.emit("cell.resumed")

    def _do_cell_crash(self, p: Mapping[str, Any]) -> None:
        cell = self._cell(p, "cell.crash")
        if cell is None or not cell.running:
            return
        router = self._router("cell.crash")
        cell.running = False
        cell.emit("cell.crashed", "warning")
        cell.link.hang_up("program crashed")
        if router is not None and cell.kernel_id == self.kernel_id():
            router.program_finished(cell.program_id)  # the host learns the process exited
        self._lose(cell, "crashed")

    def _do_cell_garbage(self, p: Mapping[str, Any]) -> None:
        reason = p.get("reason") or self.rng.choice(GARBAGE_REASONS)
        self._cell_request(p, "cell.garbage", lambda c: c.garbage(reason))

    def _do_cell_finish(self, p: Mapping[str, Any]) -> None:
        cell = self._cell(p, "cell.finish")
        if cell is not None and cell.running:
            self._finish_cell(cell, "finished")

    def _finish_cell(self, cell: Cell, why: str) -> None:
        if not cell.hung:
            cell.poll()
        cell.running = False
        cell.emit("cell.finished", why=why)
        router = self._router("cell.finish")
        if router is not None and cell.kernel_id == self.kernel_id():
            router.program_finished(cell.program_id)
        self._lose(cell, f"{why} while hung" if cell.hung else why)

    def _lose(self, cell: Cell, why: str) -> None:
        """Once the router let go of `cell` (after this step), log what it left unread.

        Reading the link earlier would let the executor refill it (`LinkWritable`) after the
        program is gone, and those values would vanish without a trace.
        """
        self.after_step.append(lambda: cell.lose_unread(why))
