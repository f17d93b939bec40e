"""A kernel's CPU time by thread, from /proc/<pid>/task, and the threads' Python names.

Python does not name its OS threads, so /proc only says `python` for each of them; py-spy
(in the bench extra) reads the Python names (`py-spy dump`). Threads py-spy does not list are
native: zmq's I/O thread, for every system here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

NATIVE = "native (zmq I/O)"


def py_spy() -> str | None:
    """The py-spy executable, if installed."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def thread_names(pid: int, executable: str | None = None) -> dict[str, str]:
    """OS thread id -> Python thread name, from `py-spy dump` ({} without py-spy)."""
    executable = executable or py_spy()
    if executable is None:
        return {}
    try:
        dump = subprocess.run(
            [executable, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names = {}
    for line in dump.splitlines():
        match = re.match(r'Thread (0x[0-9a-fA-F]+|\d+) .*?"(.*)"', line)
        if match:
            tid = match.group(1)
            names[str(int(tid, 16)) if tid.startswith("0x") else tid] = match.group(2)
    return names


def label(name: str) -> str:
    """A thread's name without the numbers that differ between runs: `ConnectionActor-3
    (_actor_loop)` -> `ConnectionActor`, `Thread-7 (run)` -> `Thread (run)`."""
    if name.startswith("Thread-"):
        return re.sub(r"^Thread-\d+", "Thread", name)
    name = re.sub(r"-[0-9a-f]{8,}$", "", name)  # a program's id: commrouter-link-program-<id>
    return re.sub(r"-\d+$", "", re.sub(r"\s*\(.*\)$", "", name)) or name


def task_counters(pid: int | None) -> dict[str, tuple[int, int, int, int]]:
    """Per thread id: user ticks, system ticks, voluntary and involuntary context switches."""
    out: dict[str, tuple[int, int, int, int]] = {}
    if pid is None:
        return out
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        switches = dict(
            line.split(":", 1) for line in status.splitlines() if "ctxt_switches" in line
        )
        out[tid] = (
            int(fields[11]),
            int(fields[12]),
            int(switches["voluntary_ctxt_switches"]),
            int(switches["nonvoluntary_ctxt_switches"]),
        )
    return out


def cpu_by_thread(
    before: dict[str, tuple[int, ...]],
    after: dict[str, tuple[int, ...]],
    names: dict[str, str],
) -> dict[str, float]:
    """CPU seconds (user + system) spent between two readings, by thread label (threads of
    one label added up; a thread that started in between counts from zero)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid, counters in after.items():
        start = before.get(tid, (0, 0, 0, 0))
        spent = (counters[0] - start[0] + counters[1] - start[1]) / tick
        if spent <= 0:
            continue
        name = label(names[tid]) if tid in names else NATIVE
        out[name] = out.get(name, 0.0) + spent
    return out
