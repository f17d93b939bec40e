"""The log tool on a large log: `commrouter logs` (a filter, --stats, --trace) against jq.

    .venv/bin/python -m benchmarks.log_tool                  # 1,000,000 lines in a temp dir
    .venv/bin/python -m benchmarks.log_tool --lines 200000 --keep /tmp/big.jsonl

`write_log` writes a debug-level kernel log of `lines` lines as the router writes it (values
both ways hop by hop, heartbeats, now and then a value nobody subscribed to, and outages: the
link goes stale, values for the page are dropped, the page opens a new comm). Each command
runs in its own process under `/usr/bin/time`, which gives its wall time and peak RSS; the load
average is printed before and after. It measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["write_log"]

_START = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=datetime.UTC)


def write_log(path: str | os.PathLike[str], lines: int, seed: int = 0) -> dict[str, int]:
    """Write `lines` JSON lines to `path`; returns how many of some events were written."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    written = 0
    t = 1000.0
    comm = 0
    number = 0
    with open(path, "w", encoding="utf-8") as out:

        def emit(event: str, level: str, actor: str, **fields: object) -> None:
            nonlocal written
            if written >= lines:
                return
            ts = (_START + datetime.timedelta(seconds=t - 1000.0)).isoformat()
            record = {
                "event": event,
                "level": level,
                "t": round(t, 6),
                "ts": ts.replace("+00:00", "Z"),
                "actor": actor,
                "comm_id": fields.pop("comm_id", None),
                "address": fields.pop("address", None),
                "program_id": fields.pop("program_id", None),
                "msg_id": fields.pop("msg_id", None),
                **fields,
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            counts[event] = counts.get(event, 0) + 1
            written += 1

        while written < lines:
            comm_id = f"comm-{comm:04d}"
            program = "cell-1"
            number += 1
            t += rng.uniform(0.0005, 0.002)
            if number % 5000 == 0:  # an outage: stale, values dropped, a new comm
                emit(
                    "connection.stale",
                    "warning",
                    "connection",
                    comm_id=comm_id,
                    silent_for=6.0,
                    reason="no pong in time",
                )
                for index in range(3):
                    t += 0.5
                    emit(
                        "connection.values_dropped",
                        "warning",
                        "connection",
                        address=f"/slider/{index}",
                        program_id=program,
                        count=index + 1,
                        reason="more than 100 values waiting",
                    )
                emit(
                    "router.dropped",
                    "info",
                    "router",
                    comm_id=comm_id,
                    address="/old",
                    msg_id=f"m-{number}-old",
                    reason="no subscriber",
                    value=number,
                )
                comm += 1
                t += 2.0
                emit(
                    "connection.opened",
                    "info",
                    "connection",
                    comm_id=f"comm-{comm:04d}",
                    msg_id=f"m-{number}-open",
                    next_seq=number,
                )
                continue
            address = f"/slider/{number % 7}"
            msg_id = f"m-{number}"
            if number % 997 == 0:
                emit("kernel.comm_msg", "debug", "kernel", comm_id=comm_id, msg_id=msg_id)
                emit(
                    "connection.received",
                    "debug",
                    "connection",
                    comm_id=comm_id,
                    address="/nowhere",
                    msg_id=msg_id,
                    value=number,
                )
                emit(
                    "router.dropped",
                    "info",
                    "router",
                    comm_id=comm_id,
                    address="/nowhere",
                    msg_id=msg_id,
                    reason="no subscriber",
                    value=number,
                )
                continue
            if number % 300 == 0:
                emit(
                    "heartbeat.ping_sent",
                    "info",
                    "heartbeat",
                    comm_id=comm_id,
                    ping=number,
                    timeout=5.0,
                )
                emit(
                    "heartbeat.pong_received",
                    "info",
                    "heartbeat",
                    comm_id=comm_id,
                    msg_id=f"p-{number}",
                    ping=number,
                    rtt=round(rng.uniform(0.001, 0.01), 6),
                )
            emit("kernel.comm_msg", "debug", "kernel", comm_id=comm_id, msg_id=msg_id)
            emit(
                "connection.received",
                "debug",
                "connection",
                comm_id=comm_id,
                address=address,
                msg_id=msg_id,
                value=rng.random(),
            )
            emit(
                "router.delivered",
                "debug",
                "router",
                address=address,
                msg_id=msg_id,
                to=["program_executor"],
            )
            emit(
                "program.delivered",
                "debug",
                "program_executor",
                address=address,
                msg_id=msg_id,
                program_id=program,
            )
            out_address = address.replace("/slider/", "/label/")
            emit(
                "program.send_accepted",
                "debug",
                "program_executor",
                address=out_address,
                program_id=program,
                value=number,
            )
            emit(
                "connection.sent",
                "debug",
                "connection",
                address=out_address,
                comm_id=comm_id,
                program_id=program,
                seq=number,
            )
    return counts


def _timed(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MB and stdout of a command, run under /usr/bin/time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    seconds, kilobytes = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kilobytes) // 1024, done.stdout


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.log_tool", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="PATH", help="write the log here and keep it")
    parser.add_argument("--repetitions", type=int, default=2, help="best of N (2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "big.jsonl")
        if not path.exists():
            write_log(path, args.lines)
        size = path.stat().st_size
        print(f"{path}: {args.lines} lines, {size / 1e6:.0f} MB; load average {_load()}")
        logs = [sys.executable, "-m", "commrouter", "logs", str(path)]
        cases = {
            "jq filter (select .event == router.dropped)": [
                "jq",
                "-c",
                'select(.event == "router.dropped")',
                str(path),
            ],
            "logs --event router.dropped --format json": [
                *logs,
                "--event",
                "router.dropped",
                "--format",
                "json",
            ],
            "logs --address /nowhere --format json": [
                *logs,
                "--address",
                "/nowhere",
                "--format",
                "json",
            ],
            "logs --stats": [*logs, "--stats"],
            "logs --trace /nowhere": [*logs, "--trace", "/nowhere"],
        }
        for name, command in cases.items():
            runs = [_timed(command) for _ in range(args.repetitions)]
            seconds = min(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            lines = runs[0][2].count("\n")
            print(f"  {name:<46} {seconds:6.2f} s  {peak:5d} MB  ({lines} lines out)")
        print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
