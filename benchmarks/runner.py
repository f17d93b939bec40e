"""The whole benchmark in one run: start the systems, interleave the cases, repeat each, and
collect everything (raw runs, memory, machine) into one JSON-ready dict.

Order of a run:
1. start every system (kernel process up, comm open and acknowledged); RSS at rest;
2. the echo with 1 subscribed address everywhere;
3. comparison: for each repetition, for each background (idle; busy: another process spins on
   one core for the whole block, started and stopped here), for each payload, each system in
   turn (the order rotates with the repetition): warm-up, sequential round trips (latency),
   pipelined (throughput), pipelined with the client's values batched (batched:
   `batched_window` in flight);
4. scale (idle; `scale_systems`): one more kernel of each system per subscription count above
   1, its echo loaded with that many addresses (RSS then); then for each repetition, each
   system and each count in turn (orders rotate): 1 and then 10 in flight.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.measure import PAYLOADS, Run, run
from benchmarks.systems import FLOW_RATE, SYSTEMS, System, rss_bytes

Say = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """What to run. The defaults are `make bench`; the smoke test shrinks the counts."""

    systems: tuple[str, ...] = ("commrouter", "ipykernel", "floor", "minimal")
    backgrounds: tuple[str, ...] = ("idle", "busy")  # busy: one core spun by another process
    repetitions: int = 3  # x 2 backgrounds x 4 systems: about 10 minutes in all
    warmup: int = 300
    latency_count: int = 2000  # sequential round trips per latency run
    throughput_count: int = 6000  # values per pipelined run
    window: int = 32  # values in flight in the throughput runs
    batched_window: int = 32  # values in flight in the batched runs (0: none)
    payloads: tuple[str, ...] = ("small", "4KB")
    scale: tuple[int, ...] = (1, 1_000, 100_000)  # subscribed addresses
    scale_systems: tuple[str, ...] = ("commrouter", "ipykernel", "floor")
    scale_windows: tuple[int, ...] = (1, 10)  # values in flight on the address
    scale_count: int = 3000
    stall: float = 10.0  # a run gives up when nothing came back for this long (loss)
    timeout: float = 60.0  # bound on starting a system, opening its comm, ending a cell
    load_timeout: float = 600.0  # bound on subscribing the largest count
    flow_rate: int = FLOW_RATE  # commrouter's flow.max_messages_per_second (0: its default)


@dataclass
class Results:
    """Everything one run measured; `to_json()` is what is written to the results file."""

    config: Config
    machine: dict[str, Any]
    started: str
    runs: list[Run] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    loads: list[dict[str, Any]] = field(default_factory=list)
    finished: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "finished": self.finished,
            "machine": self.machine,
            "config": asdict(self.config),
            "memory": self.memory,
            "loads": self.loads,
            "runs": [r.raw() for r in self.runs],
        }


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: cores, CPU model, Python, library versions, load."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    packages = ("commrouter", "pykka", "pyzmq", "structlog", "ipykernel", "comm", "jupyter_client")
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    mem_total = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": mem_total,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_at_start": os.getloadavg(),
    }


@contextlib.contextmanager
def started(
    names: Sequence[str], workdir: Path, config: Config, say: Say, label: str = ""
) -> Iterator[list[System]]:
    """Start one system of each name (stopped, bounded, on the way out)."""
    systems: list[System] = []
    try:
        for name in names:
            system = SYSTEMS[name](
                workdir, timeout=config.timeout, label=label, flow_rate=config.flow_rate
            )
            systems.append(system)
            began = time.perf_counter()
            system.start()
            say(f"  {system.name}{label}: started, comm open ({time.perf_counter() - began:.2f} s)")
        yield systems
    finally:
        for system in systems:
            system.stop()


def rotated(items: Sequence[Any], repetition: int) -> list[Any]:
    """`items` starting at a different one each repetition, so that no case always runs first."""
    shift = repetition % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def background(kind: str) -> Iterator[None]:
    """`busy`: a separate process spins on one core while the block runs (a busy laptop)."""
    if kind == "idle":
        yield
        return
    if kind != "busy":
        raise ValueError(f"unknown background {kind!r}")
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        spinner.terminate()
        spinner.join(10)


def run_benchmark(config: Config, workdir: Path | None = None, say: Say = print) -> Results:
    """Run everything `config` asks for; every wait is bounded (see `Config`)."""
    results = Results(config, machine_info(), datetime.now(UTC).isoformat(timespec="seconds"))
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        say(f"starting {', '.join(config.systems)}")
        systems = stack.enter_context(started(config.systems, workdir, config, say))
        for system in systems:
            results.memory.append(_memory(system, "rest"))
        _load_all(systems, 1, config, results, say)
        _comparison(systems, config, results, say)
        # Scale: one kernel per subscription count (1 reuses the kernels above), so the counts
        # are interleaved within each repetition, under the same machine noise.
        scaled = [s for s in config.scale_systems if s in config.systems]
        by_count: dict[int, list[System]] = {}
        for count in config.scale:
            if count == 1:
                by_count[count] = [s for s in systems if s.name in scaled]
                continue
            say(f"starting {', '.join(scaled)} for {count:,} subscriptions")
            label = f"-{count}"
            by_count[count] = stack.enter_context(started(scaled, workdir, config, say, label))
            _load_all(by_count[count], count, config, results, say)
        _scale(by_count, config, results, say)
    results.machine["loadavg_at_end"] = os.getloadavg()
    results.finished = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def _comparison(systems: list[System], config: Config, results: Results, say: Say) -> None:
    for repetition in range(config.repetitions):
        for kind in rotated(config.backgrounds, repetition):
            say(f"comparison, repetition {repetition + 1}/{config.repetitions}, {kind}")
            with background(kind):
                _comparison_block(systems, config, results, say, repetition, kind)


def _comparison_block(
    systems: list[System], config: Config, results: Results, say: Say, repetition: int, kind: str
) -> None:
    for payload in config.payloads:
        for system in rotated(systems, repetition):
            run(system, kind="warmup", payload=payload, window=1, count=config.warmup)
            measure = partial(
                run, system, payload=payload, repetition=repetition, stall=config.stall,
                background=kind,
            )  # fmt: skip
            latency = measure(kind="latency", window=1, count=config.latency_count)
            throughput = measure(
                kind="throughput", window=config.window, count=config.throughput_count
            )
            results.runs += [latency, throughput]
            measured = [latency, throughput]
            batched = ""
            if config.batched_window > 0:
                run(
                    system,
                    kind="warmup",
                    payload=payload,
                    window=config.batched_window,
                    count=config.warmup,
                    batched=True,
                )
                batch = measure(
                    kind="batched",
                    window=config.batched_window,
                    count=config.throughput_count,
                    batched=True,
                )
                results.runs.append(batch)
                measured.append(batch)
                batched = (
                    f"  batched {batch.throughput:8.0f} msg/s"
                    f" ({batch.to_kernel_per_message:.1f}/{batch.to_page_per_message:.1f}"
                    " per msg)"
                )
            say(
                f"  {system.name:<10} {payload:<5} p50 {latency.percentile(50):8.0f} us"
                f"  p99 {latency.percentile(99):8.0f} us"
                f"  {throughput.throughput:8.0f} msg/s"
                f"  kernel {throughput.kernel_cpu_per_msg_us:6.0f} us CPU/msg"
                + batched
                + _lost(*measured)
            )


def _scale(by_count: dict[int, list[System]], config: Config, results: Results, say: Say) -> None:
    counts = list(by_count)
    if not counts:
        return
    for repetition in range(config.repetitions):
        say(f"scale, repetition {repetition + 1}/{config.repetitions}")
        for index in rotated(range(len(by_count[counts[0]])), repetition):
            for count in rotated(counts, repetition):
                system = by_count[count][index]
                for window in config.scale_windows:
                    run(system, kind="warmup", payload="small", window=window, count=200)
                    measured = run(
                        system,
                        kind="scale",
                        payload="small",
                        window=window,
                        count=config.scale_count,
                        repetition=repetition,
                        stall=config.stall,
                    )
                    results.runs.append(measured)
                    say(
                        f"  {system.name:<10} {count:>7} subs  {window:>2} in flight"
                        f"  p50 {measured.percentile(50):8.0f} us"
                        f"  p99 {measured.percentile(99):8.0f} us"
                        f"  {measured.throughput:8.0f} msg/s" + _lost(measured)
                    )


def _load_all(
    systems: list[System], count: int, config: Config, results: Results, say: Say
) -> None:
    say(f"echo with {count:,} subscribed address{'es' if count != 1 else ''}")
    for system in systems:
        seconds = system.load(count, config.load_timeout)
        results.loads.append({"system": system.name, "subscriptions": count, "seconds": seconds})
        memory = _memory(system, "subscribed")
        results.memory.append(memory)
        say(
            f"  {system.name:<10} ready in {seconds:6.2f} s; kernel RSS "
            f"{memory['kernel_rss'] / 2**20:6.1f} MiB"
        )


def _memory(system: System, state: str) -> dict[str, Any]:
    return {
        "system": system.name,
        "state": state,
        "subscriptions": system.subscriptions if state != "rest" else 0,
        "kernel_rss": rss_bytes(system.pid),
        "program_rss": rss_bytes(system.program_pid),
    }


def _lost(*runs: Run) -> str:
    lost = sum(r.lost for r in runs)
    unexpected = sum(r.unexpected for r in runs)
    return (f"  LOST {lost}" if lost else "") + (f"  UNEXPECTED {unexpected}" if unexpected else "")


__all__ = ["PAYLOADS", "Config", "Results", "run_benchmark"]
