"""Swarm testing: each seed draws its own world; batches run in parallel, within a budget, and
report their coverage. Small budgets throughout."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from commrouter.__main__ import main
from commrouter.simulation import generate_scenario
from commrouter.simulation.batch import Summary, coverage, run_plan
from commrouter.simulation.runner import HEALED_WINDOW
from commrouter.simulation.swarm import FAULT_ACTIONS, draw


def test_each_seed_draws_its_own_settings_latencies_profiles_and_faults() -> None:
    scenarios = [generate_scenario(seed) for seed in range(40)]
    settings = {repr(sorted(s.settings.items())) for s in scenarios}
    assert len(settings) > 10  # timeouts, windows and limits vary by seed
    assert len({s.frontend.latency for s in scenarios}) > 5
    assert any(s.frontend.latency[0] >= 0.3 for s in scenarios)  # a slow but alive page
    assert any(s.network.faulty for s in scenarios) and not all(s.network.faulty for s in scenarios)
    actions = [{step.action for step in s.steps} for s in scenarios]
    everything = set().union(*actions)
    for action in ("iopub.set", "net.partition", "net.latency", "host.publisher_raises"):
        assert action in everything
    assert {"host.crash_on", "clock.stall", "page.freeze"} <= everything
    # swarm: a seed leaves some faults out altogether
    config = draw(random.Random("explore/3"))
    assert config.faults < set(FAULT_ACTIONS)
    assert all(config.weight(a) == 0.0 for a in set(FAULT_ACTIONS) - config.faults)


def test_every_generated_run_ends_with_a_heal_and_traffic_that_must_arrive() -> None:
    scenario = generate_scenario(11)
    assert scenario.heal_at is not None
    tail = [step for step in scenario.steps if step.at >= scenario.heal_at]
    assert tail[0].action == "sim.heal"
    assert {"cell.start", "cell.send", "page.send", "cell.read", "cell.sync"} <= {
        step.action for step in tail
    }
    assert any(step.params.get("page") == HEALED_WINDOW for step in tail)
    assert not any(step.action.startswith(("net.", "iopub.", "clock.")) for step in tail[1:])


def fingerprint(summaries: list[Summary]) -> list[tuple[int, bool, int, bytes]]:
    return [
        (s.seed, s.passed, s.events, s.log_path.read_bytes() if s.log_path else b"")
        for s in summaries
    ]


def test_parallel_runs_give_the_same_logs_in_the_same_order(tmp_path: Path) -> None:
    plan = [(seed, seed) for seed in range(4)]
    one = list(run_plan(plan, tmp_path / "one"))
    two = list(run_plan(plan, tmp_path / "two", jobs=2))
    assert [s.seed for s in two] == [0, 1, 2, 3]
    assert fingerprint(one) == fingerprint(two)


def test_no_run_starts_once_the_budget_is_spent(tmp_path: Path) -> None:
    plan = [(seed, seed) for seed in range(50)]
    assert list(run_plan(plan, tmp_path, budget=0.0)) == []
    some = list(run_plan(plan, tmp_path, budget=0.3))
    assert 1 <= len(some) < 50


def test_the_coverage_report_names_events_never_seen_and_invariants_exercised(
    tmp_path: Path,
) -> None:
    summaries = list(run_plan([(seed, seed) for seed in range(3)], tmp_path))
    report = coverage(summaries, catalogue={"page.received", "cell.sent", "never.happens"})
    assert report.runs == 3
    assert report.unseen == ["never.happens"]
    assert report.invariants["delivery to the page"] == 3
    assert report.invariants["liveness"] == 3  # every generated run heals
    assert report.violated == {}
    text = report.report()
    assert "2 of 3 catalogued events occurred" in text
    assert "never: never.happens" in text
    assert "liveness 3" in text
    full = coverage(summaries)  # against the simulated world's real catalogue
    assert len(full.catalogue) > 100 and "connection.opened" in full.events


def test_the_cli_stops_at_its_budget_and_reports_what_did_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--runs", "5", "--budget", "0", "--log-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 run(s): 0 passed, 0 failed" in out and "5 not started (budget spent)" in out
    assert main(["simulate", "--runs", "1", "--jobs", "0"]) == 2
