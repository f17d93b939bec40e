"""Issue 15's faults (kernel -> page faults, partitions, a raising publisher, clock stalls,
latency changes, crashes on a given message) and the liveness rules that judge them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from commrouter.config import Settings
from commrouter.simulation import (
    EventLog,
    ScenarioError,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from commrouter.simulation.liveness import check_accounting, check_replies
from commrouter.simulation.scenario import dump_scenario

TRAFFIC = """
  { at = 0.0, do = "cell.start" },
  { at = 0.1, do = "cell.subscribe", address = "/in" },
  { at = 0.5, do = "cell.send", address = "/out", value = 1 },
"""


def run(text: str, seed: int = 0) -> Any:
    scenario = parse_scenario(tomllib.loads(text), source="test.toml")
    result = run_scenario(scenario, seed)
    assert result.passed, "\n".join(f"{v.check}: {v.message}" for v in result.violations)
    return result


def received(result: Any, address: str) -> list[Any]:
    seen, values = set(), []
    for event in result.log.query("page.received", address=address):
        if event["number"] not in seen:
            seen.add(event["number"])
            values.append(event["value"])
    return values


def test_kernel_to_page_drops_duplicates_and_reorders_are_recovered() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "iopub.set", drop = 0.3, duplicate = 0.3, reorder = 0.3, delay = 0.05 }},
  {{ at = 1.1, do = "cell.flood", address = "/log", count = 40, stream = true }},
  {{ at = 2.0, do = "cell.send", address = "/log", values = [40, 41, 42] }},
  {{ at = 6.0, do = "iopub.set" }},
  {{ at = 6.5, do = "cell.sync" }},
  {{ at = 9.0, do = "cell.finish" }},
]
"""
    )
    log = result.log
    assert log.query("iopub.dropped", reason="injected drop").exists()
    assert log.query("iopub.duplicated").exists() and log.query("iopub.reordered").exists()
    assert received(result, "/log") == list(range(43))  # all of them, once, in order
    assert log.query("cell.sync_ack", error=None).exists()


def test_the_high_water_mark_and_the_rate_limit_drop_what_is_over_them() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "iopub.set", hwm = 2, rate = 3 }},
  {{ at = 1.1, do = "cell.send", address = "/a", value = 1 }},
  {{ at = 1.2, do = "cell.send", address = "/b", value = 2 }},
  {{ at = 1.3, do = "cell.send", address = "/c", value = 3 }},
  {{ at = 1.4, do = "cell.send", address = "/d", value = 4 }},
  {{ at = 1.5, do = "cell.send", address = "/e", value = 5 }},
  {{ at = 4.0, do = "iopub.set" }},
  {{ at = 8.0, do = "cell.finish" }},
]

[frontend]
iopub_latency = 0.5
"""
    )
    reasons = set(result.log.query("iopub.dropped").values("reason"))
    assert reasons == {"high-water mark", "rate limit"}
    for address, value in zip("abcde", range(1, 6), strict=True):
        assert received(result, f"/{address}") == [value]  # sent again until acknowledged


def test_a_two_way_partition_loses_both_ways_and_the_link_recovers() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "net.partition", seconds = 4.0 }},
  {{ at = 1.5, do = "cell.send", address = "/out", value = 2 }},
  {{ at = 1.6, do = "page.send", address = "/in", value = "lost" }},
  {{ at = 6.0, do = "sim.heal" }},
  {{ at = 7.0, do = "page.send", address = "/in", value = "after" }},
  {{ at = 14.0, do = "cell.finish" }},
]
heal_at = 6.0
"""
    )
    log = result.log
    assert log.query("net.dropped", reason="partition").exists()
    assert log.query("iopub.dropped", reason="partition").exists()
    assert log.query("net.partition_healed").exists()
    assert received(result, "/out") == [1, 2]
    assert log.query("cell.received", address="/in").values("value") == ["after"]


def test_a_publisher_that_raises_is_reported_and_what_it_failed_to_send_goes_later() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "host.publisher_raises", seconds = 0.5, kind = "comm_msg" }},
  {{ at = 1.1, do = "cell.send", address = "/out", value = 2 }},
  {{ at = 6.0, do = "cell.finish" }},
]
"""
    )
    failed = result.log.query("connection.publish_failed").first()
    assert failed is not None and "injected" in failed["error"]
    assert received(result, "/out") == [1, 2]


def test_a_clock_stall_fires_the_timers_due_meanwhile_late_and_in_order() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "page.ignore_pings" }},
  {{ at = 1.0, do = "host.heartbeat", timeout = 0.5 }},
  {{ at = 1.2, do = "clock.stall", seconds = 2.0 }},
  {{ at = 4.0, do = "page.answer_pings" }},
  {{ at = 6.0, do = "cell.finish" }},
]
"""
    )
    timeout = result.log.query("sim.timer", message="PingTimedOut").first()
    assert timeout is not None and timeout["t"] == pytest.approx(3.2)  # due at 1.5
    done = result.log.query("host.heartbeat_done").first()
    assert done is not None and done["result"] is False


def test_latency_changes_mid_run() -> None:
    result = run(
        f"""[scenario]
steps = [{TRAFFIC}
  {{ at = 1.0, do = "net.latency", latency = 0.4, iopub = [0.2, 0.2] }},
  {{ at = 2.0, do = "page.send", address = "/in", value = 1 }},
  {{ at = 2.5, do = "cell.send", address = "/out", value = 2 }},
  {{ at = 5.0, do = "cell.finish" }},
]
"""
    )
    arrived = result.log.query("host.comm_received", address="/in").first()
    assert arrived is not None and arrived["t"] == pytest.approx(2.4)
    shown = result.log.query("page.received", value=2).first()
    assert shown is not None and shown["t"] == pytest.approx(2.7)


def test_the_new_actions_and_heal_at_are_checked_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[scenario]\nsteps = [{ at = 0, do = "net.latency", latency = [0.5, 0.1] }]')
    with pytest.raises(ScenarioError, match="latency"):
        load_scenario(path)
    path.write_text('[scenario]\nsteps = [{ at = 0, do = "host.crash_on", target = "x" }]')
    with pytest.raises(ScenarioError, match="target"):
        load_scenario(path)
    path.write_text('[scenario]\nheal_at = 3.5\nsteps = [{ at = 0, do = "sim.heal" }]')
    scenario = load_scenario(path)
    assert scenario.heal_at == 3.5
    path.write_text(dump_scenario(scenario))
    assert load_scenario(path).heal_at == 3.5


def crafted(*events: dict[str, Any]) -> EventLog:
    base = {"kernel_id": "kernel-1", "page": "window-1"}
    return EventLog([{**base, "seq": i, **e} for i, e in enumerate(events)])


def window_queue_lost(reload_at: float) -> list[Any]:
    """A linked window queues a value at t=20 and drops it (its queue full) at t=20.5."""
    log = crafted(
        {"event": "sim.step", "do": "page.reload", "t": reload_at},
        {"event": "page.link_open", "t": reload_at + 0.1},
        {"event": "page.queued", "address": "/in", "value": 1, "t": 20.0},
        {"event": "page.queue_dropped", "address": "/in", "value": 1, "t": 20.5},
    )
    scenario = parse_scenario({"scenario": {"steps": []}})
    return check_accounting(log, scenario, Settings.defaults())


def test_a_loss_is_excused_only_by_a_fault_shortly_before_it() -> None:
    assert window_queue_lost(reload_at=18.0) == []  # the reload explains it
    [violation] = window_queue_lost(reload_at=1.0)  # long healed: the router had time
    assert violation.check == "liveness"
    assert "page.queue_dropped lost 1 value(s) for /in" in violation.message
    assert "no injected fault explains it" in violation.message


def test_a_value_that_ends_nowhere_is_stranded() -> None:
    log = crafted(
        {"event": "page.link_open", "t": 0.1},
        {"event": "page.queued", "address": "/in", "value": 1, "t": 1.0},
        {"event": "cell.sent", "address": "/out", "value": 2, "t": 1.0, "program_id": "c"},
    )
    scenario = parse_scenario({"scenario": {"steps": []}})
    violations = check_accounting(log, scenario, Settings.defaults())
    assert [v.check for v in violations] == ["accounting", "accounting"]
    assert "never reached any window and no event lost them (stranded)" in violations[0].message
    assert "never reached the program" in violations[1].message


def test_a_pong_taken_for_another_ping_is_caught() -> None:
    log = crafted(
        {"event": "host.comm_received", "address": "#heartbeat/pong", "value": 1, "msg_id": "m-3"},
        {"event": "heartbeat.pong_received", "ping": 2, "msg_id": "m-3"},
    )
    scenario = parse_scenario({"scenario": {"steps": []}})
    [violation] = check_replies(log, scenario, Settings.defaults())
    assert violation.message == "ping 2 was taken as answered by a pong to ping 1 (msg m-3)"
