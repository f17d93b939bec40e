"""`commrouter logs` and the observability API over the log of a real kernel session: the
reference kernel started by jupyter_client, a cell that uses `commrouter.program`, and the
client acting as the front-end (one value is sent to an address nobody subscribed to)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from commrouter.__main__ import main
from commrouter.config import Settings, load_settings
from commrouter.kernel.kernel import kernel_log_file
from commrouter.observability import EventLog, event_time, summarize, trace
from commrouter.observability.catalogue import read_catalogue
from commrouter.simulation import load_scenario, run_scenario
from tests.kernel_harness import comm_msg_to, iopub_until, kernel_id_of, open_comm, running_kernel

TIMEOUT = 60
CATALOGUE = Path(__file__).resolve().parent.parent / "docs" / "logging.md"
CELL = """
    from commrouter import program
    with program.listen('/logs/in') as values:
        for value in values:
            program.send('/logs/out', value * 10)
            if value >= 2:
                break
    program.sync()
"""


@dataclass
class Session:
    path: Path
    kernel_id: str
    comm_id: str
    lost_msg_id: str


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    tmp = tmp_path_factory.mktemp("logs-kernel")
    # COMMROUTER_LOG_FILE empty: the kernel writes where it does by default
    with running_kernel(tmp, env={"COMMROUTER_LOG_FILE": ""}) as (manager, client, _):
        kernel_id = kernel_id_of(manager)
        msg_id = client.execute(textwrap.dedent(CELL))
        iopub_until(client, lambda m: m["msg_type"] == "display_data", TIMEOUT)  # the install
        comm_id, _ = open_comm(client, manager, TIMEOUT)

        def send(address: str, value: object) -> str:
            data = {"address": address, "value": value}
            message = client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
            client.shell_channel.send(message)
            return str(message["header"]["msg_id"])

        send("/logs/in", 1)
        iopub_until(client, comm_msg_to("/logs/out"), TIMEOUT)
        lost = send("/nowhere", "lost on the way")  # no program subscribed to it
        send("/logs/in", 2)
        last = iopub_until(client, comm_msg_to("/logs/out"), TIMEOUT)[-1]
        send("#ack", last["content"]["data"]["seq"])  # as the page does; the cell's sync waits
        reply = client.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
    # the kernel has shut down: its log is complete
    return Session(tmp / f"commrouter-{kernel_id}.jsonl", kernel_id, comm_id, lost)


def logs(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["logs", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_kernel_logs_beside_its_connection_file_by_default(session):
    assert session.path.is_file()
    log = EventLog.read(session.path)
    assert not log.problems
    started = log.query("kernel.started").first()
    assert started is not None and started["log_file"] == str(session.path)
    assert started["kernel_id"] == session.kernel_id
    assert log[-1]["event"] == "commrouter.stopped"


def test_every_event_of_the_session_is_catalogued(session):
    catalogued = {row.name for row in read_catalogue(CATALOGUE.read_text(encoding="utf-8"))}
    names = {e["event"] for e in EventLog.read(session.path)}
    assert names - catalogued == set()
    assert {"kernel.comm_msg", "connection.received", "program.delivered"} <= names


def test_the_lost_value_is_traced_to_where_it_stopped(session):
    log = EventLog.read(session.path)
    [journey] = trace(log, "/nowhere")
    assert journey.outcome == "dropped" and journey.reason == "no subscriber"
    assert journey.msg_id == session.lost_msg_id and journey.value == "lost on the way"
    assert [hop.name for hop in journey.hops] == [
        "kernel.comm_msg",
        "connection.received",
        "router.dropped",
    ]
    assert all(hop.latency is not None and 0 <= hop.latency < 5 for hop in journey.hops[1:])


def test_trace_from_the_command_line(session, capsys):
    status, out, err = logs(capsys, str(session.path), "--trace", "/nowhere")
    assert status == 0 and err == ""
    assert "trace /nowhere: 1 value(s): 1 dropped" in out
    assert "DROPPED at router.dropped: no subscriber" in out
    [hop] = [line for line in out.splitlines() if "router  " in line]  # the hop, its latency
    assert " ms  router" in hop and "router.dropped" in hop and "reason=no subscriber" in hop
    status, out, _ = logs(capsys, str(session.path), "--trace", "/nowhere", "--format", "json")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["outcome"] == "dropped" and record["hops"][-1]["event"] == "router.dropped"


def test_values_both_ways_hop_by_hop(session):
    log = EventLog.read(session.path)
    journeys = trace(log, "/logs/*")
    inbound = [j for j in journeys if j.address == "/logs/in"]
    outbound = [j for j in journeys if j.address == "/logs/out"]
    assert [j.value for j in inbound] == [1, 2] and [j.value for j in outbound] == [10, 20]
    for journey in inbound:
        assert journey.outcome == "delivered", journey.reason
        assert [hop.name for hop in journey.hops] == [
            "kernel.comm_msg",
            "connection.received",
            "router.delivered",
            "program.delivered",
        ]
        assert journey.comm_id == session.comm_id and journey.program_id is not None
    for journey in outbound:
        assert journey.outcome == "delivered" and journey.reason == "published on the comm"
        names = [hop.name for hop in journey.hops]
        assert names[0] == "program.send_accepted" and names[-1] == "connection.sent"
    # the program's answer to a value comes after the value reached it
    assert inbound[0].hops[-1].time <= outbound[0].hops[0].time


def test_filters(session, capsys):
    path = str(session.path)
    status, out, _ = logs(capsys, path, "--event", "router.", "--format", "json")
    events = [json.loads(line) for line in out.splitlines()]
    names = {e["event"] for e in events}
    assert status == 0 and all(name.startswith("router.") for name in names)
    assert {"router.delivered", "router.dropped", "router.route_added"} <= names
    _, out, _ = logs(capsys, path, "--level", "info", "--format", "json")
    assert {json.loads(line)["level"] for line in out.splitlines()} <= {"info", "warning"}
    _, out, _ = logs(
        capsys, path, "--address", "/logs/*", "--event", "connection.*", "--format", "json"
    )
    events = [json.loads(line) for line in out.splitlines()]
    assert {(e["event"], e["address"]) for e in events} == {
        ("connection.received", "/logs/in"),
        ("connection.sent", "/logs/out"),
    }
    _, out, _ = logs(capsys, path, "--msg", session.lost_msg_id, "--format", "json")
    assert [json.loads(line)["event"] for line in out.splitlines()] == [
        "kernel.comm_msg",
        "connection.received",
        "router.dropped",
    ]
    _, out, _ = logs(capsys, path, "--comm", session.comm_id, "--event", "connection.opened")
    assert out.count("connection.opened") == 1 and out.startswith("+   0.000000s  connection")
    log = EventLog.read(session.path)
    program_id = log.query("program.started").first()["program_id"]
    _, out, _ = logs(capsys, path, "--program", program_id, "--format", "json")
    assert all(json.loads(line)["program_id"] == program_id for line in out.splitlines())
    # a time window, in seconds from the first event: only the end of the session
    stopped = log.query("supervisor.stopped").first()
    since = event_time(stopped) - event_time(log[0]) - 1e-6
    _, out, _ = logs(capsys, path, "--since", f"{since:.6f}", "--format", "json")
    assert [json.loads(line)["event"] for line in out.splitlines()] == [
        "supervisor.stopped",
        "commrouter.stopped",
    ]
    _, out, _ = logs(capsys, path, "--until", stopped["ts"], "--event", "commrouter.")
    assert "commrouter.started" in out and "commrouter.stopped" not in out
    _, out, _ = logs(capsys, path, "--event", "router.dropped", "--format", "table")
    header, row = out.splitlines()
    assert header.split()[:4] == ["time", "level", "actor", "event"]
    assert "router.dropped" in row and "/nowhere" in row and "reason=no subscriber" in row


def test_stats(session, capsys):
    stats = summarize(EventLog.read(session.path))
    assert stats.by_event["router.dropped"] == 1
    assert stats.losses[("router.dropped", "no subscriber")] == 1
    assert stats.installs.started == 1 and stats.installs.outcomes["opened"] == 1
    status, out, _ = logs(capsys, str(session.path), "--stats")
    assert status == 0 and "router.dropped" in out and "no subscriber" in out
    assert "1 started: 1 opened" in out


def test_a_kernel_log_and_a_simulation_log_merge_by_time(session, tmp_path, capsys):
    result = run_scenario(load_scenario("basic-flow"), seed=0, log_dir=tmp_path)
    assert result.passed and result.log_path is not None
    merged = EventLog.read(session.path, result.log_path)
    kernel = EventLog.read(session.path)
    assert len(merged) == len(kernel) + len(result.log)
    # the simulation's clock starts in 2026-01-01, the kernel's is now: a block each, each in
    # its own order
    sources = [event.source for event in merged]  # type: ignore[attr-defined]
    first, second = sorted(set(sources), key=sources.index)
    assert sources == [first] * sources.count(first) + [second] * sources.count(second)
    _, out, _ = logs(capsys, str(session.path), str(result.log_path), "--event", "sim.started")
    assert out.count("sim.started") == 1


def test_the_kernel_log_destination_comes_from_the_settings(tmp_path):
    settings = Settings.defaults()
    assert kernel_log_file(settings.log, "k-1", tmp_path) == tmp_path / "commrouter-k-1.jsonl"
    assert kernel_log_file(settings.log, "k-1", None) is None  # nowhere known to put it
    chosen = load_settings(environ={"COMMROUTER_LOG_FILE": str(tmp_path / "mine.jsonl")})
    assert kernel_log_file(chosen.log, "k-1", tmp_path) == tmp_path / "mine.jsonl"
    none = load_settings(environ={"COMMROUTER_LOG_KERNEL_FILE": ""})
    assert kernel_log_file(none.log, "k-1", tmp_path) is None
    elsewhere = load_settings(environ={"COMMROUTER_LOG_KERNEL_FILE": "~/logs/{kernel_id}.jsonl"})
    assert kernel_log_file(elsewhere.log, "k-1", None) == Path.home() / "logs" / "k-1.jsonl"
