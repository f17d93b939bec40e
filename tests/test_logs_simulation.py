"""The log tools over simulation runs: traces that show where a value stopped (lost with a
reloaded page, merged in a full outbox, dropped for want of a subscriber), statistics, and
`commrouter simulate --log-dir` followed by `commrouter logs`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commrouter.__main__ import main
from commrouter.observability import EventLog, summarize, trace
from commrouter.observability.catalogue import read_catalogue
from commrouter.simulation import load_scenario, run_scenario, shipped

CATALOGUE = Path(__file__).resolve().parent.parent / "docs" / "logging.md"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("sim-logs")
    for name in ("page-reload", "program-faults"):
        assert run_scenario(load_scenario(name), seed=0, log_dir=log_dir).passed
    return log_dir


def test_a_value_unheard_by_a_reloaded_page_is_followed_to_its_resend(runs):
    log = EventLog.read(runs / "page-reload-seed0.jsonl")
    journeys = trace(log, "/label")
    assert [(j.value, j.outcome) for j in journeys] == [
        ("before", "delivered"),
        ("into the void", "delivered"),
        ("after", "delivered"),
    ]
    # published on the reloaded page's comm (nobody heard it), sent again on it while the
    # router still thought it open, then on the new page's comm, where it arrived: one journey
    # per value, followed by its number through every attempt
    for journey, number in ((journeys[1], 2), (journeys[2], 3)):
        names = [hop.name for hop in journey.hops]
        assert names[:2] == ["cell.sent", "program.send_accepted"]
        assert names[-2:] == ["connection.sent", "page.received"]
        attempts = names[2:-2]
        assert attempts and attempts == ["connection.sent", "host.unheard"] * (len(attempts) // 2)
        assert {hop.event.get("number") for hop in journey.hops[2:]} == {number}
        assert journey.comm_id == "comm-1" and journey.hops[-1].event["comm_id"] == "comm-2"
        assert all(hop.event["comm_id"] == "comm-1" for hop in journey.hops[2:-2])


def test_values_for_the_program_merged_dropped_and_lost(runs, capsys):
    """The page batches values: [1, 2] and [10..17] are each one message, told apart by
    order at every stage."""
    path = runs / "program-faults-seed0.jsonl"
    journeys = trace(EventLog.read(path), "/in")
    outcomes = [(j.value, j.outcome) for j in journeys]
    assert ("to a closed link", "dropped") in outcomes
    assert (3, "dropped") in outcomes and (1, "lost") in outcomes and (2, "lost") in outcomes
    merged = [j for j in journeys if j.outcome == "merged"]
    assert [j.value for j in merged] == [14, 15, 16]
    assert all(j.hops[-1].name == "program.value_merged" for j in merged)
    newest = next(j for j in journeys if j.value == 17)
    assert newest.outcome == "delivered" and newest.hops[-1].name == "cell.received"
    no_subscriber = next(j for j in journeys if j.value == 3)
    assert no_subscriber.hops[-1].name == "router.dropped"
    assert no_subscriber.reason == "no subscriber"

    assert main(["logs", str(path), "--trace", "/in", "--msg", newest.msg_id or ""]) == 0
    out = capsys.readouterr().out  # the values of that message: 14, 15, 16 replaced in turn
    assert "8 value(s): 5 delivered, 3 merged" in out and "value=17" in out
    assert "MERGED at program.value_merged: replaced by the newer value of m-7" in out


def test_stats_of_a_run(runs):
    stats = summarize(EventLog.read(runs / "program-faults-seed0.jsonl"))
    assert stats.losses[("program.value_merged", "outbox full")] == 3
    assert stats.losses[("router.dropped", "no subscriber")] == 1
    assert stats.losses[("program.value_dropped", "program link closed")] == 1
    assert sum(stats.losses.values()) == 5
    reload = summarize(EventLog.read(runs / "page-reload-seed0.jsonl"))
    # the resend timer finds the page silent at 3.3 s and probes: a missed pong leads to another
    # ping, every 0.5 s, until 3 s of silence
    assert reload.timeouts == 4 and reload.pings == 4
    assert reload.probes.outcomes["stale: silent for 3.0 s"] == 1
    assert reload.installs.started == 2 and reload.installs.outcomes["opened"] == 2
    assert reload.installs.waits["opened"] == pytest.approx([0.06, 0.06], abs=1e-6)


def test_heartbeat_round_trips(tmp_path, capsys):
    result = run_scenario(load_scenario("heartbeat-probe"), seed=0, log_dir=tmp_path)
    stats = summarize(result.log)
    assert stats.pongs >= 1 and stats.round_trips and stats.timeouts == 0
    assert main(["logs", str(result.log_path), "--stats", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rtt = sorted(stats.round_trips)
    assert summary["heartbeat"]["rtt_median"] == rtt[(len(rtt) - 1) // 2]  # nearest rank
    assert summary["heartbeat"]["rtt_p99"] == rtt[-1]


def test_simulate_then_read_its_logs(tmp_path, capsys):
    assert main(["simulate", "page-reload", "--log-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    path = str(tmp_path / "page-reload-seed0.jsonl")
    assert main(["logs", path, "--trace", "/label"]) == 0
    out = capsys.readouterr().out
    assert "3 value(s): 3 delivered" in out
    assert "host.unheard" in out and "why=reloaded" in out  # the comm nobody held, on the way
    assert main(["logs", path, "--event", "heartbeat.", "--since", "3.7", "--until", "3.9"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("+   0.000000s  heartbeat         [WARNING] heartbeat.")
    assert main(["logs", path, "--level", "warning", "--format", "json"]) == 0
    assert [json.loads(row)["event"] for row in capsys.readouterr().out.splitlines()] == [
        "heartbeat.timeout",
        "heartbeat.timeout",
        "heartbeat.timeout",
        "heartbeat.timeout",
        "connection.stale",
    ]


def test_the_in_memory_log_and_the_file_agree(runs):
    result = run_scenario(load_scenario("page-reload"), seed=0)
    from_file = EventLog.read(runs / "page-reload-seed0.jsonl")
    assert [j.as_dict() for j in trace(result.log, "/*")] == [
        j.as_dict() for j in trace(from_file, "/*")
    ]


def test_every_event_of_the_shipped_scenarios_is_catalogued(tmp_path):
    catalogued = {row.name for row in read_catalogue(CATALOGUE.read_text(encoding="utf-8"))}
    seen: set[str] = set()
    for path in shipped().values():
        seen |= {e["event"] for e in run_scenario(load_scenario(path), seed=0).log}
    assert seen - catalogued == set()
