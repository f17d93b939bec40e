"""`python -m benchmarks` (what `make bench` runs): measure, print the tables, write the JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import render
from benchmarks.runner import Config, run_benchmark
from benchmarks.systems import SYSTEMS, ipykernel_available

RESULTS = Path(__file__).resolve().parent / "results"


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse(argv: list[str] | None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--systems", default=",".join(defaults.systems))
    parser.add_argument(
        "--backgrounds",
        default=",".join(defaults.backgrounds),
        help="idle, busy (one core spun by another process), or both",
    )
    parser.add_argument("--scale-systems", default=",".join(defaults.scale_systems))
    parser.add_argument(
        "--flow-rate",
        type=int,
        default=defaults.flow_rate,
        help="commrouter's flow.max_messages_per_second (0: its default of 400, which caps "
        "sequential round trips near 400/s; raised by default: no jupyter_server in between)",
    )
    parser.add_argument("--repetitions", type=int, default=defaults.repetitions)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--latency-count", type=int, default=defaults.latency_count)
    parser.add_argument("--throughput-count", type=int, default=defaults.throughput_count)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument(
        "--batched-window",
        type=int,
        default=defaults.batched_window,
        help="values in flight in the batched case (0: skip it)",
    )
    parser.add_argument("--payloads", default=",".join(defaults.payloads))
    parser.add_argument("--scale", default=",".join(map(str, defaults.scale)), help="'' for none")
    parser.add_argument("--scale-windows", default=",".join(map(str, defaults.scale_windows)))
    parser.add_argument("--scale-count", type=int, default=defaults.scale_count)
    parser.add_argument(
        "--quick", action="store_true", help="small counts, one repetition: a minute or so"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--report", type=Path, help="print the tables of a saved JSON and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        print(render(json.loads(args.report.read_text())))
        return 0
    systems = tuple(s for s in args.systems.split(",") if s)
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        print(f"unknown systems {unknown}; choose from {list(SYSTEMS)}", file=sys.stderr)
        return 2
    if "ipykernel" in systems and not ipykernel_available():
        print("ipykernel is not installed: `make bench` installs it", file=sys.stderr)
        return 2
    config = Config(
        systems=systems,
        backgrounds=tuple(b for b in args.backgrounds.split(",") if b),
        scale_systems=tuple(s for s in args.scale_systems.split(",") if s),
        flow_rate=args.flow_rate,
        repetitions=args.repetitions,
        warmup=args.warmup,
        latency_count=args.latency_count,
        throughput_count=args.throughput_count,
        window=args.window,
        batched_window=args.batched_window,
        payloads=tuple(p for p in args.payloads.split(",") if p),
        scale=_counts(args.scale),
        scale_windows=_counts(args.scale_windows),
        scale_count=args.scale_count,
    )
    if args.quick:
        config = dataclasses.replace(
            config,
            repetitions=1,
            warmup=100,
            latency_count=500,
            throughput_count=1500,
            scale=(1, 1_000, 10_000),
            scale_count=800,
        )
    results = run_benchmark(config).to_json()
    out = args.out or RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, separators=(",", ":")) + "\n")
    print()
    print(render(results))
    print(f"\nraw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
