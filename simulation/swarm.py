"""Swarm testing: each generated seed draws its own world — settings (timeouts, windows, limits),
latencies, fault probabilities on both channels, and which kinds of fault it may inject at all
(a seed that leaves some out reaches states that a seed mixing every fault rarely does).

`draw(rng)` is used by `explore.generate_scenario`; the draw is part of the scenario (its
`[settings]`, `[frontend]`, `[network]` and steps), so a saved generated scenario replays it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from commrouter.simulation.scenario import FrontEndModel, NetworkProfile

__all__ = ["FAULT_ACTIONS", "SwarmConfig", "draw"]

#: the fault actions a seed may leave out (the traffic — sends, subscribes, reads, syncs — is
#: always in)
FAULT_ACTIONS = (
    "page.reload",
    "page.close",
    "page.vanish",
    "page.open",
    "page.ignore_pings",
    "page.reopen",
    "page.malformed",
    "page.freeze",
    "net.set",
    "iopub.set",
    "net.partition",
    "net.latency",
    "host.crash",
    "host.crash_on",
    "host.publisher_raises",
    "host.restart",
    "host.close",
    "clock.stall",
    "cell.hang",
    "cell.crash",
    "cell.garbage",
)


@dataclass(frozen=True)
class SwarmConfig:
    """One seed's world."""

    settings: dict[str, dict[str, Any]]
    frontend: FrontEndModel
    network: NetworkProfile
    iopub: dict[str, Any] | None  # an IOPub fault profile from t=0, if any
    faults: frozenset[str]  # the fault actions this seed may take

    def weight(self, action: str) -> float:
        """1 for traffic and for the faults this seed takes, 0 for those it leaves out."""
        return 0.0 if action in FAULT_ACTIONS and action not in self.faults else 1.0


def _latency(rng: random.Random) -> tuple[float, float]:
    kind = rng.random()
    if kind < 0.6:
        low = rng.choice((0.001, 0.005, 0.01, 0.02))
    elif kind < 0.85:
        low = rng.choice((0.05, 0.1, 0.2))
    else:  # a slow page that answers everything, late
        low = rng.choice((0.3, 0.5, 0.8))
    return low, round(low + rng.choice((0.0, 0.0, 0.02, 0.1)), 3)


def draw_settings(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Timeouts, windows and limits; each section left at its defaults most of the time."""
    settings: dict[str, dict[str, Any]] = {}
    if rng.random() < 0.35:
        settings["heartbeat"] = {
            "timeout": rng.choice((0.2, 0.5, 1.0)),
            "dead_after": rng.choice((1.5, 3.0, 6.0)),
            "timeout_ceiling": rng.choice((1.0, 2.5, 4.0)),
            "request_threshold": rng.choice((0.3, 1.0, 2.0)),
        }
    if rng.random() < 0.35:
        settings["connection"] = {
            "queue_limit": rng.choice((3, 10, 50, 100_000)),
            "wait_for_connection_timeout": rng.choice((1.5, 3.0, 5.0)),
        }
    if rng.random() < 0.35:
        settings["flow"] = {
            "window": rng.choice((2, 8, 32, 128)),
            "ack_timeout": rng.choice((0.3, 1.0, 2.0)),
            "max_messages_per_second": rng.choice((20, 100, 400)),
        }
    if rng.random() < 0.3:
        settings["program"] = {"outbox_limit": rng.randint(1, 6)}
    if rng.random() < 0.2:
        settings["frontend"] = {"queue_limit": rng.choice((3, 20, 10_000))}
    return settings


def _probability(rng: random.Random) -> float:
    return rng.choice((0.0, 0.0, 0.02, 0.1, 0.3))


def draw_network(rng: random.Random) -> NetworkProfile:
    """A page -> kernel fault profile."""
    return NetworkProfile(
        drop=_probability(rng),
        duplicate=_probability(rng),
        reorder=_probability(rng),
        delay=rng.choice((0.0, 0.05, 0.4)),
    )


def draw_iopub(rng: random.Random) -> dict[str, Any]:
    """A kernel -> page fault profile (`iopub.set`'s parameters)."""
    return {
        "drop": rng.choice((0.0, 0.0, 0.02, 0.1)),
        "duplicate": rng.choice((0.0, 0.02, 0.1)),
        "reorder": rng.choice((0.0, 0.02, 0.1)),
        "delay": rng.choice((0.0, 0.05, 0.3)),
        "hwm": rng.choice((0, 0, 5, 20)),
        "rate": rng.choice((0.0, 0.0, 20.0, 100.0)),
    }


def draw(rng: random.Random) -> SwarmConfig:
    """One seed's world, from `rng` only."""
    frontend = FrontEndModel(
        pages=rng.choice((1, 1, 1, 2)),
        latency=_latency(rng),
        install_delay=rng.choice((0.01, 0.05, 0.05, 0.3, 1.0)),
        render_parentless=True,
        iopub_latency=(0.0, 0.0) if rng.random() < 0.6 else _latency(rng),
    )
    network = draw_network(rng) if rng.random() < 0.3 else NetworkProfile()
    iopub = draw_iopub(rng) if rng.random() < 0.2 else None
    faults = frozenset(a for a in FAULT_ACTIONS if rng.random() < 0.6)
    return SwarmConfig(draw_settings(rng), frontend, network, iopub, faults)
