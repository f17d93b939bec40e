"""Faults on the kernel -> page channel (IOPub): drop, delay, duplication, reorder, the
publisher socket's high-water mark and the server's message rate limit, and partitions.

`IOPub.carry(item)` takes each thing the router published, once the step is quiet and in the
canonical order. With no fault it hands it on as before (`HostSide._iopub`: at once, or after
the IOPub latency); with a fault profile it applies the faults, logs each (`iopub.*`), and
schedules the delivery itself, keeping a kernel's order (a reorder holds one message back behind
the next, as the page -> kernel network does).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commrouter.simulation.publisher import Published

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation

__all__ = ["IOPub", "IOPubProfile"]

RELEASE_AFTER = 0.25  # a message held back is released at the latest after this


@dataclass(frozen=True, slots=True)
class IOPubProfile:
    """Kernel -> page faults: probabilities (0..1), extra delay (seconds, uniform in [0, delay]),
    a high-water mark (messages on their way; 0: none) and a rate limit (messages per second of
    virtual time; 0: none). What is over the mark or the limit is dropped, as ZeroMQ and
    jupyter_server do."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    hwm: int = 0
    rate: float = 0.0

    @property
    def faulty(self) -> bool:
        return any((self.drop, self.duplicate, self.reorder, self.delay, self.hwm, self.rate))


class IOPub:
    """The IOPub channel between the kernel and the windows (see the module doc)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.profile = IOPubProfile()
        self.partitioned_until = 0.0
        self.on_the_way = 0  # messages scheduled by the channel, not yet handed to the windows
        self.second = -1
        self.in_second = 0
        self.held: Published | None = None
        self.held_copies = 0

    def set_profile(self, params: dict[str, Any]) -> None:
        fields = {f.name for f in dataclasses.fields(IOPubProfile)}
        values = {k: v for k, v in params.items() if k in fields}
        if "hwm" in values:
            values["hwm"] = int(values["hwm"])
        self.profile = IOPubProfile(**values)
        self.sim.emit("iopub.profile", "net", **dataclasses.asdict(self.profile))

    def carry(self, item: Published) -> None:
        """One published message toward the windows."""
        sim = self.sim
        now = sim.now()
        quiet = self.on_the_way == 0 and self.held is None
        if not self.profile.faulty and now >= self.partitioned_until and quiet:
            sim._iopub(item)
            return
        if now < self.partitioned_until:
            self._dropped(item, "partition")
            return
        profile = self.profile
        second = math.floor(now)
        if second != self.second:
            self.second, self.in_second = second, 0
        self.in_second += 1
        if profile.rate and self.in_second > profile.rate:
            self._dropped(item, "rate limit")
            return
        if profile.hwm and self.on_the_way >= profile.hwm:
            self._dropped(item, "high-water mark")
            return
        if profile.drop and sim.rng.random() < profile.drop:
            self._dropped(item, "injected drop")
            return
        copies = 1
        if profile.duplicate and sim.rng.random() < profile.duplicate:
            copies = 2
            sim.emit("iopub.duplicated", "net", "warning", **_fields(item))
        if profile.reorder and self.held is None and sim.rng.random() < profile.reorder:
            self.held, self.held_copies = item, copies
            self.on_the_way += copies
            sim.emit("iopub.reordered", "net", "warning", **_fields(item))
            sim.schedule(RELEASE_AFTER, "iopub release", lambda: self._release(item, copies))
            return
        self._send(item, copies)
        if self.held is not None:
            self._release(self.held, self.held_copies)

    def _release(self, item: Published, copies: int) -> None:
        if self.held is item:
            self.held = None
            self.on_the_way -= copies
            self._send(item, copies)

    def _send(self, item: Published, copies: int) -> None:
        sim = self.sim
        low, high = sim.scenario.frontend.iopub_latency
        latency = low if low == high else round(sim.rng.uniform(low, high), 6)
        if self.profile.delay:
            extra = round(sim.rng.uniform(0.0, self.profile.delay), 6)
            latency += extra
            sim.emit("iopub.delayed", "net", by=extra, **_fields(item))
        at = max(sim.now() + latency, sim.iopub_arrival.get(item.kernel_id, 0.0))
        sim.iopub_arrival[item.kernel_id] = at
        for _ in range(copies):
            self.on_the_way += 1
            sim.schedule_at(at, f"iopub {item.kind}", lambda: self._arrive(item))

    def _arrive(self, item: Published) -> None:
        self.on_the_way -= 1
        self.sim._hand_to_windows(item)

    def _dropped(self, item: Published, reason: str) -> None:
        self.sim.emit("iopub.dropped", "net", "warning", reason=reason, **_fields(item))


def _fields(item: Published) -> dict[str, Any]:
    """What names a published message in the log: its kind, comm and numbers."""
    fields: dict[str, Any] = {"kind": item.kind, "comm_id": item.comm_id}
    data = item.data or {}
    if item.kind == "comm_msg":
        first = data.get("seq")
        batch = data.get("batch")
        fields["address"] = None if isinstance(batch, list) else data.get("address")
        if isinstance(first, int):
            fields["number"] = first
            fields["count"] = len(batch) if isinstance(batch, list) else 1
    return fields
