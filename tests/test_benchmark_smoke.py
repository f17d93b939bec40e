"""A smoke-sized run of the real benchmark (`make bench`'s code, a few dozen values per case):
it runs end to end, writes its JSON, prints its tables, and no value is lost (the client
speaks docs/protocol.md's front-end link: numbered values, batches, acks, numbered pongs). Its
speed is never checked here, nor how many values a batch carried. The ipykernel case is skipped
only when ipykernel is not installed (the test extra installs it)."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks.__main__ import main
from benchmarks.systems import ipykernel_available
from benchmarks.threads import NATIVE, cpu_by_thread, label

pytestmark = pytest.mark.timeout(120)

SCALED = ("commrouter", "ipykernel", "floor") if ipykernel_available() else ("commrouter", "floor")
SYSTEMS = (*SCALED, "minimal")


def test_a_smoke_sized_benchmark_runs_and_loses_nothing(tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = [
        "--systems", ",".join(SYSTEMS),
        "--scale-systems", ",".join(SCALED),
        "--backgrounds", "idle,busy",
        "--repetitions", "1",
        "--warmup", "5",
        "--latency-count", "30",
        "--throughput-count", "40",
        "--window", "8",
        "--batched-window", "8",
        "--scale", "1,50",
        "--scale-windows", "1,10",
        "--scale-count", "30",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(out.read_text())
    printed = capsys.readouterr().out

    runs = data["runs"]
    measured = {(r["system"], r["kind"], r["payload"], r["window"], r["background"]) for r in runs}
    for system in SYSTEMS:
        for payload in ("small", "4KB"):
            for background in ("idle", "busy"):
                assert (system, "latency", payload, 1, background) in measured
                assert (system, "throughput", payload, 8, background) in measured
                assert (system, "batched", payload, 8, background) in measured
    for system in SCALED:
        for window in (1, 10):
            for count in (1, 50):
                assert any(
                    r["system"] == system
                    and r["kind"] == "scale"
                    and r["window"] == window
                    and r["subscriptions"] == count
                    for r in runs
                )
    lost = [
        {k: v for k, v in r.items() if k != "latencies_us"}
        for r in runs
        if r["lost"] or r["unexpected"] or r["received"] != r["count"]
    ]
    assert not lost, f"values lost or unmatched: {lost}"
    assert all(len(r["latencies_us"]) == r["count"] for r in runs)
    assert {m["system"] for m in data["memory"]} == set(SYSTEMS)
    # the kernel's CPU by thread adds up to the process's, give or take the clock ticks that
    # the kernel accounts to each of a dozen threads and to the process separately
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    for r in runs:
        slack = 12 * tick_us / r["received"]
        difference = sum(r["kernel_threads_us"].values()) - r["kernel_cpu_per_msg_us"]
        assert abs(difference) <= slack, (r["system"], r["kind"], r["kernel_threads_us"])
    assert any(r["kernel_threads_us"] for r in runs if r["system"] == "commrouter")
    assert all(m["kernel_rss"] > 0 for m in data["memory"])
    assert data["machine"]["nproc"] >= 1 and data["machine"]["python"]

    batched = [r for r in runs if r["kind"] == "batched" and r["system"] != "ipykernel"]
    assert all(r["values_to_kernel"] == r["count"] for r in batched)
    assert "Comparison" in printed and "Batched" in printed and "Targets" in printed
    assert "one core kept busy" in printed and "by thread" in printed
    assert "kernel_cpu_vs_floor" in printed
    assert "every value came back" in printed
    assert f"raw results: {out}" in printed


def test_cpu_by_thread_adds_ticks_per_named_thread_and_counts_new_threads_from_zero():
    tick = os.sysconf("SC_CLK_TCK")
    before = {"10": (100, 50, 0, 0), "11": (7, 3, 0, 0), "12": (1, 1, 0, 0)}
    after = {
        "10": (100 + tick, 50 + tick, 5, 1),  # 2 s
        "11": (7 + tick // 2, 3, 9, 0),  # 0.5 s
        "12": (1, 1, 0, 0),  # idle: left out
        "13": (tick, 0, 1, 0),  # started in between: 1 s
        "14": (0, tick, 0, 0),  # not named by py-spy: native, 1 s
    }
    names = {
        "10": "ConnectionActor-3 (_actor_loop)",
        "11": "commrouter-link-program-f7cffcd37be8",
        "12": "Router-1",
        "13": "ConnectionActor-9 (_actor_loop)",  # a restarted actor adds to the same label
    }
    assert cpu_by_thread(before, after, names) == {
        "ConnectionActor": 3.0,
        "commrouter-link-program": 0.5,
        NATIVE: 1.0,
    }
    assert label("Thread-7 (run)") == "Thread (run)"
    assert label("commrouter-kernel-io") == "commrouter-kernel-io"
