"""Tables and target verdicts from a run's JSON (works on a saved file too:
`python -m benchmarks --report results/bench-....json`)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

Record = Mapping[str, Any]

METRICS: tuple[tuple[str, str, str], ...] = (
    # (label, run kind, field)
    ("round trip p50 (us)", "latency", "p50_us"),
    ("round trip p99 (us)", "latency", "p99_us"),
    ("throughput (msg/s)", "throughput", "throughput"),
    ("under load p50 (us)", "throughput", "p50_us"),
    ("kernel CPU/msg (us)", "throughput", "kernel_cpu_per_msg_us"),
    ("program CPU/msg (us)", "throughput", "program_cpu_per_msg_us"),
    ("client CPU/msg (us)", "throughput", "client_cpu_per_msg_us"),
)

BATCHED_METRICS: tuple[tuple[str, str, str], ...] = (
    ("throughput (msg/s)", "batched", "throughput"),
    ("under load p50 (us)", "batched", "p50_us"),
    ("values/msg to kernel", "batched", "to_kernel_per_message"),
    ("values/msg to page", "batched", "to_page_per_message"),
    ("kernel CPU/msg (us)", "batched", "kernel_cpu_per_msg_us"),
    ("program CPU/msg (us)", "batched", "program_cpu_per_msg_us"),
    ("client CPU/msg (us)", "batched", "client_cpu_per_msg_us"),
)

TARGETS = {
    "batched_throughput_vs_ipykernel": 10.0,  # at least (issue 11: 32 in flight, batching)
    "throughput_vs_ipykernel": 10.0,  # at least (32 in flight, one value per message)
    "throughput_vs_floor": 0.7,  # at least
    "p50_vs_floor": 1.3,  # at most
    "kernel_cpu_vs_floor": 1.2,  # at most (issue 16: kernel CPU per value)
    "scale_throughput_cost": 0.10,  # at most, 100,000 subscriptions against 1
}
AT_MOST = {"p50_vs_floor", "kernel_cpu_vs_floor", "scale_throughput_cost"}
OTHERS = ("ipykernel", "floor", "minimal")  # what commrouter is compared with, when present
_DEFAULTS = {"background": "idle"}  # fields of runs recorded before they existed


def _runs(data: Record, **match: Any) -> list[Record]:
    return [
        r for r in data["runs"] if all(r.get(k, _DEFAULTS.get(k)) == v for k, v in match.items())
    ]


def _backgrounds(data: Record) -> list[str]:
    return list(data["config"].get("backgrounds", ["idle"]))


def _value(
    data: Record,
    system: str,
    kind: str,
    payload: str,
    key: str,
    rep: int,
    background: str = "idle",
) -> float | None:
    found = _runs(
        data, system=system, kind=kind, payload=payload, repetition=rep, background=background
    )
    return float(found[0][key]) if found and key in found[0] else None


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratios(
    data: Record, payload: str, kind: str, key: str, other: str, background: str = "idle"
) -> list[float]:
    """commrouter / `other` for `key`, one ratio per repetition (same run, same repetition)."""
    out = []
    for rep in range(data["config"]["repetitions"]):
        mine = _value(data, "commrouter", kind, payload, key, rep, background)
        theirs = _value(data, other, kind, payload, key, rep, background)
        if mine is not None and theirs:
            out.append(mine / theirs)
    return out


def _side_by_side(
    data: Record, metrics: tuple[tuple[str, str, str], ...], background: str = "idle"
) -> str:
    systems = data["config"]["systems"]
    others = [s for s in OTHERS if s in systems and "commrouter" in systems]
    reps = data["config"]["repetitions"]
    header = ["payload", "metric", *systems, *(f"cr/{o} per rep" for o in others)]
    rows = []
    for payload in data["config"]["payloads"]:
        for label, kind, key in metrics:
            digits = 1 if key.endswith("_per_message") else 0
            cells = [
                _fmt(
                    _median(
                        _value(data, s, kind, payload, key, r, background) for r in range(reps)
                    ),
                    digits,
                )
                for s in systems
            ]
            ratio_cells = [
                ""
                if digits
                else " ".join(f"{x:.2f}" for x in ratios(data, payload, kind, key, o, background))
                for o in others
            ]
            rows.append([payload, label, *cells, *ratio_cells])
    return _table(header, rows)


def _background_name(background: str) -> str:
    return "idle machine" if background == "idle" else "one core kept busy by another process"


def comparison_table(data: Record, background: str = "idle") -> str:
    reps = data["config"]["repetitions"]
    window = data["config"]["window"]
    title = (
        f"Comparison, {_background_name(background)} (median of {reps} repetitions; one value "
        f"per message; throughput with {window} in flight; ratios commrouter/other for each "
        "repetition)"
    )
    return title + "\n" + _side_by_side(data, METRICS, background)


def batched_table(data: Record, background: str = "idle") -> str:
    """The batched case: throughput and values per comm message each way, side by side."""
    reps = data["config"]["repetitions"]
    window = data["config"].get("batched_window", 0)
    title = (
        f"Batched, {_background_name(background)} (median of {reps} repetitions; {window} in "
        "flight; the client sends what it may send at once as one batch message to commrouter "
        "and the floors, one message per value to ipykernel; values/msg: values per comm "
        "message each way; ratios commrouter/other for each repetition)"
    )
    return title + "\n" + _side_by_side(data, BATCHED_METRICS, background)


def threads_table(data: Record, background: str = "idle") -> str:
    """The kernel's CPU per value by thread (median over repetitions), small payload."""
    config = data["config"]
    payload = "small" if "small" in config["payloads"] else config["payloads"][0]
    kinds = [("latency", "1 in flight"), ("throughput", f"{config['window']} in flight")]
    if config.get("batched_window", 0) > 0:
        kinds.append(("batched", f"batched, {config['batched_window']}"))
    header = ["system", "thread", *(label for _, label in kinds)]
    rows = []
    for system in config["systems"]:
        per_kind = []
        for kind, _ in kinds:
            found = _runs(data, system=system, kind=kind, payload=payload, background=background)
            names: dict[str, list[float]] = {}
            for record in found:
                for name, us in record.get("kernel_threads_us", {}).items():
                    names.setdefault(name, []).append(us)
            per_kind.append(names)
        every = sorted(
            {n for names in per_kind for n in names}, key=lambda n: (n.startswith("native"), n)
        )
        for name in every:
            rows.append(
                [system, name, *(_fmt(_median(names.get(name, [])), 1) for names in per_kind)]
            )
        totals = [
            _fmt(
                _median(
                    r["kernel_cpu_per_msg_us"]
                    for r in _runs(
                        data, system=system, kind=kind, payload=payload, background=background
                    )
                ),
                1,
            )
            for kind, _ in kinds
        ]
        rows.append([system, "(process)", *totals])
    title = (
        f"Kernel CPU per value by thread, us ({payload} payload, {_background_name(background)};"
        " /proc/<pid>/task; names from py-spy, native = zmq's I/O thread; median)"
    )
    return title + "\n" + _table(header, rows)


def scale_rows(data: Record) -> list[dict[str, Any]]:
    out = []
    config = data["config"]
    reps = config["repetitions"]
    for system in config["systems"]:
        for window in config["scale_windows"]:
            base = None
            for count in config["scale"]:
                found = _runs(data, system=system, kind="scale", window=window, subscriptions=count)
                if not found:
                    continue
                p50 = _median(r["p50_us"] for r in found)
                p99 = _median(r["p99_us"] for r in found)
                tput = _median(r["throughput"] for r in found)
                per_rep = {r["repetition"]: r["throughput"] for r in found}
                if base is None:
                    base = per_rep
                rel = [per_rep[k] / base[k] for k in range(reps) if k in per_rep and base.get(k)]
                out.append(
                    {
                        "system": system,
                        "subscriptions": count,
                        "window": window,
                        "p50_us": p50,
                        "p99_us": p99,
                        "throughput": tput,
                        "throughput_vs_first": rel,
                        "lost": sum(r["lost"] for r in found),
                    }
                )
    return out


def scale_table(data: Record) -> str:
    header = ["system", "subscribed", "in flight", "p50 (us)", "p99 (us)", "msg/s", "vs 1 sub"]
    rows = [
        [
            row["system"],
            f"{row['subscriptions']:,}",
            str(row["window"]),
            _fmt(row["p50_us"]),
            _fmt(row["p99_us"]),
            _fmt(row["throughput"]),
            " ".join(f"{x:.2f}" for x in row["throughput_vs_first"]),
        ]
        for row in scale_rows(data)
    ]
    return "Scale (small payload, traffic on /slider/abc123; median, and per repetition)\n" + (
        _table(header, rows)
    )


def memory_table(data: Record) -> str:
    header = ["system", "state", "subscribed", "kernel RSS (MiB)", "program RSS (MiB)"]
    rows = [
        [
            m["system"],
            m["state"],
            f"{m['subscriptions']:,}",
            f"{m['kernel_rss'] / 2**20:.1f}",
            f"{m['program_rss'] / 2**20:.1f}" if m["program_rss"] else "-",
        ]
        for m in data["memory"]
    ]
    loads = {(x["system"], x["subscriptions"]): x["seconds"] for x in data.get("loads", [])}
    for row in rows:
        seconds = loads.get((row[0], int(row[2].replace(",", ""))))
        row.append(f"{seconds:.2f}" if seconds is not None and row[1] == "subscribed" else "")
    header.append("ready in (s)")
    return "Memory (RSS of the kernel process; the echo program is a separate process)\n" + (
        _table(header, rows)
    )


def targets(data: Record) -> list[dict[str, Any]]:
    """Each target, per payload: the per-repetition ratios, their median, met or missed."""
    systems = data["config"]["systems"]
    verdicts = []

    def add(name: str, payload: str, values: list[float]) -> None:
        median = _median(values)
        limit = TARGETS[name]
        verdicts.append(
            {
                "target": name,
                "payload": payload,
                "limit": TARGETS[name],
                "per_repetition": [round(v, 3) for v in values],
                "median": None if median is None else round(median, 3),
                "met": None
                if median is None
                else (median <= limit if name in AT_MOST else median >= limit),
            }
        )

    if "commrouter" not in systems:
        return verdicts
    batched = data["config"].get("batched_window", 0) > 0
    window = data["config"]["window"]
    for background in _backgrounds(data):
        for payload in data["config"]["payloads"]:
            case = f"{payload}, {background}"

            def cr_over(other: str, kind: str, key: str) -> list[float]:
                return ratios(data, payload, kind, key, other, background)  # noqa: B023

            if "ipykernel" in systems:
                values = cr_over("ipykernel", "throughput", "throughput")
                add("throughput_vs_ipykernel", f"{case}, 1/msg", values)
                if batched:
                    values = cr_over("ipykernel", "batched", "throughput")
                    add("batched_throughput_vs_ipykernel", f"{case}, batched", values)
            if "floor" in systems:
                add("throughput_vs_floor", case, cr_over("floor", "throughput", "throughput"))
                add("p50_vs_floor", case, cr_over("floor", "latency", "p50_us"))
                key = "kernel_cpu_per_msg_us"
                add("kernel_cpu_vs_floor", f"{case}, 1 in flight", cr_over("floor", "latency", key))
                add(
                    "kernel_cpu_vs_floor",
                    f"{case}, {window} in flight",
                    cr_over("floor", "throughput", key),
                )
    scale = data["config"]["scale"]
    if len(scale) > 1:
        for row in scale_rows(data):
            if row["system"] == "commrouter" and row["subscriptions"] == max(scale):
                cost = [1 - x for x in row["throughput_vs_first"]]
                add(
                    "scale_throughput_cost",
                    f"{row['subscriptions']:,} subs, {row['window']} in flight",
                    cost,
                )
    return verdicts


def targets_table(data: Record) -> str:
    header = ["target", "case", "limit", "per repetition", "median", "verdict"]
    rows = []
    for v in targets(data):
        verdict = "-" if v["met"] is None else ("met" if v["met"] else "MISSED")
        rows.append(
            [
                v["target"],
                v["payload"],
                str(v["limit"]),
                " ".join(f"{x:.2f}" for x in v["per_repetition"]),
                "-" if v["median"] is None else f"{v['median']:.2f}",
                verdict,
            ]
        )
    return "Targets (ratios commrouter/other; scale: throughput lost against 1 subscription)\n" + (
        _table(header, rows)
    )


def losses(data: Record) -> int:
    return sum(r["lost"] + r.get("unexpected", 0) for r in data["runs"])


def resends(data: Record) -> str:
    """What the client saw of the kernel's resends (values received twice, gaps)."""
    duplicates = sum(r.get("duplicates", 0) for r in data["runs"])
    gaps = sum(r.get("gaps", 0) for r in data["runs"])
    if not duplicates and not gaps:
        return "no value received twice, no gap in the numbering"
    return f"values received twice (resent): {duplicates}; messages after a gap: {gaps}"


def machine_line(data: Record) -> str:
    m = data["machine"]
    return (
        f"machine: {m['nproc']} cores ({m['cpu_model']}), Python {m['python']}, "
        f"load average at start {' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}"
        + (
            f", at end {' '.join(f'{x:.2f}' for x in m['loadavg_at_end'])}"
            if "loadavg_at_end" in m
            else ""
        )
        + (
            f"; commrouter's flow.max_messages_per_second raised to {data['config']['flow_rate']:,}"
            " for this run (no jupyter_server in between; its default, 400, caps sequential"
            " round trips near 400/s)"
            if data["config"].get("flow_rate")
            else ""
        )
    )


def render(data: Record) -> str:
    parts = [machine_line(data)]
    for background in _backgrounds(data):
        parts.append(comparison_table(data, background))
        if data["config"].get("batched_window", 0) > 0:
            parts.append(batched_table(data, background))
    parts.append(threads_table(data))
    if data["config"]["scale"]:
        parts.append(scale_table(data))
    parts += [memory_table(data), targets_table(data)]
    lost = losses(data)
    parts.append(
        ("every value came back" if not lost else f"LOST or unexpected values: {lost} (see runs)")
        + "; "
        + resends(data)
    )
    return "\n\n".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = []
        for index, (cell, width) in enumerate(zip(row, widths, strict=True)):
            text = str(cell)
            cells.append(text.ljust(width) if index < 2 else text.rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)
