"""Random exploration: 200 generated fault schedules pass the invariants, within the CI budget."""

from __future__ import annotations

import time

from commrouter.simulation import generate_scenario, run_scenario

RUNS = 200
BUDGET = 60.0  # seconds on 2 cores; the CI limit is 2 minutes


def test_two_hundred_random_runs_pass_within_budget() -> None:
    started = time.perf_counter()
    failed = []
    actions: set[str] = set()
    for seed in range(RUNS):
        scenario = generate_scenario(seed)
        actions |= {step.action for step in scenario.steps}
        result = run_scenario(scenario, seed)
        if not result.passed:
            failed.append(f"{result.replay}: {result.violations[0].message}")
    elapsed = time.perf_counter() - started
    assert not failed, "\n".join(failed)
    assert elapsed < BUDGET, f"{RUNS} runs took {elapsed:.1f} s"
    assert {"host.restart_kernel", "host.restart_server", "page.reload", "cell.crash"} <= actions


def test_a_generated_scenario_depends_only_on_its_seed() -> None:
    assert generate_scenario(9) == generate_scenario(9)
    assert generate_scenario(9).steps != generate_scenario(10).steps
