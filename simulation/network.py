"""The simulated network: page -> kernel messages, with latency and the injected faults of the
current profile (drop, delay, duplicate, reorder). Runs on the simulation's own thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from commrouter.simulation.page import HEARTBEAT_ADDRESSES

if TYPE_CHECKING:
    from commrouter.simulation.runner import Simulation


@dataclass(slots=True)
class Held:
    """A message the network holds back to deliver after the page's next one (reorder)."""

    deliver: Callable[[float], None]
    msg_id: str
    released: bool = False


class Network:
    """Page -> kernel messages: latency, and the injected faults of the current profile."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.profile = sim.scenario.network
        self.last_arrival: dict[str, float] = {}
        self.held: dict[str, Held] = {}
        self.partitioned_until = 0.0  # net.partition (toward the kernel)

    def transmit(self, page: str, msg_type: str, content: Any, msg_id: str) -> None:
        """Send one shell message from window `page` toward the kernel."""
        sim, profile = self.sim, self.profile
        if not sim.server_up:
            self.dropped(page, msg_type, msg_id, "server down")
            return
        if sim.now() < self.partitioned_until:
            self.dropped(page, msg_type, msg_id, "partition")
            return
        if profile.drop and sim.rng.random() < profile.drop:
            self.dropped(page, msg_type, msg_id, "injected drop")
            return
        low, high = sim.scenario.frontend.latency
        latency = low if low == high else round(sim.rng.uniform(low, high), 6)
        if profile.delay:
            extra = round(sim.rng.uniform(0.0, profile.delay), 6)
            latency += extra
            sim.emit("net.delayed", "net", page=page, msg_id=msg_id, by=extra)
        arrival = max(sim.now() + latency, self.last_arrival.get(page, 0.0))
        copies = [msg_id]
        if profile.duplicate and sim.rng.random() < profile.duplicate:
            copies.append(f"{msg_id}.dup")
            sim.emit("net.duplicated", "net", "warning", page=page, msg_id=msg_id, copy=copies[1])
        if profile.reorder and page not in self.held and sim.rng.random() < profile.reorder:
            held = Held(
                lambda at: self._deliver_copies(page, msg_type, content, copies, at), msg_id
            )
            self.held[page] = held
            sim.emit("net.reordered", "net", "warning", page=page, msg_id=msg_id)
            sim.schedule(0.25, f"net.release {msg_id}", lambda: self._release(page, held, None))
            return
        self._deliver_copies(page, msg_type, content, copies, arrival)
        held = self.held.get(page)
        if held is not None:
            self._release(page, held, arrival)

    def _release(self, page: str, held: Held, at: float | None) -> None:
        if held.released:
            return
        held.released = True
        self.held.pop(page, None)
        arrival = max(self.sim.now(), self.last_arrival.get(page, 0.0)) if at is None else at
        held.deliver(arrival)

    def _deliver_copies(
        self, page: str, msg_type: str, content: Any, copies: list[str], arrival: float
    ) -> None:
        self.last_arrival[page] = arrival
        for msg_id in copies:
            self.sim.schedule_at(
                arrival,
                f"arrive {msg_type} {msg_id}",
                lambda m=msg_id: self.sim.deliver_to_kernel(page, msg_type, content, m),
                entry=_entry_for(msg_type, content),
            )

    def dropped(self, page: str, msg_type: str, msg_id: str, reason: str) -> None:
        self.sim.emit(
            "net.dropped",
            "net",
            "warning",
            page=page,
            msg_type=msg_type,
            msg_id=msg_id,
            reason=reason,
        )


def _entry_for(msg_type: str, content: Any) -> str:
    """The actor that handles a page message first, for the canonical order of its step."""
    if msg_type == "comm_msg" and isinstance(content, Mapping):
        data = content.get("data")
        if isinstance(data, Mapping) and data.get("address") in HEARTBEAT_ADDRESSES:
            return "heartbeat"
    return "connection"
