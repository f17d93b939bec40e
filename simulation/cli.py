"""`commrouter simulate`: run scenarios (or random fault schedules) and report.

    commrouter simulate                              # every shipped scenario, seed 0
    commrouter simulate page-reload kernel-restart   # shipped scenarios by name, or TOML paths
    commrouter simulate flaky-network --runs 20      # seeds 0..19
    commrouter simulate --seed 7 --runs 200          # 200 generated scenarios, seeds 7..206
    commrouter simulate --seed 52 --runs 1           # replay generated run 52
    commrouter simulate --runs 1000 --jobs 2 --budget 120   # a swarm, two processes, 2 min

Prints one row per run (scenario, seed, verdict, virtual duration, events); for each failed
run, its violations, the timeline around the first one and the command that replays it; a
failing generated run is then shrunk to a minimal scenario file that still fails, printed with
its own replay command. A batch of generated runs ends with its coverage: the catalogued events
it produced (and those it never did) and the runs that exercised each invariant.
Every run's JSON-lines log is kept in --log-dir (default: a new temporary directory, printed at
the end); a generated scenario is saved next to its log as TOML. Exit status 1 if a run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from commrouter.simulation.batch import Summary
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
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at a time, each in its own process (default 1)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no run after this many (wall-clock) seconds",
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print the coverage report for any batch (generated batches always print it)",
    )
    parser.add_argument(
        "--no-shrink", action="store_true", help="do not shrink the first failing generated run"
    )
    parser.add_argument(
        "--defect",
        default=None,
        help="run against a router with a known defect re-introduced (simulation/defects.py), "
        "to see the harness catch it",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run what `args` asks for; print the table and the failures. Returns the exit status."""
    from commrouter.simulation.defects import DEFECTS
    from commrouter.simulation.scenario import ScenarioError

    out = out or sys.stdout
    if args.runs is not None and args.runs < 1:
        print("commrouter simulate: --runs must be at least 1", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("commrouter simulate: --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.defect is not None and args.defect not in DEFECTS:
        known = ", ".join(DEFECTS)
        print(f"commrouter simulate: --defect must be one of {known}", file=sys.stderr)
        return 2
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="commrouter-sim-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        plan = list(_plan(args.paths, args.seed, args.runs))
        return _execute(plan, log_dir, out, args)
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


def _execute(
    plan: list[tuple[Scenario | int, int]], log_dir: Path, out: TextIO, args: argparse.Namespace
) -> int:
    from commrouter.simulation.batch import coverage, run_plan

    print(HEADER, file=out, flush=True)
    failed: list[Summary] = []
    done: list[Summary] = []
    started = time.perf_counter()
    for summary in run_plan(plan, log_dir, jobs=args.jobs, budget=args.budget, defect=args.defect):
        done.append(summary)
        print(
            f"{summary.name[:24]:<24} {summary.seed:>6}  {summary.verdict:<7} "
            f"{summary.virtual_duration:>8.3f}s {summary.events:>7}",
            file=out,
            flush=True,
        )
        if not summary.passed:
            failed.append(summary)
    wall = time.perf_counter() - started
    for summary in failed:
        _report(summary, out)
    generated = any(isinstance(scenario, int) for scenario, _ in plan)
    if failed and generated and not args.no_shrink and failed[0].scenario_path is not None:
        _shrink(failed[0], log_dir, args.defect, out)
    skipped = len(plan) - len(done)
    budget = f", {skipped} not started (budget spent)" if skipped else ""
    if generated or args.coverage:
        print("\n" + coverage(done).report(), file=out)
    print(
        f"\n{len(done)} run(s): {len(done) - len(failed)} passed, {len(failed)} failed "
        f"({wall:.1f} s{budget})\nlogs: {log_dir}",
        file=out,
        flush=True,
    )
    return 1 if failed else 0


def _shrink(summary: Summary, log_dir: Path, defect: str | None, out: TextIO) -> None:
    """Reduce the first failing generated run to a minimal scenario file, print its replay."""
    from commrouter.simulation.defects import DEFECTS
    from commrouter.simulation.explore import generate_scenario
    from commrouter.simulation.scenario import dump_scenario
    from commrouter.simulation.shrink import shrink

    hooks = DEFECTS[defect] if defect else None
    shrunk = shrink(generate_scenario(summary.seed), summary.seed, hooks)
    if shrunk is None:  # cannot happen: the run is deterministic
        print(f"\nshrinking seed {summary.seed}: the run passed this time", file=out)
        return
    path = log_dir / f"random-seed{summary.seed}-min.toml"
    description = (
        f"generated seed {summary.seed}, shrunk by commrouter simulate: it still fails "
        f"'{shrunk.check}'{' with --defect ' + defect if defect else ''}"
    )
    scenario = dataclasses.replace(shrunk.scenario, description=description)
    path.write_text(dump_scenario(scenario), encoding="utf-8")
    extra = f" --defect {defect}" if defect else ""
    print(
        f"\nshrunk seed {summary.seed} ({shrunk.check}): {shrunk.steps_before} -> "
        f"{shrunk.steps} steps in {shrunk.runs} runs: {path}\n"
        f"  - {shrunk.result.violations[0].message}\n"
        f"  replay: commrouter simulate {path} --seed {summary.seed}{extra}",
        file=out,
        flush=True,
    )


def _report(summary: Summary, out: TextIO) -> None:
    from commrouter.observability import ConsoleTimeline
    from commrouter.simulation.batch import read_log

    count = len(summary.violations)
    print(f"\nFAIL {summary.name} (seed {summary.seed}): {count} violation(s)", file=out)
    for violation in summary.violations:
        seq, t = violation.get("seq"), violation.get("t")
        where = f" [event {seq}, t={t}]" if seq is not None else ""
        print(f"  - {violation['check']}: {violation['message']}{where}", file=out)
    first = next((v for v in summary.violations if v.get("seq") is not None), None)
    log = read_log(summary) if first is not None else None
    if first is not None and log is not None:
        timeline = ConsoleTimeline()
        timeline.render({"t": 0.0})  # times in the timeline are virtual seconds from the start
        print(f"  timeline around event {first['seq']}:", file=out)
        for event in log.around(first["seq"]):
            mark = ">>" if event.get("seq") == first["seq"] else "  "
            print(f"  {mark}{timeline.render(event)}", file=out)
    if summary.log_path is not None:
        print(f"  log: {summary.log_path}", file=out)
    if summary.scenario_path is not None:
        print(f"  scenario: {summary.scenario_path}", file=out)
    print(f"  replay: {summary.replay}", file=out, flush=True)
