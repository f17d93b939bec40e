"""The actor path alone, in one process: no sockets, no pipes, no JSON on a wire.

`python -m benchmarks.actor_path` starts a `CommRouter` whose publisher and program link are a
few lines of Python: the link echoes every value offered to it as the program's `send`, at
once, and the publisher wakes the waiting host thread. A round trip is then

    host -> Connection -> Router -> ProgramExecutor -> (link echoes) -> ProgramExecutor
         -> Connection -> publisher

five actor hand-offs: exactly the router's share of a real round trip, without the kernel's
sockets and the program's pipes. The publisher acknowledges every numbered message at once
(one more hand-off to the Connection per message, as the page's `#ack` is), and counts the
values of a batch one by one. It reports sequential round trips (p50, p99) and pipelined
throughput, with the process CPU time per message, so that a change to the actor runtime can be
measured without the noise of three processes on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from commrouter import CommRouter, Settings
from commrouter.router.messages import (
    LinkEvent,
    ProgramSend,
    ProgramSubscribe,
    ToProgram,
    ValueForProgram,
)

ADDRESS = "/slider/abc123"


class EchoLink:
    """A ProgramLink whose program echoes each value back to its address, synchronously."""

    def __init__(self, program_id: str) -> None:
        self.program_id = program_id
        self.sink: Callable[[LinkEvent], None] | None = None

    def attach(self, sink: Callable[[LinkEvent], None]) -> None:
        self.sink = sink

    def offer(self, message: ToProgram) -> bool:
        if isinstance(message, ValueForProgram) and self.sink is not None:
            # a stream value, as benchmarks/echo_program.py sends it: never merged while waiting
            self.sink(ProgramSend(self.program_id, message.address, message.value, stream=True))
        return True

    def close(self) -> None:
        self.sink = None


class CountingPublisher:
    """Counts the values published for the address (a batch carries several), acknowledges
    each numbered message at once as the page would (docs/protocol.md, "Flow control"), and
    wakes whoever waits for a count."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()
        self.router: CommRouter | None = None  # where the #ack goes

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        seq = data.get("seq")
        if isinstance(seq, int) and self.router is not None:
            ack = {"address": "#ack", "value": seq + len(items) - 1}
            self.router.handle_comm_msg({"comm_id": comm_id, "data": ack})
        echoed = sum(1 for item in items if item.get("address") == ADDRESS)
        if echoed:
            with self.cond:
                self.count += echoed
                self.cond.notify()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        pass

    def display(self, *args: Any, **kwargs: Any) -> None:
        pass

    def stream(self, name: str, text: str, parent: Any) -> None:
        pass


def measure(round_trips: int, pipelined: int, window: int) -> dict[str, float]:
    """One router: `round_trips` sequential echoes, then `pipelined` with `window` in flight."""
    settings = Settings.defaults()
    settings = dataclasses.replace(settings, log=dataclasses.replace(settings.log, console=False))
    publisher = CountingPublisher()
    router = CommRouter("k", publisher, settings=settings).start()
    publisher.router = router
    subscribed = False
    try:
        router.handle_comm_open(
            {"comm_id": "c", "target_name": "commrouter", "data": {"kernel_id": "k"}}
        )
        link = EchoLink("p")
        router.program_started("p", link)
        deadline = time.monotonic() + 10.0
        while link.sink is None or ADDRESS not in router.routes():  # bounded, below
            if link.sink is not None and not subscribed:
                link.sink(ProgramSubscribe("p", ADDRESS))
                subscribed = True
            if time.monotonic() > deadline:
                raise TimeoutError("the route was not in place within 10 s")
            time.sleep(0.01)
        content = {"comm_id": "c", "data": {"address": ADDRESS, "value": 0.5}}
        for _ in range(200):  # warm-up
            target = publisher.count + 1
            router.handle_comm_msg(content)
            publisher.wait_for(target, 5.0)
        samples = []
        cpu = time.process_time()
        for _ in range(round_trips):
            target = publisher.count + 1
            began = time.perf_counter_ns()
            router.handle_comm_msg(content)
            if not publisher.wait_for(target, 5.0):
                raise TimeoutError("an echo did not come back within 5 s")
            samples.append((time.perf_counter_ns() - began) / 1000)
        sequential_cpu = time.process_time() - cpu
        base = publisher.count
        cpu = time.process_time()
        began = time.perf_counter()
        sent = 0
        while publisher.count - base < pipelined:
            while sent < pipelined and sent - (publisher.count - base) < window:
                router.handle_comm_msg(content)
                sent += 1
            if not publisher.wait_for(base + sent - window + 1, 5.0):
                raise TimeoutError("pipelined echoes stopped coming back for 5 s")
        elapsed = time.perf_counter() - began
        pipelined_cpu = time.process_time() - cpu
    finally:
        router.stop()
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[int(len(samples) * 0.99) - 1],
        "sequential_cpu_per_msg_us": 1e6 * sequential_cpu / round_trips,
        "throughput": pipelined / elapsed,
        "pipelined_cpu_per_msg_us": 1e6 * pipelined_cpu / pipelined,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.actor_path")
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--pipelined", type=int, default=20000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    for repetition in range(args.repetitions):
        result = measure(args.round_trips, args.pipelined, args.window)
        print(
            f"{repetition + 1}: round trip p50 {result['p50_us']:6.1f} us "
            f"p99 {result['p99_us']:7.1f} us, CPU {result['sequential_cpu_per_msg_us']:6.1f} us/msg"
            f" | pipelined ({args.window} in flight) {result['throughput']:7.0f} msg/s, "
            f"CPU {result['pipelined_cpu_per_msg_us']:6.1f} us/msg"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
