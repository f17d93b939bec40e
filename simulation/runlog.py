"""The run's log: one canonical order of the router's and the simulation's events.

Within a step the actors run concurrently, so the order in which their events reach the
recorder varies. `RunLog` keeps each actor's own order and groups the actors of a step in a
fixed order: breadth-first along who tells whom (`TELLS`) from the actor the step entered
(`actor_ranks`). Generated ids are normalised: `commrouter-install-<uuid hex>` becomes
`commrouter-install-<n>` and a string that is a bare uuid hex (a router's stream id) becomes
`stream-<n>` (numbered by first appearance), and `0x...` addresses in reprs become `0x?`.
Every event's `ts` is stamped from its virtual `t` (docs/simulation.md, Determinism).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from commrouter.observability.logging import IDS
from commrouter.simulation.simtime import START

__all__ = ["ACTOR_ORDER", "FACADE", "TELLS", "RunLog", "actor_ranks", "without_ts"]

_START_UTC = datetime.datetime.fromisoformat(START).replace(tzinfo=datetime.UTC)

# Who tells whom (actors/*.py): the canonical order of a step's events follows it.
TELLS: dict[str, tuple[str, ...]] = {
    "connection": ("router", "heartbeat", "program_executor"),
    "router": ("heartbeat", "program_executor"),
    "heartbeat": ("connection",),
    "subscriptions": ("router", "program_executor"),
    "program_executor": ("subscriptions", "connection"),
    "supervisor": (),
}
ACTOR_ORDER = ("connection", "router", "heartbeat", "subscriptions", "program_executor")
FACADE = "commrouter"

_DISPLAY_ID = re.compile(r"commrouter-install-([0-9a-f]{32})")
_STREAM_ID = re.compile(r'"([0-9a-f]{32})"')  # a whole JSON string: a router's stream id
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_FIRST_KEYS = ("seq", "step", "t", "ts", "level", "kernel_id", "actor", "event", *IDS)


@functools.cache
def actor_ranks(entry: str | None, facade_last: bool = False) -> Mapping[str, int]:
    """Rank of each actor's events within a step that entered at `entry` (see module doc)."""
    order: list[str] = []
    if entry in TELLS:
        queue = [entry]
        while queue:
            name = queue.pop(0)
            if name not in order:
                order.append(name)
                queue.extend(TELLS[name])
    order += [name for name in (*ACTOR_ORDER, "supervisor") if name not in order]
    ranks = {name: index + 1 for index, name in enumerate(order)}
    ranks[FACADE] = 10_000 if facade_last else 0
    return ranks


class RunLog:
    """The run's canonical event log: router events per step in canonical order, plus the
    simulation's own events, normalised and numbered."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.events: list[dict[str, Any]] = []
        self.step = 0
        self.given_up: set[str] = set()
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._display_ids: dict[str, str] = {}
        self._stream_ids: dict[str, str] = {}

    def sink(self, kernel_id: str) -> Callable[[dict[str, Any]], None]:
        """The log sink of one router (called from actor threads)."""

        def record(event: dict[str, Any]) -> None:
            event = dict(event)
            event["kernel_id"] = kernel_id
            if event.get("event") == "supervisor.gave_up":
                self.given_up.add(str(event.get("target")))
            with self._lock:
                self._pending.append(event)

        return record

    def take_pending(self) -> list[dict[str, Any]]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def append_router(
        self, events: list[dict[str, Any]], entry: str | None, facade_last: bool
    ) -> None:
        ranks = actor_ranks(entry, facade_last)
        for event in sorted(events, key=lambda e: ranks.get(str(e.get("actor")), 9_999)):
            self.append(event)

    def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None:
        """Log one of the simulation's own events (simulation thread only)."""
        record: dict[str, Any] = {
            "t": round(self._clock(), 6),
            "ts": None,  # set by append, from t
            "level": level,
            "actor": actor,
            "event": event,
        }
        record.update(fields)
        for key in IDS:
            record.setdefault(key, None)
        self.append(record)

    def normalize(self, text: str) -> str:
        """Replace generated ids in `text` by stable ones (numbered by first appearance)."""
        text = _DISPLAY_ID.sub(self._display, text)
        text = _STREAM_ID.sub(self._stream, text)
        return _ADDRESS.sub("0x?", text)

    def _stream(self, match: re.Match[str]) -> str:
        known = self._stream_ids.get(match.group(1))
        if known is None:
            known = self._stream_ids[match.group(1)] = str(len(self._stream_ids) + 1)
        return f'"stream-{known}"'

    def _display(self, match: re.Match[str]) -> str:
        known = self._display_ids.get(match.group(1))
        if known is None:
            known = self._display_ids[match.group(1)] = str(len(self._display_ids) + 1)
        return f"commrouter-install-{known}"

    def append(self, event: Mapping[str, Any]) -> None:
        line = self.normalize(json.dumps(event, default=repr, separators=(",", ":")))
        raw = json.loads(line)
        if "seq" in raw:  # `seq` is the log position here: a router's own `seq` is its `number`
            raw.setdefault("number", raw.pop("seq"))
        ordered: dict[str, Any] = {"seq": len(self.events), "step": self.step}
        for key in _FIRST_KEYS[2:]:
            ordered[key] = raw.pop(key, None)
        ordered.update(raw)
        if isinstance(ordered["t"], int | float):
            # The run's wall clock is the virtual one: stamp every event from `t`, whichever
            # thread logged it (freezegun's patching does not reach every actor thread, and the
            # verdict is logged after the clock is released), so `ts` and `t` always agree and
            # `commrouter logs` can merge and time simulation logs like any other.
            ordered["ts"] = (_START_UTC + datetime.timedelta(seconds=ordered["t"])).isoformat()
        self.events.append(ordered)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for event in self.events:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")


def without_ts(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The log as JSON lines without the `ts` field (to compare two runs on the rest)."""
    return [
        json.dumps({k: v for k, v in e.items() if k != "ts"}, separators=(",", ":")) for e in events
    ]
