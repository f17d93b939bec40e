"""`commrouter simulate`: run scenarios (or random fault schedules) and report.

    commrouter simulate                              # every shipped scenario, seed 0
    commrouter simulate page-reload kernel-restart   # shipped scenarios by name, or TOML paths
    commrouter simulate flaky-network --runs 20      # seeds 0..19
    commrouter simulate --seed 7 --runs 200          # 200 generated scenarios, seeds 7..206
    commrouter simulate --seed 52 --runs 1           # replay generated run 52

Prints one row per run (scenario, seed, verdict, virtual duration, events); for each failed
run, its violations, the timeline around the first one and the command that replays it.
Every run's JSON-lines log is kept in --log-dir (default: a new temporary directory, printed at
the end); a generated scenario is saved next to its log as TOML. Exit status 1 if a run failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from commrouter.simulation.runner import RunResult
    from commrouter.simulation.scenario import Scenario

HEADER = f"{'scenario':<24} {'seed':>6}  {'verdict':<7} {'virtual':>9} {'events':>7}"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `simulate` arguments to `parser`."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="scenario files or shipped scenario names (default: every shipped scenario, or "
        "generated scenarios with --runs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs per scenario, seeds SEED..SEED+RUNS-1; without PATH: generated scenarios",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="where to keep the logs")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run what `args` asks for; print the table and the failures. Returns the exit status."""
    from commrouter.simulation.scenario import ScenarioError

    out = out or sys.stdout
    if args.runs is not None and args.runs < 1:
        print("commrouter simulate: --runs must be at least 1", file=sys.stderr)
        return 2
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="commrouter-sim-"))
    try:
        plan = list(_plan(args.paths, args.seed, args.runs))
        return _execute(plan, log_dir, out)
    except (ScenarioError, RuntimeError) as error:
        print(f"commrouter simulate: {error}", file=sys.stderr)
        return 2


def _plan(paths: list[str], seed: int, runs: int | None) -> Iterator[tuple[Scenario | int, int]]:
    """(scenario, seed) pairs; an int instead of a scenario means "generate from this seed"."""
    from commrouter.simulation.scenario import load_scenario, shipped

    if not paths and runs is not None:
        for offset in range(runs):
            yield seed + offset, seed + offset
        return
    scenarios = (
        [load_scenario(p) for p in paths]
        if paths
        else [load_scenario(path) for path in shipped().values()]
    )
    for scenario in scenarios:
        for offset in range(runs or 1):
            yield scenario, seed + offset


def _execute(plan: list[tuple[Scenario | int, int]], log_dir: Path, out: TextIO) -> int:
    from commrouter.simulation.explore import generate_scenario
    from commrouter.simulation.runner import run_scenario

    print(HEADER, file=out, flush=True)
    failed: list[RunResult] = []
    started = time.perf_counter()
    for scenario, seed in plan:
        if isinstance(scenario, int):
            scenario = generate_scenario(scenario)
        result = run_scenario(scenario, seed, log_dir=log_dir)
        print(
            f"{scenario.name[:24]:<24} {seed:>6}  {result.verdict:<7} "
            f"{result.virtual_duration:>8.3f}s {len(result.log):>7}",
            file=out,
            flush=True,
        )
        if not result.passed:
            failed.append(result)
    wall = time.perf_counter() - started
    for result in failed:
        _report(result, out)
    print(
        f"\n{len(plan)} run(s): {len(plan) - len(failed)} passed, {len(failed)} failed "
        f"({wall:.1f} s)\nlogs: {log_dir}",
        file=out,
        flush=True,
    )
    return 1 if failed else 0


def _report(result: RunResult, out: TextIO) -> None:
    from commrouter.observability import ConsoleTimeline

    name = result.scenario.name
    count = len(result.violations)
    print(f"\nFAIL {name} (seed {result.seed}): {count} violation(s)", file=out)
    for violation in result.violations:
        where = f" [event {violation.seq}, t={violation.t}]" if violation.seq is not None else ""
        print(f"  - {violation.check}: {violation.message}{where}", file=out)
    first = next((v for v in result.violations if v.seq is not None), None)
    if first is not None and first.seq is not None:
        timeline = ConsoleTimeline()
        timeline.render({"t": 0.0})  # times in the timeline are virtual seconds from the start
        print(f"  timeline around event {first.seq}:", file=out)
        for event in result.log.around(first.seq):
            mark = ">>" if event.get("seq") == first.seq else "  "
            print(f"  {mark}{timeline.render(event)}", file=out)
    if result.log_path is not None:
        print(f"  log: {result.log_path}", file=out)
    if result.scenario_path is not None:
        print(f"  scenario: {result.scenario_path}", file=out)
    print(f"  replay: {result.replay}", file=out, flush=True)
