"""Reading logs: malformed and truncated lines, several files merged by time, following a file
that grows, and the query API's filters."""

from __future__ import annotations

import json
from pathlib import Path

from commrouter.__main__ import main
from commrouter.observability import EventLog, LogFile, event_time, follow, merge, read_logs


def line(event: str, **fields: object) -> str:
    return json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"


def write(path: Path, *lines: str | bytes) -> Path:
    with path.open("ab") as out:
        for item in lines:
            out.write(item if isinstance(item, bytes) else item.encode())
    return path


def test_malformed_and_truncated_lines_are_counted_never_fatal(tmp_path, capsys):
    path = write(
        tmp_path / "broken.jsonl",
        line("a.one", t=1.0),
        '{"event":"a.two","t":2\n',  # not JSON
        "\n",  # blank: not an event, not a problem
        "[1, 2]\n",  # not an object
        '{"t": 3}\n',  # no event name
        b'{"event":"a.\xff"}\n',  # not UTF-8
        line("a.three", t=4.0),
        '{"event":"a.four","t":5.0,"addr',  # the writer died mid-line
    )
    events, problems = read_logs([path])
    assert [e["event"] for e in events] == ["a.one", "a.three"]
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (2, "not JSON"),
        (4, "not a JSON object"),
        (5, "no event name"),
        (6, "not UTF-8 (invalid start byte)"),
        (8, "cut short (no newline at the end of the file)"),
    ]
    assert events[1].source == str(path) and events[1].line == 7  # type: ignore[attr-defined]

    status = main(["logs", str(path)])
    out, err = capsys.readouterr()
    assert status == 0
    assert [row.split()[2] for row in out.splitlines()] == ["-", "-"]  # no actor
    assert [row.split()[3] for row in out.splitlines()] == ["a.one", "a.three"]
    assert "5 malformed line(s) skipped" in err
    assert f"{path}:2: not JSON" in err and f"{path}:8: cut short" in err
    assert err.count(str(path)) == 5  # the first five, each with file:line


def test_a_complete_last_line_without_newline_is_read(tmp_path):
    path = write(tmp_path / "x.jsonl", line("a.one"), '{"event":"a.two"}')
    events, problems = read_logs([path])
    assert [e["event"] for e in events] == ["a.one", "a.two"] and not problems


def test_a_missing_file_is_an_error_with_status_2(tmp_path, capsys):
    assert main(["logs", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["logs"]) == 2
    assert "name the log files" in capsys.readouterr().err
    assert main(["logs", str(write(tmp_path / "a.jsonl", line("a.b"))), "--since", "soon"]) == 2
    assert "neither seconds nor an ISO 8601 time" in capsys.readouterr().err


def test_several_files_merge_by_ts_keeping_each_files_order(tmp_path, capsys):
    a = write(
        tmp_path / "a.jsonl",
        line("a.first", ts="2026-03-01T10:00:00.000100Z", t=5.0),
        line("a.untimed"),  # no time: stays after a.first
        line("a.second", ts="2026-03-01T10:00:00.000300+00:00", t=1.0),
        line("a.early", ts="2026-03-01T09:00:00Z"),  # out of order in its file: kept in place
    )
    b = write(
        tmp_path / "b.jsonl",
        line("b.first", ts="2026-03-01T10:00:00.000200Z"),
        line("b.tie", ts="2026-03-01T10:00:00.000300Z"),  # ties: the file named first wins
    )
    events, _ = read_logs([a, b])
    assert [e["event"] for e in events] == [
        "a.first",
        "a.untimed",
        "b.first",
        "a.second",
        "a.early",
        "b.tie",
    ]
    main(["logs", str(b), str(a), "--format", "json"])
    order = [json.loads(row)["event"] for row in capsys.readouterr().out.splitlines()]
    assert order[:3] == ["a.first", "a.untimed", "b.first"]
    assert order.index("b.tie") < order.index("a.second")  # b named first now


def test_without_ts_the_clock_t_is_the_time(tmp_path):
    a = write(tmp_path / "a.jsonl", line("a.one", t=0.5), line("a.two", t=2.0))
    b = write(tmp_path / "b.jsonl", line("b.one", t=1.0, ts="not a time"), line("b.two", t=3.0))
    log = EventLog.read(a, b)
    assert [e["event"] for e in log] == ["a.one", "b.one", "a.two", "b.two"]
    assert event_time(log[1]) == 1.0
    assert list(merge([[{"event": "x", "t": 2}], [{"event": "y", "t": 1}]])) == [
        {"event": "y", "t": 1},
        {"event": "x", "t": 2},
    ]


def test_follow_reads_what_is_appended_and_holds_partial_lines(tmp_path):
    path = tmp_path / "live.jsonl"  # does not exist yet: waited for
    seen: list[str] = []
    problems: list[str] = []
    # each poll's "sleep" is the writer's next move: no real time passes, nothing races
    moves = [
        lambda: write(path, line("a.one", t=1.0), '{"event":"a.tw'),
        lambda: write(path, 'o","t":2.0}\n', "garbage\n"),
        lambda: path.write_text(line("b.again", t=0.1)),  # replaced by a shorter file
        lambda: write(path, line("b.more", t=0.2), '{"event":"b.cut'),
    ]

    def sleep(seconds: float) -> None:
        assert seconds <= 0.05
        if moves:
            moves.pop(0)()

    files = follow(
        [path],
        lambda e: seen.append(e["event"]),
        stop=lambda: not moves and "b.more" in seen,
        poll=0.05,
        on_problem=lambda p: problems.append(p.reason),
        sleep=sleep,
    )
    assert seen == ["a.one", "a.two", "b.again", "b.more"]
    assert problems[0].startswith("not JSON")
    assert problems[1].startswith("cut short")  # read as final when following stopped
    assert files[0].restarts == 1


def test_follow_from_the_command_line_is_bounded(tmp_path, capsys):
    path = write(tmp_path / "k.jsonl", line("a.one", t=1.0, level="info", actor="x"))
    status = main(["logs", str(path), "--follow", "--duration", "0.2", "--poll", "0.05"])
    out = capsys.readouterr().out
    assert status == 0 and "a.one" in out
    assert main(["logs", str(path), "--follow", "--stats"]) == 2


def test_log_file_reads_incrementally(tmp_path):
    path = write(tmp_path / "x.jsonl", line("a.one"))
    reader = LogFile(path)
    assert [e["event"] for e in reader.read()] == ["a.one"]
    assert reader.read() == []
    write(path, line("a.two"))
    assert [e["event"] for e in reader.read()] == ["a.two"]
    assert reader.lines == 2 and reader.events == 2


def test_query_filters():
    log = EventLog(
        [
            {"event": "heartbeat.ping_sent", "level": "info", "t": 1.0, "address": None},
            {"event": "heartbeat.timeout", "level": "warning", "t": 1.5},
            {"event": "router.dropped", "level": "info", "t": 2.0, "address": "/slider/a"},
            {"event": "router.delivered", "level": "debug", "t": 2.5, "address": "/slider"},
            {"event": "supervisor.gave_up", "level": "critical", "t": 3.0},
            {"event": "odd.level", "level": "chatty", "t": 3.5},
        ]
    )
    assert log.query("heartbeat.").count() == 2
    assert log.query("heartbeat*").count() == 2 and log.query("heart").count() == 0
    assert log.query().named("router.dropped", "supervisor.").count() == 2
    assert log.query().at_least("warning").values("event") == [
        "heartbeat.timeout",
        "supervisor.gave_up",
    ]
    assert log.query().at_least("info").count() == 5  # an unknown level counts as info
    assert log.query().address("/slider/*").values("event") == ["router.dropped"]
    assert log.query().address("/slider").values("event") == ["router.delivered"]
    assert log.query().during(1.5, 2.5).count() == 3
    assert log.query().during(end=1.2).count() == 1
    dropped = log.query("router.dropped").first()
    assert log.query().after(dropped).count() == 3 and log.query().before(dropped).count() == 2
    assert log.query().where(lambda e: e["t"] > 3).accepts(log[5])
