"""Each defect class of issue 15, re-introduced through the harness's hooks
(simulation/defects.py), is caught by generated runs with default settings within 1,000 seeds —
here, far sooner, so the test stops at the first run that fails — and the real router passes
that same seed. Shrinking turns the failing run into a small scenario file that still fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from commrouter.__main__ import main
from commrouter.simulation import generate_scenario, load_scenario, run_scenario
from commrouter.simulation.defects import DEFECTS
from commrouter.simulation.scenario import dump_scenario
from commrouter.simulation.shrink import shrink

LIMIT = 1_000  # the bound; each defect below is caught within its first 50 seeds

#: defect -> the checks that must be among the first failing run's violations
CAUGHT_BY = {
    "stale-pong": {"replies"},
    "sync-over-drops": {"sync"},
    "slow-page-loses": {"liveness"},
    "stranded-in-replaced-window": {"accounting"},
    "drops-program-values": {"liveness"},
    "single-link": {"liveness"},
}


def first_failure(name: str) -> tuple[int, set[str]]:
    for seed in range(LIMIT):
        result = run_scenario(generate_scenario(seed), seed, hooks=DEFECTS[name])
        if not result.passed:
            return seed, {v.check for v in result.violations}
    raise AssertionError(f"{name} not caught in {LIMIT} generated runs")


@pytest.mark.parametrize("name", list(DEFECTS))
def test_generated_runs_catch_the_defect_and_the_real_router_passes(name: str) -> None:
    assert set(CAUGHT_BY) == set(DEFECTS)
    seed, checks = first_failure(name)
    assert CAUGHT_BY[name] <= checks, (seed, checks)
    fixed = run_scenario(generate_scenario(seed), seed)
    assert fixed.passed, [v.message for v in fixed.violations]


def test_dropping_every_program_value_fails_a_healthy_run_though_each_drop_is_logged() -> None:
    """The hole issue 15 names: a loss with a log line used to be accepted. basic-flow injects
    no fault, so no loss is."""
    result = run_scenario(load_scenario("basic-flow"), 0, hooks=DEFECTS["drops-program-values"])
    liveness = [v.message for v in result.violations if v.check == "liveness"]
    assert len(liveness) == 3, liveness
    assert all("in a run with no fault injected" in m for m in liveness)
    assert all("connection.values_dropped" in m for m in liveness)


def test_a_failing_run_shrinks_to_a_small_file_that_still_fails_and_replays(tmp_path: Path) -> None:
    hooks = DEFECTS["stale-pong"]
    seed, _ = first_failure("stale-pong")
    original = generate_scenario(seed)
    shrunk = shrink(original, seed, hooks, max_runs=120)
    assert shrunk is not None and shrunk.check == "replies"
    assert shrunk.steps < len(original.steps) // 3, shrunk.steps
    path = tmp_path / "min.toml"
    path.write_text(dump_scenario(shrunk.scenario))
    again = run_scenario(load_scenario(path), seed, hooks=hooks)
    assert "replies" in {v.check for v in again.violations}
    assert run_scenario(load_scenario(path), seed).passed  # the real router passes it


def test_the_cli_reports_the_defect_shrinks_it_and_prints_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["simulate", "--runs", "2", "--defect", "drops-program-values", "--log-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "replay: commrouter simulate --seed 0 --runs 1 --defect drops-program-values" in out
    shrunk = tmp_path / "random-seed0-min.toml"
    assert shrunk.exists()
    assert f"replay: commrouter simulate {shrunk} --seed 0 --defect drops-program-values" in out
    assert "coverage over 2 run(s)" in out
    assert main(["simulate", str(shrunk), "--seed", "0", "--log-dir", str(tmp_path)]) == 0


def test_a_single_link_for_the_notebook_fails_a_healthy_run_with_two_windows() -> None:
    """Runs with several windows used to be excused as a window fault; opening a second window
    is ordinary use now, so a router that drops the first window when the second opens fails
    the shipped scenario of a reload and a second tab, which the real router passes."""
    scenario = load_scenario("saved-widget-links")
    assert run_scenario(scenario, 0).passed
    result = run_scenario(scenario, 0, hooks=DEFECTS["single-link"])
    assert not result.passed
    assert "liveness" in {v.check for v in result.violations}
