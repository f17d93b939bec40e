"""`commrouter logs` reads in one pass and constant memory: a filter over a generated log of
200,000 lines, `--stats` and `--trace` over 50,000, each peak (tracemalloc) under a bound that
reading the log into memory already exceeds at 20,000 lines; and the streamed answers are the
ones the in-memory `EventLog` gives. Memory is measured, never speed."""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.log_tool import write_log
from commrouter.__main__ import main
from commrouter.observability import EventLog, read_logs, summarize, trace
from commrouter.observability.render import json_line

BOUND = 8_000_000  # bytes: what one pass may hold at its peak, whatever the log's length

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("big-logs")
    large, medium, small = tmp / "200k.jsonl", tmp / "50k.jsonl", tmp / "20k.jsonl"
    counts = write_log(large, 200_000)
    with large.open(encoding="utf-8") as source:
        lines = [next(source) for _ in range(50_000)]
    medium.write_text("".join(lines), encoding="utf-8")
    small.write_text("".join(lines[:20_000]), encoding="utf-8")
    return {"large": large, "medium": medium, "small": small, "counts": counts}


def peak(run: Callable[[], object]) -> int:
    """The most memory Python allocated at once while `run` ran (bytes)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Lines(io.StringIO):
    """stdout that counts the lines written and keeps only the first few (what a pipe into
    `wc -l` holds: nothing the command's own memory should be charged with)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.first: list[str] = []

    def write(self, text: str) -> int:
        self.count += text.count("\n")
        if len(self.first) < 5:
            self.first.append(text)
        return len(text)


def logs_command(*argv: str, out: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = out if out is not None else io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["logs", *argv])
    return status, out.getvalue(), err.getvalue()


def test_reading_the_log_into_memory_exceeds_the_bound(logs):
    """The bound means something: the in-memory path passes it with a tenth of the lines."""
    assert peak(lambda: read_logs([logs["small"]])) > BOUND


def test_a_filter_over_200000_lines_stays_under_the_bound(logs):
    out = Lines()
    result: list[tuple[int, str, str]] = []

    def run() -> None:
        result.append(logs_command(str(logs["large"]), "--event", "router.dropped", out=out))

    used = peak(run)
    status, _, err = result[0]
    assert status == 0 and err == ""
    assert out.count == logs["counts"]["router.dropped"] > 10
    assert used < BOUND, f"peak {used / 1e6:.1f} MB"


@pytest.mark.parametrize("options", [("--stats",), ("--trace", "/nowhere")], ids=["stats", "trace"])
def test_stats_and_trace_stay_under_the_bound(logs, options):
    result: list[tuple[int, str, str]] = []
    used = peak(lambda: result.append(logs_command(str(logs["medium"]), *options)))
    status, out, _ = result[0]
    assert status == 0 and out
    assert used < BOUND, f"peak {used / 1e6:.1f} MB"


def test_the_streamed_answers_are_the_in_memory_ones(logs):
    path = str(logs["small"])
    log = EventLog.read(path)
    _, out, _ = logs_command(path, "--address", "/slider/1", "--format", "json")
    assert out.splitlines() == [json_line(e) for e in log.query().address("/slider/1")]
    _, out, _ = logs_command(path, "--stats", "--format", "json")
    assert json.loads(out) == json.loads(json.dumps(summarize(log).as_dict(), default=repr))
    _, out, _ = logs_command(path, "--trace", "/slider/*", "--format", "json")
    expected = [json.loads(json.dumps(j.as_dict(), default=repr)) for j in trace(log, "/slider/*")]
    assert [json.loads(row) for row in out.splitlines()] == expected
    assert len(expected) > 1000 and all(j["outcome"] == "delivered" for j in expected)


def test_one_pass_over_several_files_keeps_the_merge_rule(tmp_path: Path, logs):
    """Split the log in two by event area: merged back by time, the order is the file's
    where times differ (ties go to the file named first)."""
    source = logs["small"].read_text(encoding="utf-8").splitlines(keepends=True)
    kernel = [row for row in source if '"event":"kernel.' in row]
    rest = [row for row in source if '"event":"kernel.' not in row]
    a, b = tmp_path / "kernel.jsonl", tmp_path / "rest.jsonl"
    a.write_text("".join(kernel), encoding="utf-8")
    b.write_text("".join(rest), encoding="utf-8")
    _, out, _ = logs_command(str(a), str(b), "--format", "json")
    merged = out.splitlines()
    assert sorted(merged) == sorted(row.rstrip("\n") for row in source)
    times = [json.loads(row)["ts"] for row in merged]
    assert times == sorted(times)
    assert [row for row in merged if '"event":"kernel.' in row] == [r.rstrip() for r in kernel]
