"""`commrouter logs FILE...`: read, filter, follow, trace and count JSON-lines logs.

    commrouter logs kernel.jsonl                            # an aligned timeline
    commrouter logs a.jsonl b.jsonl --format table          # several logs, merged by time
    commrouter logs k.jsonl --event router.dropped --event heartbeat.   # names or prefixes
    commrouter logs k.jsonl --level warning                 # warning and above
    commrouter logs k.jsonl --address '/slider/*' --program cell-3 --since 2.5 --until 4
    commrouter logs k.jsonl --format json | jq .address     # JSON lines, as in the file
    commrouter logs k.jsonl --follow                        # a live log (Ctrl-C stops)
    commrouter logs k.jsonl --trace /slider/a1              # each value's path, hop by hop
    commrouter logs k.jsonl --stats                         # counts, drops, installs, outages
    commrouter logs k.jsonl --absolute                      # each event's ts, not +seconds

Several files are merged by time: `ts` (wall clock), or `t` where an event has no `ts`; each
file keeps its own order. --since/--until take seconds from the first event of the (merged)
logs, or an ISO 8601 time. Names and addresses ending in '*' (names also in '.') are prefixes.
Malformed lines are skipped and reported on stderr with their file and line. The files are
read in one pass, one line at a time, whatever their size (--format table keeps the rows it
shows, --trace the values it follows).

The reference kernel writes <Jupyter runtime dir>/commrouter-<kernel id>.jsonl (log.file or
COMMROUTER_LOG_FILE choose another place; COMMROUTER_LOG_LEVEL=debug logs every value's path).
See docs/logging.md for the event catalogue.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from commrouter.observability.query import EventLog, Query
from commrouter.observability.reading import (
    LEVEL_ORDER,
    LogEvent,
    Problem,
    event_time,
    first_time,
    follow,
    stream_logs,
)
from commrouter.observability.render import (
    Clock0,
    Table,
    json_line,
    render_stats,
    render_trace,
    timeline_line,
)
from commrouter.observability.stats import summarize
from commrouter.observability.trace import trace

FORMATS = ("timeline", "table", "json")
SHOWN_PROBLEMS = 5

__all__ = ["configure", "kernel_log_dir", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `logs` arguments to `parser`."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("files", nargs="*", metavar="FILE", help="JSON-lines log files")
    pick = parser.add_argument_group("filters (all must hold)")
    pick.add_argument(
        "--event",
        action="append",
        metavar="NAME",
        help="an event name, or a prefix ending in '.' or '*' (repeat: any of them)",
    )
    pick.add_argument(
        "--level", choices=tuple(LEVEL_ORDER), help="this level and above (debug < ... < critical)"
    )
    pick.add_argument(
        "--address",
        action="append",
        metavar="ADDRESS",
        help="an address, or a prefix ending in '*' (repeat: any of them)",
    )
    pick.add_argument("--comm", metavar="ID", help="comm id")
    pick.add_argument("--program", metavar="ID", help="program id")
    pick.add_argument("--msg", metavar="ID", help="message id")
    pick.add_argument("--since", metavar="TIME", help="seconds from the start, or ISO 8601")
    pick.add_argument("--until", metavar="TIME", help="seconds from the start, or ISO 8601")
    show = parser.add_argument_group("output")
    show.add_argument("--format", choices=FORMATS, default="timeline", help="default: timeline")
    show.add_argument(
        "--absolute",
        action="store_true",
        help="show each event's time as written (ts), not seconds from the first one",
    )
    what = show.add_mutually_exclusive_group()
    what.add_argument(
        "--trace",
        metavar="ADDRESS",
        help="each value to or from ADDRESS (or a prefix ending in '*'), hop by hop; "
        "--comm/--program/--msg pick values, --since/--until the time range",
    )
    what.add_argument("--stats", action="store_true", help="counts, outcomes and outage episodes")
    live = parser.add_argument_group("following a live log")
    live.add_argument("--follow", "-f", action="store_true", help="keep reading (Ctrl-C stops)")
    live.add_argument("--poll", type=float, default=0.2, help="seconds between reads (0.2)")
    live.add_argument(
        "--duration", type=float, default=None, help="stop following after this many seconds"
    )


def kernel_log_dir() -> Path | None:
    """Where the reference kernel's logs are by default: Jupyter's runtime dir, if known."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return Path(jupyter_runtime_dir())


class _Usage(Exception):
    """A bad command line (exit status 2)."""


def parse_when(text: str | None) -> tuple[str, float] | None:
    """`--since`/`--until`: ("relative", seconds) or ("absolute", epoch seconds)."""
    if text is None:
        return None
    try:
        return "relative", float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(f"{text!r} is neither seconds nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return "absolute", when.timestamp()


def _bound(when: tuple[str, float] | None, origin: float | None) -> float | None:
    if when is None:
        return None
    kind, value = when
    if kind == "absolute":
        return value
    return None if origin is None else origin + value


def build_query(log: EventLog, args: argparse.Namespace, origin: float | None) -> Query:
    """The filters of the command line as a query over `log` (times relative to `origin`)."""
    query = log.query()
    if args.event:
        query = query.named(*args.event)
    if args.level:
        query = query.at_least(args.level)
    if args.address:
        query = query.address(*args.address)
    for key, value in (("comm_id", args.comm), ("program_id", args.program), ("msg_id", args.msg)):
        if value is not None:
            query = query.where(**{key: value})
    return _timed(query, args, origin)


def _timed(query: Query, args: argparse.Namespace, origin: float | None) -> Query:
    start = _bound(parse_when(args.since), origin)
    end = _bound(parse_when(args.until), origin)
    if start is not None or end is not None:
        query = query.during(start, end)
    return query


class _Printer:
    """Prints events in the chosen format, times relative to the first one printed (or, with
    --absolute, as written). `flush` each line when following a live log."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, rows: list[Any] | None, flush: bool
    ) -> None:
        self.format, self.out, self.flush = args.format, out, flush
        self.clock = Clock0(absolute=args.absolute)
        self.table = Table(self.clock, rows) if self.format == "table" else None
        if self.table is not None:
            print(self.table.header(), file=out)

    def __call__(self, event: Any) -> None:
        if self.format == "json":
            line = json_line(event)
        elif self.table is not None:
            line = self.table.line(event)
        else:
            line = timeline_line(event, self.clock)
        print(line, file=self.out, flush=self.flush)


def _report(problems: list[Problem], err: TextIO) -> None:
    if not problems:
        return
    print(f"commrouter logs: {len(problems)} malformed line(s) skipped", file=err)
    for problem in problems[:SHOWN_PROBLEMS]:
        print(f"  {problem}", file=err)
    if len(problems) > SHOWN_PROBLEMS:
        print(f"  ... and {len(problems) - SHOWN_PROBLEMS} more", file=err)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Do what `args` asks; returns the exit status (2 for a bad command line or a file that
    cannot be read, else 0: malformed lines are reported, never fatal)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if not args.files:
            raise _Usage(_no_files_hint())
        if args.follow and (args.trace or args.stats):
            raise _Usage("--follow shows events as they come; --trace and --stats need a whole log")
        if args.poll <= 0 or (args.duration is not None and args.duration < 0):
            raise _Usage("--poll must be > 0 and --duration >= 0 (seconds)")
        parse_when(args.since)  # a bad time fails before any output
        parse_when(args.until)
        if args.follow:
            return _follow(args, out, err)
        return _once(args, out, err)
    except _Usage as error:
        print(f"commrouter logs: {error}", file=err)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        _silence_stdout()
        return 0
    except OSError as error:
        name = error.filename if error.filename is not None else ""
        print(f"commrouter logs: cannot read {name}: {error.strerror or error}", file=err)
        return 2


def _once(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """One pass over the files, merged by time; nothing but the output is kept."""
    events, files = stream_logs(args.files)
    try:
        status = _answer(args, events, out)
        out.flush()  # here, where a closed pipe is caught, not at exit
        return status
    finally:
        _report([p for f in files for p in f.problems], err)


def _answer(args: argparse.Namespace, events: Iterator[LogEvent], out: TextIO) -> int:
    relative = any(
        when is not None and when[0] == "relative"
        for when in (parse_when(args.since), parse_when(args.until))
    )
    origin = first_time(args.files) if relative or args.trace else None
    if args.trace:
        window = _timed(EventLog(()).query(), args, origin).accepts
        journeys = trace((e for e in events if window(e)), args.trace)
        wanted = {v for v in (args.comm, args.program, args.msg) if v is not None}
        if wanted:
            journeys = [j for j in journeys if wanted <= j.ids()]
        if args.format == "json":
            for journey in journeys:
                print(json.dumps(journey.as_dict(), default=repr), file=out)
        else:
            clock = Clock0(origin, absolute=args.absolute)
            for line in render_trace(journeys, args.trace, clock):
                print(line, file=out)
        return 0
    query = build_query(EventLog(()), args, origin)
    accepts = query.accepts
    if args.stats:
        stats = summarize(events if query.empty else (e for e in events if accepts(e)))
        if args.format == "json":
            print(json.dumps(stats.as_dict(), default=repr), file=out)
        else:
            for line in render_stats(stats, absolute=args.absolute):
                print(line, file=out)
        return 0
    if args.format == "table":  # the columns fit the rows: those shown are kept
        rows = [e for e in events if accepts(e)]
        printer = _Printer(args, out, rows, flush=False)
        for event in rows:
            printer(event)
        return 0
    printer = _Printer(args, out, None, flush=False)
    for event in events:
        if accepts(event):
            printer(event)
    return 0


def _follow(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    printer = _Printer(args, out, None, flush=True)
    problems: list[Problem] = []
    state: dict[str, Any] = {"origin": None, "query": None}

    def on_event(event: LogEvent) -> None:
        if state["query"] is None:
            state["origin"] = event_time(event)
            state["query"] = build_query(EventLog(()), args, state["origin"])
        if state["query"].accepts(event):
            printer(event)

    def on_problem(problem: Problem) -> None:
        problems.append(problem)
        if len(problems) <= SHOWN_PROBLEMS:
            print(f"commrouter logs: malformed line skipped: {problem}", file=err, flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends following, not an error
        follow(args.files, on_event, poll=args.poll, duration=args.duration, on_problem=on_problem)
    if problems:
        print(f"commrouter logs: {len(problems)} malformed line(s) skipped in all", file=err)
    return 0


def _no_files_hint() -> str:
    where = kernel_log_dir()
    text = "name the log files to read (see --help)"
    if where is None:
        return text
    found = sorted(where.glob("commrouter-*.jsonl"), key=_mtime, reverse=True)
    text += f"; the reference kernel writes {where}/commrouter-<kernel id>.jsonl"
    if found:
        text += "; the newest there: " + ", ".join(str(p) for p in found[:3])
    return text


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the exit flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests): nothing to do
        pass


def main(argv: list[str] | None = None) -> int:
    """`python -m commrouter.observability.cli` (the same as `commrouter logs`)."""
    parser = argparse.ArgumentParser(prog="commrouter logs")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
