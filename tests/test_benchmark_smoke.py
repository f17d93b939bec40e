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
    # the kernel's CPU by thread adds up to the process's, give or take a clock tick a thread
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    for r in runs:
        by_thread = r["kernel_threads_us"]
        slack = (len(by_thread) + 1) * tick_us / r["received"] + 0.2
        assert abs(sum(by_thread.values()) - r["kernel_cpu_per_msg_us"]) <= slack, r["system"]
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
