"""Batches of runs: in parallel (`jobs` processes), within a time budget, with a coverage
report of which catalogued events and which invariants the batch exercised.

Each run is independent and deterministic, so running them in several processes changes
nothing in their logs; results come back in plan order. With a budget, no run starts after it
is spent (the runs under way finish). `Summary` is what a run sends back: picklable, with the
names of the events its log holds and the checks it gave something to judge.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commrouter.observability.query import EventLog

__all__ = ["Coverage", "Summary", "catalogued_events", "coverage", "run_plan"]

#: invariant (check name) -> events whose presence means the check had something to judge
EXERCISED_BY: dict[str, tuple[str, ...]] = {
    "delivery to the program": ("host.comm_received",),
    "delivery to the page": ("cell.sent", "host.send"),
    "sync": ("cell.sync",),
    "bounded waits": ("connection.install_started", "connection.probe_started", "host.ensure"),
    "supervision": ("actor.crashed", "supervisor.restarted"),
    "teardown": ("sim.teardown",),
    "accounting": ("page.sent", "page.queued", "cell.sent"),
    "liveness": (
        "connection.values_dropped",
        "connection.not_shown",
        "connection.msg_dropped",
        "page.queue_dropped",
        "page.left_queued",
        "actor.crashed",
        "sim.healed",
    ),
    "replies": ("heartbeat.pong_received",),
}

#: one planned run: a scenario (or a seed to generate one from), its seed
Job = tuple[Any, int]


@dataclass
class Summary:
    """What one run reports back."""

    name: str
    seed: int
    passed: bool
    virtual_duration: float
    events: int
    violations: list[dict[str, Any]]
    replay: str
    log_path: Path | None
    scenario_path: Path | None
    seen: set[str] = field(default_factory=set)
    exercised: set[str] = field(default_factory=set)
    expected: bool = False

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


def _run(job: Job, log_dir: Path, defect: str | None) -> Summary:
    from commrouter.simulation.explore import generate_scenario
    from commrouter.simulation.runner import run_scenario

    scenario, seed = job
    if isinstance(scenario, int):
        scenario = generate_scenario(scenario)
    hooks = None
    if defect is not None:
        from commrouter.simulation.defects import DEFECTS

        hooks = DEFECTS[defect]
    result = run_scenario(scenario, seed, log_dir=log_dir, hooks=hooks)
    seen = {str(e.get("event")) for e in result.log}
    replay = result.replay + (f" --defect {defect}" if defect else "")
    return Summary(
        scenario.name,
        seed,
        result.passed,
        result.virtual_duration,
        len(result.log),
        [v.as_dict() for v in result.violations],
        replay,
        result.log_path,
        result.scenario_path,
        seen,
        {check for check, names in EXERCISED_BY.items() if seen & set(names)},
        bool(scenario.expect),
    )


def run_plan(
    plan: Iterable[Job],
    log_dir: Path,
    *,
    jobs: int = 1,
    budget: float | None = None,
    defect: str | None = None,
) -> Iterator[Summary]:
    """Run the plan, `jobs` at a time, yielding summaries in plan order; no run starts once
    `budget` seconds have passed."""
    started = time.perf_counter()

    def in_time() -> bool:
        return budget is None or time.perf_counter() - started < budget

    if jobs <= 1:
        for job in plan:
            if not in_time():
                return
            yield _run(job, log_dir, defect)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending: list[concurrent.futures.Future[Summary]] = []
        work = iter(plan)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * jobs and in_time():
                job = next(work, None)
                if job is None:
                    exhausted = True
                    break
                pending.append(pool.submit(_run, job, log_dir, defect))
            if not pending:
                return
            yield pending.pop(0).result()


@dataclass
class Coverage:
    """Which catalogued events and invariants a batch exercised."""

    runs: int
    events: Counter[str]
    catalogue: set[str]
    invariants: Counter[str]
    violated: Counter[str]

    @property
    def unseen(self) -> list[str]:
        return sorted(self.catalogue - set(self.events))

    def report(self, limit: int = 40) -> str:
        """A few lines: events seen of the catalogue, never seen ones, invariants exercised."""
        seen = len(self.catalogue & set(self.events))
        lines = [
            f"coverage over {self.runs} run(s): {seen} of {len(self.catalogue)} catalogued "
            "events occurred"
        ]
        unseen = self.unseen
        if unseen:
            shown = ", ".join(unseen[:limit]) + (" ..." if len(unseen) > limit else "")
            lines.append(f"  never: {shown}")
        checks = ", ".join(
            f"{name} {self.invariants[name]}"
            + (f" ({self.violated[name]} violated)" if self.violated[name] else "")
            for name in EXERCISED_BY
        )
        lines.append(f"  invariants exercised (runs): {checks}")
        return "\n".join(lines)


#: the source folders whose events a simulated run can produce (not the reference kernel's,
#: the pipes' or the program library's)
SIMULATED = ("actors", "router", "simulation", "embedding.py", "memory.py")


def catalogued_events() -> set[str]:
    """Every event name the simulated world's code emits (the catalogue docs/logging.md lists,
    checked by a test against the same scan)."""
    from commrouter.observability.catalogue import scan_sources

    return {
        e.name
        for e in scan_sources().emissions
        if e.name and any(part in SIMULATED for part in Path(e.path).parts)
    }


def coverage(summaries: Iterable[Summary], catalogue: set[str] | None = None) -> Coverage:
    """The coverage of a batch from its runs' summaries."""
    events: Counter[str] = Counter()
    invariants: Counter[str] = Counter()
    violated: Counter[str] = Counter()
    runs = 0
    for summary in summaries:
        runs += 1
        events.update(summary.seen)
        invariants.update(summary.exercised)
        violated.update({v["check"] for v in summary.violations})
    return Coverage(
        runs, events, catalogued_events() if catalogue is None else catalogue, invariants, violated
    )


def read_log(summary: Summary) -> EventLog | None:
    """The run's log, read back (for the failure report)."""
    return None if summary.log_path is None else EventLog.read(summary.log_path)
