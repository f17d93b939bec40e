"""Where the commrouter kernel's time goes under load.

`python -m benchmarks.profile` starts the commrouter kernel with the echo program (as the
benchmark does), drives pipelined traffic through it, and meanwhile:

- samples the kernel with py-spy (`--gil`: only the thread holding the GIL, i.e. where the
  Python work is), and summarises the stacks: share per thread, top functions by own time and
  by inclusive time;
- reads every thread's CPU time and context switches from /proc/<pid>/task, per message (this
  includes what py-spy cannot see: system calls, waking threads, waiting for the GIL, and
  zmq's own I/O thread).

Raw stacks go to benchmarks/results/ (py-spy's collapsed format: one stack and a count a line).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import run
from benchmarks.systems import SYSTEMS
from benchmarks.threads import NATIVE, task_counters, thread_names

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(stacks: Path, top: int) -> str:
    per_thread: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"\s*\(\d+\)|-[0-9a-f]{12}$", "", frames[0]).replace("thread :", "")
        per_thread[thread.strip() or "?"] += count
        total += count
        names = [re.sub(r":\d+\)", ")", frame) for frame in frames[1:]]
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        return "no samples (is py-spy allowed to attach? it needs ptrace)"
    lines = [f"{total} samples of the thread holding the GIL", "", "by thread:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in per_thread.most_common()]
    lines += ["", "own time (top):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time (top):"]
    skip = ("Thread.run", "Thread._bootstrap")
    kept = [(k, v) for k, v in inclusive.most_common() if not k.startswith(skip)]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in kept[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--window", type=int, default=32, help="values in flight")
    parser.add_argument("--count", type=int, default=15000, help="values sent while sampling")
    parser.add_argument("--payload", default="small", choices=("small", "4KB"))
    parser.add_argument(
        "--kind",
        default="throughput",
        choices=("throughput", "batched"),
        help="one value per message from the client, or batches (the client's window at once)",
    )
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is not installed: `make bench` installs it (extra 'bench')", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    stacks = RESULTS / f"profile-{stamp}-{args.kind}-w{args.window}.txt"
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        system = SYSTEMS["commrouter"](Path(tmp))
        system.start()
        try:
            system.load(1)
            assert system.pid is not None
            run(system, kind="warmup", payload=args.payload, window=args.window, count=1000)
            names = thread_names(system.pid, py_spy)
            spy = subprocess.Popen(
                [
                    *(py_spy, "record", "--pid", str(system.pid), "--rate", str(args.rate)),
                    *("--gil", "--threads", "--nonblocking", "--format", "raw", "-o", str(stacks)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attaches
            before = task_counters(system.pid)
            measured = run(
                system,
                kind=args.kind,
                payload=args.payload,
                window=args.window,
                count=args.count,
                batched=args.kind == "batched",
            )
            after = task_counters(system.pid)
            spy.send_signal(2)  # py-spy writes its file on SIGINT
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(10)
        finally:
            system.stop()
    n = max(1, measured.received)
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    print(
        f"{measured.received} values, {args.window} in flight ({args.kind}): "
        f"{measured.throughput:.0f} msg/s, {measured.to_page_per_message:.1f} values/msg to the "
        f"page, "
        f"kernel CPU {measured.kernel_cpu_per_msg_us:.0f} us/msg, client CPU "
        f"{1e6 * measured.client_cpu_s / n:.0f} us/msg\n"
    )
    print("kernel threads, per message:  user us   sys us   voluntary  involuntary switches")
    totals = [0.0, 0.0, 0.0, 0.0]
    for tid, counters in sorted(after.items(), key=lambda item: int(item[0])):
        if tid not in before:
            continue
        delta = [a - b for a, b in zip(counters, before[tid], strict=True)]
        if not any(delta):
            continue
        totals = [t + d for t, d in zip(totals, delta, strict=True)]
        name = names.get(tid, NATIVE)
        print(
            f"  {name[:30]:<30} {delta[0] * tick / n:7.1f} {delta[1] * tick / n:8.1f}"
            f" {delta[2] / n:11.2f} {delta[3] / n:12.2f}"
        )
    print(
        f"  {'all':<30} {totals[0] * tick / n:7.1f} {totals[1] * tick / n:8.1f}"
        f" {totals[2] / n:11.2f} {totals[3] / n:12.2f}\n"
    )
    print(summarise(stacks, args.top) if stacks.exists() else "py-spy wrote no profile")
    print(f"\nraw stacks: {stacks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
