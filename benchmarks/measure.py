"""One measured run: values sent to one address with a bounded number in flight, every echo
matched to its send (first in, first out: each system keeps the order of one address).

With one in flight this is a sequence of round trips (latency); with more it is pipelined
throughput. A batched run sends the values it may send at once (the window's free room) as one
batch message, to a kernel that accepts batches. Every run also records the CPU time the kernel
process (and the echo program, and the client) spent during it, from /proc, the kernel's CPU
time by thread (/proc/<pid>/task), whether every value came back, and how many comm messages
carried how many values each way (the batching factor).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.client import FrontEnd
from benchmarks.systems import System, cpu_seconds
from benchmarks.threads import cpu_by_thread, task_counters

SMALL = 0.5
LARGE = "x" * 4096
PAYLOADS: dict[str, Any] = {"small": SMALL, "4KB": LARGE}


@dataclass
class Run:
    """What one run measured. Latencies are in microseconds, send to decoded echo."""

    system: str
    kind: str  # "latency", "throughput", "batched" or "scale"
    payload: str
    window: int  # values in flight (on one address)
    subscriptions: int
    repetition: int
    count: int
    received: int
    elapsed_s: float
    kernel_cpu_s: float
    program_cpu_s: float
    client_cpu_s: float
    iopub_decoded: int
    unexpected: int  # echoes that matched no send (should stay 0)
    latencies_us: list[float] = field(repr=False)
    # Value traffic on the comm (private addresses such as #ack and pings excluded).
    messages_to_kernel: int = 0
    values_to_kernel: int = 0
    messages_to_page: int = 0
    values_to_page: int = 0  # duplicates (values sent again) included
    duplicates: int = 0  # numbered values received twice, ignored
    gaps: int = 0  # numbered messages that skipped a number
    acks: int = 0  # #ack messages the client sent
    background: str = "idle"  # "idle", or "busy": one core kept busy by another process
    kernel_threads: dict[str, float] = field(default_factory=dict)  # CPU seconds by thread

    @property
    def lost(self) -> int:
        return self.count - self.received

    @property
    def throughput(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_us, q)

    @property
    def to_kernel_per_message(self) -> float:
        """Values per comm message, client to kernel (1.0 without batches)."""
        return self.values_to_kernel / self.messages_to_kernel if self.messages_to_kernel else 0.0

    @property
    def to_page_per_message(self) -> float:
        """Values per comm message, kernel to client."""
        return self.values_to_page / self.messages_to_page if self.messages_to_page else 0.0

    @property
    def kernel_cpu_per_msg_us(self) -> float:
        return 1e6 * self.kernel_cpu_s / self.received if self.received else 0.0

    @property
    def program_cpu_per_msg_us(self) -> float:
        return 1e6 * self.program_cpu_s / self.received if self.received else 0.0

    @property
    def client_cpu_per_msg_us(self) -> float:
        return 1e6 * self.client_cpu_s / self.received if self.received else 0.0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_us")
        data.update(
            lost=self.lost,
            throughput=round(self.throughput, 1),
            p50_us=round(self.percentile(50), 1),
            p99_us=round(self.percentile(99), 1),
            kernel_cpu_per_msg_us=round(self.kernel_cpu_per_msg_us, 1),
            program_cpu_per_msg_us=round(self.program_cpu_per_msg_us, 1),
            client_cpu_per_msg_us=round(self.client_cpu_per_msg_us, 1),
            to_kernel_per_message=round(self.to_kernel_per_message, 2),
            to_page_per_message=round(self.to_page_per_message, 2),
            kernel_threads_us={
                name: round(1e6 * seconds / self.received, 1) if self.received else 0.0
                for name, seconds in self.kernel_threads.items()
            },
        )
        return data

    def raw(self) -> dict[str, Any]:
        return {**self.summary(), "latencies_us": [round(x, 1) for x in self.latencies_us]}


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no samples)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def run(
    system: System,
    *,
    kind: str,
    payload: str,
    window: int,
    count: int,
    repetition: int = 0,
    address: str = "/slider/abc123",
    stall: float = 10.0,
    batched: bool = False,
    background: str = "idle",
) -> Run:
    """Send `count` values of `payload` to `address`, at most `window` in flight; `batched`:
    what may be sent at once goes as one batch message (if the system accepts batches).

    Stops early (and reports the difference as lost) when nothing came back for `stall`
    seconds: every wait is bounded.
    """
    client = system.client
    assert client is not None, "start the system first"
    value = PAYLOADS[payload]
    sent_at: deque[int] = deque()
    latencies: list[float] = []
    unexpected = 0

    def on_comm(got: str, _value: Any, now: int) -> None:
        nonlocal unexpected
        if got != address or not sent_at:
            unexpected += 1
            return
        latencies.append((now - sent_at.popleft()) / 1000)

    previous = client.on_comm
    client.on_comm = on_comm
    threads = task_counters(system.pid)
    kernel_cpu, program_cpu = cpu_seconds(system.pid), cpu_seconds(system.program_pid)
    client_cpu = time.process_time()
    decoded = client.decoded
    traffic = _traffic(client)
    sent = 0
    started = time.perf_counter()
    last_progress = started
    try:
        while len(latencies) < count:
            room = min(count - sent, window - (sent - len(latencies)))
            if room > 0 and batched:
                now_ns = time.perf_counter_ns()
                sent_at.extend(now_ns for _ in range(room))
                client.comm_send_many(address, [value] * room)
                sent += room
            else:
                for _ in range(room):
                    sent_at.append(time.perf_counter_ns())
                    client.comm_send(address, value)
                    sent += 1
            before = len(latencies)
            client.pump(100)
            now = time.perf_counter()
            if len(latencies) > before:
                last_progress = now
            elif now - last_progress > stall:
                break
        elapsed = time.perf_counter() - started
        threads_after = task_counters(system.pid)
    finally:
        client.on_comm = previous
    moved = [after - before for after, before in zip(_traffic(client), traffic, strict=True)]
    return Run(
        system=system.name,
        kind=kind,
        payload=payload,
        window=window,
        subscriptions=system.subscriptions,
        repetition=repetition,
        count=count,
        received=len(latencies),
        elapsed_s=elapsed,
        kernel_cpu_s=cpu_seconds(system.pid) - kernel_cpu,
        program_cpu_s=cpu_seconds(system.program_pid) - program_cpu,
        client_cpu_s=time.process_time() - client_cpu,
        iopub_decoded=client.decoded - decoded,
        unexpected=unexpected,
        latencies_us=latencies,
        messages_to_kernel=moved[0],
        values_to_kernel=moved[1],
        messages_to_page=moved[2],
        values_to_page=moved[3],
        duplicates=moved[4],
        gaps=moved[5],
        acks=moved[6],
        background=background,
        kernel_threads=cpu_by_thread(threads, threads_after, system.threads),
    )


def _traffic(client: FrontEnd) -> tuple[int, ...]:
    return (
        client.messages_out,
        client.values_out,
        client.messages_in,
        client.values_in,
        client.duplicates,
        client.gaps,
        client.acks_sent,
    )
