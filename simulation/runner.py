"""Run one scenario with one seed: the real actors, simulated ends, virtual time, one log.

Determinism (docs/simulation.md explains it at length):

- The simulation thread is the only one that injects anything. It takes one *step* at a time
  (a scenario step, a message arriving at the kernel, a window's own timer, or one due router
  timer), then waits until no message is in flight between the actors (`settle`).
- The next step is the earliest in virtual time; at the same instant, due router timers come
  first (by deadline, then creation), then the rest in the order they were scheduled.
- Every random choice (faults, jitter) is drawn by the simulation thread from one
  `random.Random` seeded from the scenario's name and the seed, in step order.
- Within a step the actors run concurrently, so the order in which their events reach the
  recorder varies. The log keeps each actor's own order and groups the actors of a step in a
  fixed order: breadth-first along who-tells-whom from the actor the step entered. What the
  router published in a step is handed to the windows in that same order.
- Generated ids are normalised in the log: `commrouter-install-<uuid hex>` becomes
  `commrouter-install-<n>` (numbered by first appearance), and `0x...` addresses in reprs
  become `0x?`. Comm ids, message ids, kernel and program ids are chosen by the simulation.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import heapq
import itertools
import json
import random
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka

from commrouter.actors.runtime import Promise
from commrouter.config import Settings
from commrouter.embedding import CommRouter
from commrouter.observability.logging import IDS
from commrouter.observability.query import EventLog
from commrouter.simulation.scenario import (
    GARBAGE_REASONS,
    MALFORMED_KINDS,
    NetworkProfile,
    Scenario,
    Step,
)
from commrouter.simulation.world import (
    Cell,
    KernelHost,
    Network,
    Page,
    Published,
    cell_parent,
    is_install,
    malformed,
    parent_session,
)
from commrouter.timing import VirtualTime
from commrouter.transports.interfaces import Publisher
from commrouter.transports.memory import InMemoryProgramLink

__all__ = ["Hooks", "RunResult", "Simulation", "Violation", "run_scenario"]

EPSILON = 1e-9
QUIET_LIMIT = 60.0  # virtual seconds the world may stay busy after the last step
START = "2026-01-01T00:00:00"
_START_UTC = datetime.datetime.fromisoformat(START).replace(tzinfo=datetime.UTC)

# Who tells whom (actors/*.py): the canonical order of a step's events follows it.
TELLS: dict[str, tuple[str, ...]] = {
    "connection": ("router", "heartbeat", "program_executor"),
    "router": ("heartbeat", "program_executor"),
    "heartbeat": ("connection",),
    "subscriptions": ("router", "program_executor"),
    "program_executor": ("subscriptions", "connection"),
    "supervisor": (),
}
ACTOR_ORDER = ("connection", "router", "heartbeat", "subscriptions", "program_executor")
FACADE = "commrouter"

_DISPLAY_ID = re.compile(r"commrouter-install-([0-9a-f]{32})")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_FIRST_KEYS = ("seq", "step", "t", "ts", "level", "kernel_id", "actor", "event", *IDS)


@functools.cache
def actor_ranks(entry: str | None, facade_last: bool = False) -> Mapping[str, int]:
    """Rank of each actor's events within a step that entered at `entry` (see module doc)."""
    order: list[str] = []
    if entry in TELLS:
        queue = [entry]
        while queue:
            name = queue.pop(0)
            if name not in order:
                order.append(name)
                queue.extend(TELLS[name])
    order += [name for name in (*ACTOR_ORDER, "supervisor") if name not in order]
    ranks = {name: index + 1 for index, name in enumerate(order)}
    ranks[FACADE] = 10_000 if facade_last else 0
    return ranks


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken invariant or expectation; `seq` points at the event that shows it."""

    check: str
    message: str
    seq: int | None = None
    t: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "seq": self.seq, "t": self.t}


@dataclass(frozen=True)
class Hooks:
    """Seams for tests: swap the router class, the program link or wrap the publisher."""

    router_factory: Callable[..., CommRouter] = CommRouter
    link_factory: Callable[[str, int], InMemoryProgramLink] = InMemoryProgramLink
    publisher_wrapper: Callable[[KernelHost], Publisher] | None = None


@dataclass
class RunResult:
    """The outcome of one run."""

    scenario: Scenario
    seed: int
    violations: list[Violation]
    virtual_duration: float
    log: EventLog
    log_path: Path | None = None
    scenario_path: Path | None = None  # the generated scenario, written next to the log

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    @property
    def replay(self) -> str:
        """The command that runs exactly this again."""
        if self.scenario.source == "random":
            return f"commrouter simulate --seed {self.seed} --runs 1"
        name = self.scenario.replay or self.scenario.source
        return f"commrouter simulate {name} --seed {self.seed}"


# ------------------------------------------------------------------------ time and quiet


class SimActivity:
    """`timing.Activity` with a settle that tolerates messages stuck for a dead actor.

    Messages told to an actor the Supervisor gave up on stay in its slot for ever and would
    count as in flight for ever; `wait_quiet` waits until only those are left.
    """

    __slots__ = ("_cond", "_count")

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition(threading.Lock())

    def begin(self) -> None:
        with self._cond:
            self._count += 1

    def done(self) -> None:
        with self._cond:
            self._count = max(0, self._count - 1)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        return self._count

    def wait_idle(self, timeout: float) -> None:
        self.wait_quiet(lambda: 0, timeout)

    def wait_quiet(self, stuck: Callable[[], int], timeout: float) -> None:
        """Block until at most `stuck()` messages are in flight (bounded, real time)."""
        slices = max(1, int(timeout / 0.005))
        with self._cond:
            for _ in range(slices):
                if self._cond.wait_for(lambda: self._count <= stuck(), 0.005):
                    return
        raise TimeoutError(f"actors still busy after {timeout} s ({self._count} in flight)")


class SimTime(VirtualTime):
    """Virtual time whose settle knows about actors the Supervisor gave up on."""

    def __init__(self, factory: Any, settle_timeout: float = 10.0) -> None:
        super().__init__(factory, settle_timeout)
        self.activity = SimActivity()  # type: ignore[assignment]
        self.stuck: Callable[[], int] = lambda: 0

    def settle(self) -> None:
        self.activity.wait_quiet(self.stuck, self.settle_timeout)  # type: ignore[attr-defined]

    def move_to(self, when: float) -> None:
        delta = when - self.clock.now()
        if delta > 0:
            self.factory.tick(datetime.timedelta(seconds=delta))


# ------------------------------------------------------------------------------ the log


class RunLog:
    """The run's canonical event log: router events per step in canonical order, plus the
    simulation's own events, normalised and numbered."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.events: list[dict[str, Any]] = []
        self.step = 0
        self.given_up: set[str] = set()
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._display_ids: dict[str, str] = {}

    def sink(self, kernel_id: str) -> Callable[[dict[str, Any]], None]:
        """The log sink of one router (called from actor threads)."""

        def record(event: dict[str, Any]) -> None:
            event = dict(event)
            event["kernel_id"] = kernel_id
            if event.get("event") == "supervisor.gave_up":
                self.given_up.add(str(event.get("target")))
            with self._lock:
                self._pending.append(event)

        return record

    def take_pending(self) -> list[dict[str, Any]]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def append_router(
        self, events: list[dict[str, Any]], entry: str | None, facade_last: bool
    ) -> None:
        ranks = actor_ranks(entry, facade_last)
        for event in sorted(events, key=lambda e: ranks.get(str(e.get("actor")), 9_999)):
            self.append(event)

    def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None:
        """Log one of the simulation's own events (simulation thread only)."""
        record: dict[str, Any] = {
            "t": round(self._clock(), 6),
            "ts": None,  # set by append, from t
            "level": level,
            "actor": actor,
            "event": event,
        }
        record.update(fields)
        for key in IDS:
            record.setdefault(key, None)
        self.append(record)

    def normalize(self, text: str) -> str:
        """Replace generated ids in `text` by stable ones (numbered by first appearance)."""
        text = _DISPLAY_ID.sub(self._display, text)
        return _ADDRESS.sub("0x?", text)

    def _display(self, match: re.Match[str]) -> str:
        known = self._display_ids.get(match.group(1))
        if known is None:
            known = self._display_ids[match.group(1)] = str(len(self._display_ids) + 1)
        return f"commrouter-install-{known}"

    def append(self, event: Mapping[str, Any]) -> None:
        line = self.normalize(json.dumps(event, default=repr, separators=(",", ":")))
        raw = json.loads(line)
        ordered: dict[str, Any] = {"seq": len(self.events), "step": self.step}
        for key in _FIRST_KEYS[2:]:
            ordered[key] = raw.pop(key, None)
        ordered.update(raw)
        if isinstance(ordered["t"], int | float):
            # The run's wall clock is the virtual one: stamp every event from `t`, whichever
            # thread logged it (freezegun's patching does not reach every actor thread, and the
            # verdict is logged after the clock is released), so `ts` and `t` always agree and
            # `commrouter logs` can merge and time simulation logs like any other.
            ordered["ts"] = (_START_UTC + datetime.timedelta(seconds=ordered["t"])).isoformat()
        self.events.append(ordered)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for event in self.events:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")


# ---------------------------------------------------------------------- the simulation


@dataclass(order=True)
class Item:
    """Something scheduled on the simulation's agenda."""

    t: float
    seq: int
    label: str = field(compare=False)
    fn: Callable[[], None] = field(compare=False)
    entry: str | None = field(compare=False, default=None)
    event: dict[str, Any] | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        """Skip it (a window's timer that no longer matters): no step is taken for it."""
        self.cancelled = True


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


@functools.cache
def _defaults() -> Settings:
    return Settings.defaults()


class Simulation:
    """One run of one scenario with one seed (see the module doc for the rules)."""

    def __init__(self, scenario: Scenario, seed: int, time: SimTime, hooks: Hooks) -> None:
        self.scenario = scenario
        self.seed = seed
        self.time = time
        self.hooks = hooks
        self.settings = scenario.build_settings(_defaults())
        self.rng = random.Random(f"{scenario.name}/{seed}")
        self.log = RunLog(time.clock.now)
        self.agenda: list[Item] = []
        self._seq = itertools.count()
        self._ids: dict[str, itertools.count[int]] = {}
        self.pages: dict[str, Page] = {}
        self.cells: dict[str, Cell] = {}
        self.current_cell: Cell | None = None
        self.network = Network(self)
        self.server_up = True
        self.kernel: Kernel | None = None
        self.kernel_count = 0
        self.comm_fate: dict[str, str] = {}
        self.tracked: list[Tracked] = []
        self.outbox: list[Published] = []
        self.outbox_lock = threading.Lock()
        self.aborted: str | None = None
        # bookkeeping that must wait until the router has let go of a program (see _lose)
        self.after_step: list[Callable[[], None]] = []
        self._actors_before = {id(ref) for ref in pykka.ActorRegistry.get_all()}
        time.stuck = self._stuck

    # ------------------------------------------------------------------ small services

    def now(self) -> float:
        return self.time.clock.now()

    def next_id(self, prefix: str) -> str:
        counter = self._ids.setdefault(prefix, itertools.count(1))
        return f"{prefix}-{next(counter)}"

    def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None:
        fields.setdefault("kernel_id", self.kernel.kernel_id if self.kernel else None)
        self.log.emit(event, actor, level, **fields)

    def schedule(
        self, delay: float, label: str, fn: Callable[[], None], entry: str | None = None
    ) -> Item:
        return self.schedule_at(self.now() + delay, label, fn, entry)

    def schedule_at(
        self,
        at: float,
        label: str,
        fn: Callable[[], None],
        entry: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> Item:
        item = Item(round(at, 6), next(self._seq), label, fn, entry, event)
        heapq.heappush(self.agenda, item)
        return item

    def _stuck(self) -> int:
        """Messages parked for good in the slots of actors the Supervisor gave up on."""
        if not self.log.given_up or self.kernel is None:
            return 0
        slots = getattr(self.kernel.router, "_slots", {})  # private: docs/simulation.md, limits
        return sum(len(getattr(slots.get(name), "_pending", ())) for name in self.log.given_up)

    # ---------------------------------------------------------------------- the loop

    def run(self) -> None:
        scenario = self.scenario
        self.emit(
            "sim.started",
            "sim",
            scenario=scenario.name,
            seed=self.seed,
            source=scenario.replay or scenario.source,
        )
        try:
            self._start_kernel()
            for index in range(scenario.frontend.pages):
                self._open_page(f"window-{index + 1}")
            for step in scenario.steps:
                self._schedule_step(step)
            last = max((step.at for step in scenario.steps), default=0.0)
            horizon = max(last, scenario.duration or 0.0) + QUIET_LIMIT
            quiet = self._loop(horizon)
            if quiet and scenario.duration is not None and self.now() < scenario.duration:
                self.time.move_to(scenario.duration)
            self.log.step += 1
            self.emit("sim.finished", "sim", quiet=quiet, virtual_duration=round(self.now(), 6))
            self._teardown()
        except Exception as error:  # noqa: BLE001 - a harness bug becomes a failed run, logged
            self.aborted = f"{type(error).__name__}: {error}"
            self.emit(
                "sim.error",
                "sim",
                "error",
                error=self.aborted,
                traceback=traceback.format_exc(limit=8),
            )
        finally:
            if self.kernel is not None:
                self.kernel.router.stop()
                self.kernel = None

    def _loop(self, horizon: float) -> bool:
        """Take steps until nothing is left to do (True) or the horizon is reached (False)."""
        scheduler = self.time.scheduler
        while self.aborted is None:
            while self.agenda and self.agenda[0].cancelled:
                heapq.heappop(self.agenda)
            deadline = scheduler.next_deadline()
            item_at = self.agenda[0].t if self.agenda else None
            if deadline is None and item_at is None:
                return True
            upcoming = min(t for t in (deadline, item_at) if t is not None)
            if upcoming > horizon + EPSILON:
                return False
            if deadline is not None and (item_at is None or deadline <= item_at + EPSILON):
                self.time.move_to(deadline)
                for timer in scheduler.pop_due(deadline):
                    if timer.cancelled:
                        continue
                    target = str(getattr(timer.target, "name", "?"))
                    self.step(
                        target,
                        lambda timer=timer: timer.target.tell(timer.message),
                        ("sim.timer", {"target": target, "message": type(timer.message).__name__}),
                    )
            else:
                item = heapq.heappop(self.agenda)
                self.time.move_to(item.t)
                event = (item.event.pop("event"), item.event) if item.event else None
                self.step(item.entry, item.fn, event)
        return False

    def step(
        self,
        entry: str | None,
        fn: Callable[[], None],
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """One step: log it, do it, wait until the actors are quiet, record what happened."""
        self.log.step += 1
        if event is not None:
            self.emit(event[0], "sim", **event[1])
        fn()
        self.flush(entry)
        while self.after_step and self.aborted is None:
            actions, self.after_step = self.after_step, []
            for action in actions:
                action()
            self.flush("program_executor")

    def flush(self, entry: str | None, facade_last: bool = False) -> None:
        """Wait for quiet; log the router's events and hand its publications to the windows,
        both in canonical order; let the cells read their links; repeat until nothing moves."""
        for _ in range(10_000):
            try:
                self.time.settle()
            except TimeoutError as error:
                self.aborted = f"the actors did not become quiet: {error}"
                self.emit("sim.stuck", "sim", "error", error=str(error))
                return
            events = self.log.take_pending()
            with self.outbox_lock:
                published, self.outbox[:] = list(self.outbox), []
            self.log.append_router(events, entry, facade_last)
            ranks = actor_ranks(entry, facade_last)
            for item in sorted(published, key=lambda p: ranks.get(p.actor, 9_999)):
                self._hand_to_windows(item)
            self._check_promises()
            polled = [cell.poll() for cell in self.cells.values()]
            if not events and not published and not any(polled):
                return
            entry, facade_last = "program_executor", False
        self.aborted = "a step did not come to rest"

    # ------------------------------------------------------------ kernel lifecycle

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
        queued = router.link_state().queued if health.get("connection") else None
        outbox = router.program_state().outbox if health.get("program_executor") else None
        self.emit(
            "host.kernel_stopping", "host", why=why, health=health, queued=queued, outbox=outbox
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

    def _teardown(self) -> None:
        for cell in list(self.cells.values()):
            if cell.running and self.kernel is not None and cell.kernel_id == self.kernel.kernel_id:
                self.step("program_executor", lambda c=cell: self._finish_cell(c, "end of run"))
        if self.kernel is not None:
            router = self.kernel.router
            health = router.health()
            self.emit("host.health", "host", health=health)
            if health.get("connection"):
                link = router.link_state()
                self.emit(
                    "host.link_state",
                    "host",
                    opened=link.opened,
                    comm_id=link.comm_id,
                    installed=link.installed,
                    installing=link.installing,
                    queued=link.queued,
                )
        timers = self.time.pending_timers()
        in_flight = self.time.activity.in_flight - self._stuck()
        for tracked in self.tracked:
            self.emit(f"host.{tracked.kind}_pending", "host", "error", index=tracked.index)
        self._stop_kernel("end of run")
        alive = [
            str(ref.actor_class.__name__)
            for ref in pykka.ActorRegistry.get_all()
            if id(ref) not in self._actors_before
        ]
        self.emit(
            "sim.teardown",
            "sim",
            timers_pending=timers,
            in_flight=in_flight,
            actors_alive=alive,
            links_open=[c.program_id for c in self.cells.values() if not c.link.closed],
            promises_pending=len(self.tracked),
        )

    # ------------------------------------------------------------ scenario steps

    def _schedule_step(self, step: Step) -> None:
        handler = getattr(self, "_do_" + step.action.replace(".", "_"))
        entry = _entry_of(step)
        event = {"event": "sim.step", "index": step.index + 1, "do": step.action, **step.params}
        self.schedule_at(step.at, step.action, lambda: handler(step.params), entry, event)

    def _router(self, what: str) -> CommRouter | None:
        if self.kernel is None:
            self.emit("sim.skipped", "sim", what=what, why="no kernel running")
            return None
        return self.kernel.router

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
        self.pages[name] = Page(self, name)
        self.emit("page.opened", "page", page=name)

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

    def _do_net_set(self, p: Mapping[str, Any]) -> None:
        self.network.profile = NetworkProfile(**{k: float(v) for k, v in p.items()})
        self.emit("net.profile", "net", **dataclasses.asdict(self.network.profile))

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
        self._cell_request(p, "cell.send", lambda c: [c.send(p["address"], v) for v in values])

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
        self._cell_request(
            p, "cell.flood", lambda c: [c.send(p["address"], i) for i in range(p["count"])]
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

    def kernel_id(self) -> str | None:
        return self.kernel.kernel_id if self.kernel else None

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

    def _wait_bound(self) -> float:
        return (
            self.settings.heartbeat.timeout + self.settings.connection.wait_for_connection_timeout
        )

    def _do_host_ensure(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.ensure")
        if router is not None:
            parent = cell_parent(self.next_id("exec"), p.get("page"))
            self._track("ensure", router.ensure_front_end(parent), self._wait_bound())

    def _do_host_send(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.send")
        if router is not None:
            promise = router.send(p["address"], p["value"])
            self._track("send", promise, self._wait_bound(), address=p["address"], value=p["value"])

    def _do_host_heartbeat(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.heartbeat")
        if router is not None:
            timeout = float(p.get("timeout", self.settings.heartbeat.timeout))
            self._track("heartbeat", router.heartbeat(timeout=timeout), timeout)

    def _do_host_close(self, p: Mapping[str, Any]) -> None:
        router = self._router("host.close")
        if router is not None:
            parent = cell_parent(self.next_id("exec"), None)
            self._track("close", router.close(parent), 0.0)

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

    # -------------------------------------------------------- between pages and kernel

    def deliver_to_kernel(self, page: str, msg_type: str, content: Any, msg_id: str) -> None:
        """A page's shell message reaches the kernel host, which hands it to the router."""
        if not self.server_up or self.kernel is None:
            self.emit(
                "net.dropped",
                "net",
                "warning",
                page=page,
                msg_type=msg_type,
                msg_id=msg_id,
                reason="kernel not running",
            )
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
            if msg_type == "comm_open" and isinstance(data, Mapping):
                fields["for_kernel"] = data.get("kernel_id")
        self.emit("host.comm_received", "host", **fields)
        parent = {"header": {"msg_id": msg_id, "msg_type": msg_type, "session": page}}
        router = self.kernel.router
        handle = {
            "comm_open": router.handle_comm_open,
            "comm_msg": router.handle_comm_msg,
            "comm_close": router.handle_comm_close,
        }[msg_type]
        handle(content, parent=parent, msg_id=msg_id)

    def _hand_to_windows(self, item: Published) -> None:
        """Broadcast one IOPub message: a window acts only on its own comm."""
        data = item.data or {}
        if item.kind in ("comm_msg", "comm_close"):
            holder = next((p for p in self.pages.values() if p.holds(item.comm_id)), None)
            if item.kind == "comm_close":
                self.comm_fate.setdefault(str(item.comm_id), "closed by the kernel")
            if holder is None:
                fields: dict[str, Any] = {"msg_type": item.kind, "comm_id": item.comm_id}
                if item.kind == "comm_msg":
                    fields["address"] = data.get("address")
                    if "value" in data:
                        fields["value"] = data["value"]
                    if data.get("read_request"):
                        fields["read_request"] = True
                fields["why"] = self.comm_fate.get(str(item.comm_id), "no window holds it")
                self.emit("host.unheard", "host", **fields)
            elif item.kind == "comm_msg":
                holder.on_comm_msg(data)
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
            for page in shown:
                page.displays.add(display_id)
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


def _entry_of(step: Step) -> str | None:
    if step.action.startswith("cell."):
        return "program_executor"
    if step.action == "host.crash":
        return str(step.params["target"])
    if step.action.startswith("host.restart"):
        return "supervisor"
    if step.action.startswith("host."):
        return "connection"
    return None


# -------------------------------------------------------------------------- entry point


def run_scenario(
    scenario: Scenario,
    seed: int = 0,
    *,
    log_dir: str | Path | None = None,
    hooks: Hooks | None = None,
    check: bool = True,
) -> RunResult:
    """Run `scenario` with `seed`; check the invariants and expectations; keep the log."""
    try:
        from freezegun import freeze_time  # simulation dependency, imported on use
    except ImportError as error:
        raise RuntimeError(
            "the simulation drives virtual time with freezegun: pip install freezegun "
            "(it comes with commrouter[test])"
        ) from error

    from commrouter.simulation.invariants import check_run

    with freeze_time(START) as factory:
        time = SimTime(factory)
        sim = Simulation(scenario, seed, time, hooks or Hooks())
        sim.run()
        duration = round(time.clock.now(), 6)
    log = EventLog(sim.log.events)
    violations = check_run(log, scenario, sim.settings) if check else []
    if sim.aborted:
        violations.insert(0, Violation("harness", sim.aborted, len(log) - 1, duration))
    sim.log.step += 1
    sim.log.emit(
        "sim.verdict",
        "sim",
        "info" if not violations else "error",
        verdict="pass" if not violations else "fail",
        violations=[v.as_dict() for v in violations],
    )
    log = EventLog(sim.log.events)
    result = RunResult(scenario, seed, violations, duration, log)
    if log_dir is not None:
        stem = f"{_slug(scenario.name)}-seed{seed}"
        result.log_path = Path(log_dir) / f"{stem}.jsonl"
        sim.log.write(result.log_path)
        if scenario.source == "random":
            from commrouter.simulation.scenario import dump_scenario

            result.scenario_path = Path(log_dir) / f"{stem}.toml"
            result.scenario_path.write_text(dump_scenario(scenario), encoding="utf-8")
    return result


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"


def without_ts(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The log as JSON lines without the wall-clock `ts` field (to compare two runs)."""
    return [
        json.dumps({k: v for k, v in e.items() if k != "ts"}, separators=(",", ":")) for e in events
    ]
