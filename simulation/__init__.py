"""Simulation harness: failure scenarios on the real actors, in virtual time, replayable.

Only the ends are simulated (browser windows running commrouter.js's logic, the network
between them and the kernel, the kernel host, the cell program); the actors are the
production ones, driven by freezegun-backed `VirtualTime`. A run is determined by its scenario
and its seed: the same seed gives the same event log, byte for byte (`ts` is virtual too).

    from commrouter.simulation import load_scenario, run_scenario
    result = run_scenario(load_scenario("page-reload"), seed=0, log_dir="runs")
    result.passed, result.violations, result.log.query("connection.opened").count()

See docs/simulation.md for the scenario format, the determinism design and the invariants;
`commrouter simulate --help` for the command line. Names are imported on first use. `EventLog`
and `Query` are `commrouter.observability`'s (the one query API over logs), re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from commrouter.lazy_exports import lazy_exports

_EXPORTS = {
    "EventLog": "commrouter.observability.query",
    "Query": "commrouter.observability.query",
    "generate_scenario": "commrouter.simulation.explore",
    "Hooks": "commrouter.simulation.runner",
    "RunResult": "commrouter.simulation.runner",
    "Violation": "commrouter.simulation.runner",
    "run_scenario": "commrouter.simulation.runner",
    "Scenario": "commrouter.simulation.scenario",
    "ScenarioError": "commrouter.simulation.scenario",
    "load_scenario": "commrouter.simulation.scenario",
    "parse_scenario": "commrouter.simulation.scenario",
    "shipped": "commrouter.simulation.scenario",
}

__all__ = [
    "EventLog",
    "Hooks",
    "Query",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Violation",
    "generate_scenario",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
    "shipped",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from commrouter.observability.query import EventLog, Query
    from commrouter.simulation.explore import generate_scenario
    from commrouter.simulation.runner import Hooks, RunResult, Violation, run_scenario
    from commrouter.simulation.scenario import (
        Scenario,
        ScenarioError,
        load_scenario,
        parse_scenario,
        shipped,
    )
