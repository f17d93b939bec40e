"""The simulation harness: shipped scenarios pass, broken routers are caught, runs replay."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from commrouter import CommRouter
from commrouter.__main__ import main
from commrouter.router.messages import ToProgram, ValueForProgram
from commrouter.simulation import (
    EventLog,
    Hooks,
    ScenarioError,
    generate_scenario,
    load_scenario,
    parse_scenario,
    run_scenario,
    shipped,
)
from commrouter.simulation.publisher import KernelHost
from commrouter.simulation.runner import Simulation, without_ts
from commrouter.simulation.scenario import ACTIONS, dump_scenario
from commrouter.transports.memory import InMemoryProgramLink

SHIPPED = list(shipped())

#: Router defects a shipped scenario shows, expected to fail until the router is fixed (strict:
#: then they pass, and the entry must go). The seven the simulation found for issue 11 are fixed.
ROUTER_DEFECTS: dict[str, str] = {}


def shipped_params() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(reason=ROUTER_DEFECTS[name], strict=True))
        if name in ROUTER_DEFECTS
        else name
        for name in SHIPPED
    ]


def checks(result: Any) -> set[str]:
    return {violation.check for violation in result.violations}


def describe(result: Any) -> str:
    return "\n".join(f"{v.check}: {v.message}" for v in result.violations)


# ------------------------------------------------------------------ shipped scenarios


def test_the_recovery_cases_and_the_seed_timeouts_are_shipped() -> None:
    assert {
        "kernel-restart",
        "server-restart",
        "page-reload",
        "second-window",
        "heartbeat-probe",
        "heartbeat-timeout",
        "install-timeout",
    } <= set(SHIPPED)


@pytest.mark.parametrize("name", shipped_params())
def test_shipped_scenario_passes(name: str, tmp_path: Path) -> None:
    result = run_scenario(load_scenario(name), seed=0, log_dir=tmp_path)
    assert result.passed, describe(result)
    assert result.log_path is not None and result.log_path.exists()
    assert result.replay == f"commrouter simulate {name} --seed 0"


def test_flaky_network_holds_for_many_seeds() -> None:
    scenario = load_scenario("flaky-network")
    faults: set[str] = set()
    for seed in range(12):
        result = run_scenario(scenario, seed)
        assert result.passed, f"seed {seed}:\n{describe(result)}"
        faults |= {e["event"] for e in result.log.query("net.")}
    assert {"net.dropped", "net.duplicated", "net.reordered", "net.delayed"} <= faults


# ---------------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_log_apart_from_ts(tmp_path: Path) -> None:
    scenario = load_scenario("flaky-network")
    first = run_scenario(scenario, 3, log_dir=tmp_path / "a")
    second = run_scenario(scenario, 3, log_dir=tmp_path / "b")
    assert first.log_path is not None and second.log_path is not None

    def lines(path: Path) -> list[str]:
        return without_ts(json.loads(line) for line in path.read_text().splitlines())

    assert lines(first.log_path) == lines(second.log_path)
    assert lines(first.log_path) == without_ts(first.log)
    other = run_scenario(scenario, 4)
    assert without_ts(other.log) != without_ts(first.log)  # the seed matters


def test_generated_and_shipped_runs_replay_identically() -> None:
    for seed in range(100, 130):
        first = without_ts(run_scenario(generate_scenario(seed), seed).log)
        assert first == without_ts(run_scenario(generate_scenario(seed), seed).log), seed
    for name in SHIPPED:
        scenario = load_scenario(name)
        assert without_ts(run_scenario(scenario, 1).log) == without_ts(
            run_scenario(scenario, 1).log
        ), name


def test_generated_ids_are_normalised_in_the_log() -> None:
    result = run_scenario(load_scenario("heartbeat-timeout"), 0)
    ids = result.log.query("connection.install_started").values("display_id")
    assert ids == ["commrouter-install-1", "commrouter-install-2"]


# ------------------------------------------------------- broken routers are caught


class LossyLink(InMemoryProgramLink):
    """A program link that loses every third value it is offered (and says it took it)."""

    def __init__(self, program_id: str, capacity: int = 1_000_000) -> None:
        super().__init__(program_id, capacity)
        self.offers = 0

    def offer(self, message: ToProgram) -> bool:
        if isinstance(message, ValueForProgram):
            self.offers += 1
            if self.offers % 3 == 0:
                return True
        return super().offer(message)


class ReorderingLink(InMemoryProgramLink):
    """A program link that swaps each pair of values."""

    def __init__(self, program_id: str, capacity: int = 1_000_000) -> None:
        super().__init__(program_id, capacity)
        self.held: ValueForProgram | None = None

    def offer(self, message: ToProgram) -> bool:
        if not isinstance(message, ValueForProgram):
            return super().offer(message)
        if self.held is None:
            self.held = message
            return True
        held, self.held = self.held, None
        return super().offer(message) and super().offer(held)


class SwallowingHost:
    """A kernel host that silently loses the router's comm messages at one address (a batch
    carrying a value for it too)."""

    def __init__(self, host: KernelHost, address: str) -> None:
        self.host = host
        self.address = address

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        items = data.get("batch") or [data]
        if all(item.get("address") != self.address for item in items):
            self.host.comm_msg(comm_id, data, parent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)


class DuplicatingRouter(CommRouter):
    """A host adapter bug: every comm_msg is handed to the router twice."""

    def handle_comm_msg(self, content: Any, parent: Any = None, msg_id: Any = None) -> None:
        super().handle_comm_msg(content, parent, msg_id)
        super().handle_comm_msg(content, parent, msg_id)


def test_a_link_that_loses_values_is_caught() -> None:
    result = run_scenario(load_scenario("basic-flow"), 0, hooks=Hooks(link_factory=LossyLink))
    assert "delivery to the program" in checks(result)
    [violation] = [v for v in result.violations if v.check == "delivery to the program"]
    assert "never reached the program and no event explains it" in violation.message
    assert violation.seq is not None  # points at the lost value's arrival


def test_a_link_that_reorders_values_is_caught() -> None:
    result = run_scenario(load_scenario("basic-flow"), 0, hooks=Hooks(link_factory=ReorderingLink))
    messages = [v.message for v in result.violations if v.check == "delivery to the program"]
    assert any("out of order" in message for message in messages), describe(result)


def test_a_host_that_drops_pings_is_caught_by_the_scenario() -> None:
    hooks = Hooks(publisher_wrapper=lambda host: SwallowingHost(host, "#heartbeat/ping"))
    result = run_scenario(load_scenario("heartbeat-probe"), 0, hooks=hooks)
    assert "expected" in checks(result)  # no pong, a heartbeat timeout, a reinstall
    assert result.log.query("heartbeat.timeout").exists()


def test_a_host_that_loses_values_is_caught() -> None:
    hooks = Hooks(publisher_wrapper=lambda host: SwallowingHost(host, "/label"))
    result = run_scenario(load_scenario("basic-flow"), 0, hooks=hooks)
    assert "delivery to the page" in checks(result), describe(result)


def test_a_router_that_duplicates_messages_is_caught() -> None:
    result = run_scenario(
        load_scenario("basic-flow"), 0, hooks=Hooks(router_factory=DuplicatingRouter)
    )
    messages = [v.message for v in result.violations if v.check == "delivery to the program"]
    assert any("delivered twice" in message for message in messages), describe(result)


def test_random_runs_catch_a_lossy_link_and_replay_the_failure() -> None:
    hooks = Hooks(link_factory=LossyLink)
    failed = [
        result
        for seed in range(20)
        if not (result := run_scenario(generate_scenario(seed), seed, hooks=hooks)).passed
    ]
    assert len(failed) >= 5
    assert all("delivery to the program" in checks(result) for result in failed)
    first = failed[0]
    assert first.replay == f"commrouter simulate --seed {first.seed} --runs 1"
    again = run_scenario(generate_scenario(first.seed), first.seed, hooks=hooks)
    assert again.violations == first.violations


def test_every_scenario_action_has_a_handler() -> None:
    """`Simulation` gets its `_do_<action>` handlers from its parts (actions.py, host.py)."""
    handlers = {name for name in dir(Simulation) if name.startswith("_do_")}
    assert handlers == {"_do_" + action.replace(".", "_") for action in ACTIONS}


def test_an_actor_given_up_on_does_not_stall_the_run_and_its_effects_are_reported() -> None:
    data = {
        "scenario": {
            "steps": [
                {"at": 0.0, "do": "cell.start"},
                {"at": 0.1, "do": "cell.subscribe", "address": "/in"},
                *(
                    {"at": 0.5 + i / 10, "do": "host.crash", "target": "heartbeat"}
                    for i in range(3)
                ),
                {"at": 3.0, "do": "cell.send", "address": "/out", "value": "needs a probe"},
                {"at": 3.1, "do": "page.ping"},  # parked for the dead heartbeat, for good
            ]
        },
        "settings": {"actors": {"restart_limit": 2}},
        "expect": {"gave_up": ["heartbeat"]},
    }
    started = time.perf_counter()
    result = run_scenario(parse_scenario(data), 0)
    assert time.perf_counter() - started < 5.0  # no settle waits for the parked messages
    assert result.violations == []  # the give-up and its dead letters are expected
    # the probe's message to the dead Heartbeat is a dead letter: the probe fails at once ...
    letter = result.log.query("supervisor.dead_letter", target="heartbeat").first()
    assert letter is not None and letter["message_type"] == "Probe"
    stale = result.log.query("connection.stale").first()
    assert stale is not None and "not running" in stale["reason"]
    assert stale["t"] == 3.0
    # ... and the link is installed again; the value went out at once (values keep flowing while
    # a probe is under way) and reached the page
    assert result.log.query("connection.opened").after(stale).exists()
    assert result.log.query("page.received", address="/out").exists()


def test_an_unexpected_give_up_is_a_violation() -> None:
    path = shipped()["supervisor-gives-up"]
    data = tomllib.loads(path.read_text())
    del data["expect"]
    result = run_scenario(parse_scenario(data, source="edited"), 0)
    assert "supervision" in checks(result)
    assert any("gave up on heartbeat" in v.message for v in result.violations)


def test_failed_expectations_are_reported() -> None:
    data = {
        "scenario": {"steps": [{"at": 0.0, "do": "host.ensure"}]},
        "frontend": {"pages": 0},
        "expect": {
            "events": [{"event": "connection.opened", "count": 1}],
            "absent": ["connection.install_failed"],
            "sequence": ["connection.install_started", "connection.opened"],
        },
    }
    result = run_scenario(parse_scenario(data), 0)
    messages = [v.message for v in result.violations]
    assert any("connection.opened" in m and "found 0" in m for m in messages)
    assert any("connection.install_failed should not happen" in m for m in messages)
    assert any(m.startswith("sequence: no connection.opened") for m in messages)
    assert result.log.query("host.ensure_done", outcome="failed").exists()


# -------------------------------------------------------------------- the format


def test_scenario_errors_name_the_file_the_step_and_the_key(tmp_path: Path) -> None:
    cases = {
        '[scenario]\nsteps = [{ at = 1.0, do = "page.fly" }]': "step 1 (do = 'page.fly')",
        '[scenario]\nsteps = [{ at = 1.0, do = "page.send", value = 1 }]': "'address' is required",
        '[scenario]\nsteps = [{ do = "host.ensure" }]': "'at' (virtual seconds) is required",
        '[scenario]\nsteps = [{ at = 0, do = "host.crash", target = "x" }]': "expected one of",
        '[scenario]\nsteps = [{ at = 0, do = "cell.send", address = "/a" }]': "exactly one of",
        "[settings.heartbeat]\ntimeout = -1": "heartbeat.timeout = -1",
        "[settings.heartbeat]\nbogus = 1": "bogus",
        "[network]\ndrop = 2": "out of range",
        "[expect]\nmaybe = 1": "[expect]: unknown key 'maybe'",
        "[scenario\n": "invalid TOML",
    }
    for text, expected in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ScenarioError, match=r"bad\.toml") as error:
            load_scenario(path)
        assert expected in str(error.value), text


def test_a_generated_scenario_round_trips_through_toml(tmp_path: Path) -> None:
    scenario = generate_scenario(5)
    path = tmp_path / "random.toml"
    path.write_text(dump_scenario(scenario))
    loaded = load_scenario(path)
    assert [(s.at, s.action, dict(s.params)) for s in loaded.steps] == [
        (s.at, s.action, dict(s.params)) for s in scenario.steps
    ]
    assert (loaded.network, loaded.frontend, loaded.settings) == (
        scenario.network,
        scenario.frontend,
        scenario.settings,
    )


# ------------------------------------------------------------------- the query API


def test_the_query_api_filters_by_name_prefix_fields_time_and_position(tmp_path: Path) -> None:
    result = run_scenario(load_scenario("page-reload"), 0, log_dir=tmp_path)
    assert result.log_path is not None
    log = EventLog.read(result.log_path)
    assert log.query("connection.opened").count() == 2
    assert log.query("connection.", comm_id="comm-2").exists()
    assert log.query("heartbeat.").between(3.7, 3.9).values("event") == [
        "heartbeat.timeout",
        "heartbeat.ping_sent",
    ]
    reload = log.query("page.reloaded").first()
    assert reload is not None
    after = log.query("page.received").after(reload).values("value")
    # /label resent; /in: its last value (the snapshot of the new page), then the page's own
    # newer change echoed back, since that older value was on its way when the change arrived
    assert after == ["into the void", "after", 1, 2]
    assert log.query("page.received").before(reload).values("value") == ["before"]
    assert log.query("cell.received", value=lambda v: v > 1).values("value") == [2]
    assert log.query().where(lambda e: e.get("level") == "warning").exists()
    assert log.query("connection.opened").last()["comm_id"] == "comm-2"
    assert [e["seq"] for e in log.around(10, before=2, after=1)] == [8, 9, 10, 11]


# ------------------------------------------------------------------------- the CLI


def test_cli_runs_scenarios_and_keeps_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status = main(["simulate", "basic-flow", "page-reload", "--log-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.splitlines()[0].split() == ["scenario", "seed", "verdict", "virtual", "events"]
    assert "page-reload                   0  pass" in out
    assert "2 run(s): 2 passed, 0 failed" in out and f"logs: {tmp_path}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "basic-flow-seed0.jsonl",
        "page-reload-seed0.jsonl",
    ]


def test_cli_explores_random_schedules(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status = main(["simulate", "--seed", "43", "--runs", "3", "--log-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert [line.split()[1] for line in out.splitlines()[1:4]] == ["43", "44", "45"]
    assert (tmp_path / "random-seed44.toml").exists()  # the generated schedule, editable


def test_cli_failure_shows_the_timeline_and_the_replay_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "too-hopeful.toml"
    scenario.write_text(
        "[scenario]\n"
        'steps = [{ at = 0.0, do = "cell.start" },\n'
        '         { at = 0.1, do = "cell.send", address = "/x", value = 1 },\n'
        '         { at = 0.2, do = "page.vanish" },\n'
        '         { at = 2.0, do = "cell.send", address = "/x", value = 2 }]\n'
        "[expect]\n"
        'page_received = { "/x" = [1, 2] }\n'
        'absent = ["heartbeat.timeout"]\n'
    )
    status = main(["simulate", str(scenario), "--seed", "5", "--log-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL too-hopeful (seed 5)" in out
    assert "expected: heartbeat.timeout should not happen" in out
    assert ">>+" in out and "heartbeat.timeout" in out  # the timeline, the event marked
    assert f"replay: commrouter simulate {scenario} --seed 5" in out
    assert "1 run(s): 0 passed, 1 failed" in out


def test_cli_reports_a_bad_scenario_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "no-such-scenario"]) == 2
    assert "no such file, and not a shipped scenario" in capsys.readouterr().err
