"""Shrinking: a failing run reduced to a minimal scenario that still fails the same way.

`shrink(scenario, seed, hooks)` removes steps (delta debugging: halves, then quarters, ... of the
timeline, keeping any removal after which the run still fails the same check), then simplifies
the world (the network and IOPub fault profiles, each settings section, the windows' latency)
while it still fails, within a budget of runs and seconds. The result is a `Scenario` that
`dump_scenario` writes as a file; `commrouter simulate FILE --seed S` replays it. The random
draws of a run come from the scenario's name and the seed, so the shrunk scenario keeps the
generated one's name.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from commrouter.simulation.runner import Hooks, RunResult, run_scenario
from commrouter.simulation.scenario import FrontEndModel, NetworkProfile, Scenario, Step

__all__ = ["Shrunk", "shrink"]


@dataclass
class Shrunk:
    """The outcome: the smallest failing scenario found, and what it took."""

    scenario: Scenario
    result: RunResult
    check: str
    runs: int
    steps_before: int

    @property
    def steps(self) -> int:
        return len(self.scenario.steps)


class _Budget:
    def __init__(self, runs: int, seconds: float) -> None:
        self.runs, self.left = 0, runs
        self.deadline = time.perf_counter() + seconds

    def spent(self) -> bool:
        return self.left <= 0 or time.perf_counter() > self.deadline


def _reindexed(steps: list[Step]) -> tuple[Step, ...]:
    return tuple(dataclasses.replace(step, index=i) for i, step in enumerate(steps))


def shrink(
    scenario: Scenario,
    seed: int,
    hooks: Hooks | None = None,
    *,
    max_runs: int = 400,
    seconds: float = 120.0,
    check: str | None = None,
) -> Shrunk | None:
    """Reduce `scenario` (failing with `seed`) while it fails with the same check (the first
    violation's, unless `check` names one). None if it does not fail at all."""
    budget = _Budget(max_runs, seconds)
    first = run_scenario(scenario, seed, hooks=hooks)
    if first.passed:
        return None
    wanted = check or first.violations[0].check
    best, best_result = scenario, first

    def fails(candidate: Scenario) -> bool:
        nonlocal best_result
        if budget.spent():
            return False
        budget.left -= 1
        budget.runs += 1
        result = run_scenario(candidate, seed, hooks=hooks)
        if any(v.check == wanted for v in result.violations):
            best_result = result
            return True
        return False

    steps = list(best.steps)
    granularity = 2
    while len(steps) >= 2 and not budget.spent():
        chunk = max(1, len(steps) // granularity)
        removed = False
        for start in range(0, len(steps), chunk):
            kept = steps[:start] + steps[start + chunk :]
            candidate = dataclasses.replace(best, steps=_reindexed(kept))
            if kept and fails(candidate):
                steps, best, removed = kept, candidate, True
                granularity = max(granularity - 1, 2)
                break
        if not removed:
            if chunk == 1:
                break
            granularity = min(len(steps), granularity * 2)
    for simpler in _simplifications(best):
        candidate = simpler(best)
        if candidate != best and fails(candidate):
            best = candidate
    if best_result.scenario is not best:  # the last run that failed was of `best`... or not
        best_result = run_scenario(best, seed, hooks=hooks)
        budget.runs += 1
    return Shrunk(best, best_result, wanted, budget.runs, len(scenario.steps))


def _simplifications(scenario: Scenario) -> list[Callable[[Scenario], Scenario]]:
    """World simplifications, each tried once: fault profiles off, settings sections at their
    defaults, a prompt network."""
    found: list[Callable[[Scenario], Scenario]] = [
        lambda s: dataclasses.replace(s, network=NetworkProfile()),
        lambda s: dataclasses.replace(
            s, frontend=dataclasses.replace(s.frontend, latency=FrontEndModel().latency)
        ),
        lambda s: dataclasses.replace(
            s,
            frontend=dataclasses.replace(s.frontend, iopub_latency=FrontEndModel().iopub_latency),
        ),
        lambda s: dataclasses.replace(
            s,
            frontend=dataclasses.replace(s.frontend, install_delay=FrontEndModel().install_delay),
        ),
    ]
    for section in scenario.settings:
        found.append(
            lambda s, name=section: dataclasses.replace(
                s, settings={k: v for k, v in s.settings.items() if k != name}
            )
        )
    return found
