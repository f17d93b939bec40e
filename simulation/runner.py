"""Run one scenario with one seed: the real actors, simulated ends, virtual time, one log.

Determinism (docs/simulation.md explains it at length):

- The simulation thread is the only one that injects anything. It takes one *step* at a time
  (a scenario step, a message arriving at the kernel, a window's own timer, or one due router
  timer), then waits until no message is in flight between the actors (`settle`).
- The next step is the earliest in virtual time; at the same instant, due router timers come
  first (by deadline, then creation), then the rest in the order they were scheduled.
- Every random choice (faults, jitter) is drawn by the simulation thread from one
  `random.Random` seeded from the scenario's name and the seed, in step order.
- Within a step the actors run concurrently; the log (`runlog.RunLog`) puts their events, and
  the harness hands what the router published to the windows, in one canonical order.

The harness's parts: `simtime` (the run's virtual time and the world's agenda), `runlog` (the
canonical log), `actions` (what each scenario action does) and `host` (the kernel process and
what crosses between it and the windows); `page`, `network`, `publisher` and `cell` hold the
simulated windows, network, kernel host publisher and cells. This module has the loop:
`Simulation`, `run_scenario` and their results.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from commrouter.config import Settings
from commrouter.embedding import CommRouter
from commrouter.observability.query import EventLog
from commrouter.simulation.actions import StepActions, entry_of
from commrouter.simulation.cell import Cell
from commrouter.simulation.host import HostSide, Kernel, Tracked
from commrouter.simulation.injected import HEALED_WINDOW as HEALED_WINDOW  # importable here
from commrouter.simulation.injected import FaultActions
from commrouter.simulation.iopub import IOPub
from commrouter.simulation.network import Network
from commrouter.simulation.page import Page
from commrouter.simulation.publisher import KernelHost, Published
from commrouter.simulation.runlog import RunLog, actor_ranks
from commrouter.simulation.runlog import without_ts as without_ts  # importable here, as before
from commrouter.simulation.scenario import Scenario, Step
from commrouter.simulation.simtime import EPSILON, Agenda, Item, frozen_time
from commrouter.timing import Timer, VirtualTime
from commrouter.transports.interfaces import Publisher
from commrouter.transports.memory import InMemoryProgramLink

__all__ = ["Hooks", "RunResult", "Simulation", "Violation", "run_scenario"]

QUIET_LIMIT = 60.0  # virtual seconds the world may stay busy after the last step
SPIN_LIMIT = 20_000  # steps at one virtual instant before the run is declared stuck


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


@functools.cache
def _defaults() -> Settings:
    return Settings.defaults()


class Simulation(StepActions, HostSide, FaultActions):
    """One run of one scenario with one seed (see the module doc for the rules)."""

    def __init__(self, scenario: Scenario, seed: int, time: VirtualTime, hooks: Hooks) -> None:
        self.scenario = scenario
        self.seed = seed
        self.time = time
        self.hooks = self.prepare_faults(hooks)  # injected.FaultActions
        self.settings = scenario.build_settings(_defaults())
        self.rng = random.Random(f"{scenario.name}/{seed}")
        self.log = RunLog(time.clock.now)
        self.agenda = Agenda()
        self._ids: dict[str, itertools.count[int]] = {}
        self.pages: dict[str, Page] = {}
        self.cells: dict[str, Cell] = {}
        self.current_cell: Cell | None = None
        self.network = Network(self)
        self.iopub = IOPub(self)
        self.server_up = True
        self.kernel: Kernel | None = None
        self.kernel_count = 0
        self.comm_fate: dict[str, str] = {}
        # the saved notebook's displays that carry a `connect`: display id -> (kernel, program)
        self.saved_connects: dict[str, tuple[str, str]] = {}
        self.tracked: list[Tracked] = []
        self.outbox: list[Published] = []
        self.outbox_lock = threading.Lock()
        self.iopub_arrival: dict[str, float] = {}  # kernel id -> its last IOPub arrival
        self.aborted: str | None = None
        # bookkeeping that must wait until the router has let go of a program (see _lose)
        self.after_step: list[Callable[[], None]] = []
        self._actors_before = {id(ref) for ref in pykka.ActorRegistry.get_all()}

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
        return self.agenda.add(at, label, fn, entry, event)

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

    def _schedule_step(self, step: Step) -> None:
        """Put a scenario step on the agenda; its action is `_do_<action>` (actions, host)."""
        handler = getattr(self, "_do_" + step.action.replace(".", "_"))
        entry = entry_of(step)
        event = {"event": "sim.step", "index": step.index + 1, "do": step.action, **step.params}
        self.schedule_at(
            step.at, step.action, lambda: handler(self.resolve(step.params)), entry, event
        )

    def _loop(self, horizon: float) -> bool:
        """Take steps until nothing is left to do (True) or the horizon is reached (False)."""
        instant, steps = -1.0, 0
        while self.aborted is None:
            if self.now() != instant:
                instant, steps = self.now(), 0
            steps += 1
            if steps > SPIN_LIMIT:  # e.g. a timer that sets itself again at the same instant
                self.aborted = f"more than {SPIN_LIMIT} steps at t={instant}: virtual time is stuck"
                self.emit("sim.stuck", "sim", "error", error=self.aborted)
                return False
            item = self.agenda.first()
            deadline = self.time.scheduler.next_deadline()
            if deadline is None and item is None:
                return True
            item_at = math.inf if item is None else item.t
            if min(item_at, math.inf if deadline is None else deadline) > horizon + EPSILON:
                return False
            if self.time.step(self.timer_limit(item_at) + EPSILON, self._fire):
                continue  # the timers of the earliest deadline came first, a step each
            assert item is not None  # no timer fired: the next item is the earlier
            self.agenda.pop()
            self.time.move_to(item.t)
            event = (item.event.pop("event"), item.event) if item.event else None
            self.step(item.entry, item.fn, event)
        return False

    def _fire(self, timer: Timer) -> None:
        """One due router timer is one step (`VirtualTime.step` hands them over one by one)."""
        target = str(getattr(timer.target, "name", "?"))
        self.step(
            target,
            lambda: timer.target.tell(timer.message),
            ("sim.timer", {"target": target, "message": type(timer.message).__name__}),
        )

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
                self.log.append_router(self.log.take_pending(), entry, facade_last)  # for the why
                self.emit("sim.stuck", "sim", "error", error=str(error))
                return
            events = self.log.take_pending()
            with self.outbox_lock:
                published, self.outbox[:] = list(self.outbox), []
            self.log.append_router(events, entry, facade_last)
            ranks = actor_ranks(entry, facade_last)
            for item in sorted(published, key=lambda p: ranks.get(p.actor, 9_999)):
                self.iopub.carry(item)
            self._check_promises()
            polled = [cell.poll() for cell in self.cells.values()]
            if not events and not published and not any(polled):
                return
            entry, facade_last = "program_executor", False
        self.aborted = "a step did not come to rest"

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
                    in_flight=getattr(link, "in_flight", 0),
                    acked=getattr(link, "acked", 0),
                    merged=getattr(link, "merged", 0),
                    dropped=getattr(link, "dropped", 0),
                    resent=getattr(link, "resent", 0),
                    headless=getattr(link, "headless", False),
                    windows=list(link.windows),
                )
        timers = self.time.pending_timers()
        in_flight = self.time.activity.in_flight
        self._report_pending()
        for page in self.pages.values():  # what a window still holds for the kernel
            for entry in page.hub.queue if page.hub is not None else ():
                page.emit("page.left_queued", "warning", **entry)
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
    frozen = frozen_time()  # raises at once without freezegun, the simulation's dependency

    from commrouter.simulation.invariants import check_run

    with frozen as time:
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
