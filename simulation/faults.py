"""The fault catalogue: which steps of a run are injected faults, how long each lasts, and which
losses each kind of fault can explain (docs/simulation.md, "Liveness").

`episodes(log, scenario)` reads a run's log and returns its `Episode`s: one per injected fault,
with its kind, when it started and when it ended (a fault with a duration — a partition, a
frozen page, a faulty network profile, a hung cell — ends when it is lifted; an instant one, a
reload or a crash, ends when it happens). The liveness check (simulation/liveness.py) accepts a
loss only when an episode of a kind that explains it was active shortly before: a value dropped
because no page was there for `queue_max_age` needs the link to have been down (a window gone, a
partition, a restart, ...), a value left in a program's link needs the program to have hung or
ended. Latency is not a fault: a slow page that answers must lose nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.injected import HEALED_WINDOW
from commrouter.simulation.scenario import Scenario

__all__ = [
    "ACTOR",
    "FAULT_KINDS",
    "IOPUB",
    "LINK",
    "PARTITION",
    "PROGRAM",
    "RESTART",
    "Episode",
    "episodes",
    "explained",
    "heal_scope",
    "healthy_from",
    "stalled",
]

#: kinds of injected fault
WINDOW = "window"  # a window reloaded, closed, vanished, reopened; no window (opening one is not)
SLOW_PAGE = "slow page"  # a frozen page, a page that does not answer pings
NETWORK = "network"  # page -> kernel faults (drop, delay, duplicate, reorder)
IOPUB = "iopub"  # kernel -> page faults (drop, delay, duplicate, reorder, high-water mark, rate)
PARTITION = "partition"  # nothing gets through, one way or both
RESTART = "restart"  # a kernel or server restart
CLOSE = "host close"  # the host closed the link
ACTOR = "actor crash"  # an actor crashed (injected), or the supervisor gave up on one
PUBLISHER = "publisher"  # the host's publisher raised
CLOCK = "clock"  # the kernel's timers stalled (late timers)
PROGRAM = "program"  # a cell hung, crashed, sent garbage, ran with a tiny link, was replaced
MALFORMED = "malformed"  # a malformed message from a window

FAULT_KINDS = (
    WINDOW,
    SLOW_PAGE,
    NETWORK,
    IOPUB,
    PARTITION,
    RESTART,
    CLOSE,
    ACTOR,
    PUBLISHER,
    CLOCK,
    PROGRAM,
    MALFORMED,
)
#: the faults that can take the link to the page down (or hold it long enough to drop values)
LINK = frozenset(
    {WINDOW, SLOW_PAGE, NETWORK, IOPUB, PARTITION, RESTART, CLOSE, ACTOR, PUBLISHER, CLOCK}
)

#: step actions that are instant faults, by kind
_INSTANT = {
    "page.reload": WINDOW,
    "page.close": WINDOW,
    "page.vanish": WINDOW,
    "page.reopen": WINDOW,
    "page.malformed": MALFORMED,
    "host.restart_kernel": RESTART,
    "host.close": CLOSE,
    "host.crash": ACTOR,
    "host.crash_on": ACTOR,
    "cell.crash": PROGRAM,
    "cell.garbage": PROGRAM,
}
#: (start action, end action, kind): a fault that lasts until it is lifted
_LASTING = (
    ("page.ignore_pings", "page.answer_pings", SLOW_PAGE),
    ("cell.hang", "cell.resume", PROGRAM),
)


#: window faults whose effect stays with the window they happen to: a reload, a close or a
#: vanish loses what that window held and sent, not what another window sends
_ONE_WINDOW = frozenset({"page.reload", "page.close", "page.vanish"})
_ACTED = ("page.reloaded", "page.closed", "page.vanished")


def _windows_acted_on(log: EventLog) -> dict[int, str]:
    """The window each reload, close or vanish happened to, by the step that did it (a step
    that names no window acts on the first open one)."""
    acts = log.query().where(event=lambda name: name in _ACTED)
    return {int(e.get("step") or 0): str(e.get("page")) for e in acts}


@dataclass(frozen=True, slots=True)
class Episode:
    """One injected fault: its kind, the step (or event) that injected it, and when."""

    kind: str
    what: str
    start: float
    end: float
    seq: int
    page: str | None = None  # a window fault's window: it explains only that window's losses

    def active(self, start: float, end: float) -> bool:
        """Whether the fault overlaps [start, end]."""
        return self.start <= end and self.end >= start


def _t(event: Event) -> float:
    return float(event.get("t") or 0.0)


def _faulty(profile: Mapping[str, Any]) -> bool:
    return any(float(v or 0.0) for k, v in profile.items() if k != "kernel_id")


def episodes(log: EventLog, scenario: Scenario) -> list[Episode]:
    """Every injected fault of the run, in the order it started."""
    found: list[Episode] = []
    end_of_run = max((_t(e) for e in log), default=0.0)
    if scenario.frontend.pages == 0:
        found.append(Episode(WINDOW, "no window open", 0.0, math.inf, -1))
    lasting: dict[tuple[str, Any], tuple[str, float, int]] = {}
    net_since: float | None = 0.0 if scenario.network.faulty else None
    iopub_since: float | None = None
    program: Episode | None = None
    acted_on = _windows_acted_on(log)
    for event in log.query("sim.step"):
        t, seq = _t(event), int(event["seq"])
        do = str(event.get("do"))
        target = event.get("page") or event.get("program")
        if do in _INSTANT:
            page = acted_on.get(int(event.get("step") or 0)) if do in _ONE_WINDOW else None
            found.append(Episode(_INSTANT[do], do, t, t, seq, page))
        elif do == "cell.start":
            if program is not None:  # a small link or a silent cell lasts until replaced
                found.append(dataclasses.replace(program, end=t))
                program = None
            if "capacity" in event or event.get("silent"):
                program = Episode(PROGRAM, "cell.start (small link or silent)", t, end_of_run, seq)
            if event.get("page") not in (None, HEALED_WINDOW):
                found.append(Episode(WINDOW, "cell.start from a chosen window", t, t, seq))
        elif do in ("page.freeze", "net.partition", "host.publisher_raises", "clock.stall"):
            kind = {
                "page.freeze": SLOW_PAGE,
                "net.partition": PARTITION,
                "host.publisher_raises": PUBLISHER,
                "clock.stall": CLOCK,
            }[do]
            found.append(Episode(kind, do, t, t + float(event.get("seconds") or 0.0), seq))
        elif do == "host.restart_server":
            found.append(Episode(RESTART, do, t, t + float(event.get("down") or 1.0), seq))
        elif do == "net.set":
            fields = {k: event.get(k) for k in ("drop", "duplicate", "reorder", "delay")}
            if net_since is not None:
                found.append(Episode(NETWORK, "net.set", net_since, t, seq))
            net_since = t if _faulty(fields) else None
        elif do == "iopub.set":
            fields = {k: event.get(k) for k in ("drop", "duplicate", "reorder", "delay")}
            fields["hwm"] = 1.0 if event.get("hwm") else 0.0
            fields["rate"] = 1.0 if event.get("rate") else 0.0
            if iopub_since is not None:
                found.append(Episode(IOPUB, "iopub.set", iopub_since, t, seq))
            iopub_since = t if _faulty(fields) else None
        elif do == "sim.heal":
            for since, kind in ((net_since, NETWORK), (iopub_since, IOPUB)):
                if since is not None:
                    found.append(Episode(kind, f"{kind} until healed", since, t, seq))
            net_since = iopub_since = None
            for (start, _), (kind, began, at) in list(lasting.items()):
                found.append(Episode(kind, start, began, t, at))
            lasting.clear()
        else:
            for start, stop, kind in _LASTING:
                if do == start:
                    lasting.setdefault((start, target), (kind, t, seq))
                elif do == stop and (start, target) in lasting:
                    _, began, at = lasting.pop((start, target))
                    found.append(Episode(kind, start, began, t, at))
    for since, kind in ((net_since, NETWORK), (iopub_since, IOPUB)):
        if since is not None:
            found.append(Episode(kind, f"{kind} to the end", since, math.inf, -1))
    for (start, _), (kind, began, at) in lasting.items():
        found.append(Episode(kind, start, began, math.inf, at))
    if program is not None:
        found.append(program)
    return sorted(found, key=lambda e: (e.start, e.seq))


def heal_scope(settings: Settings) -> float:
    """How long after a fault ends its effects may still show: the longest probe, an install,
    and the page's open-ack timeout (it may have to open its link again)."""
    heartbeat = settings.heartbeat
    probe = heartbeat.dead_after + 1.5 * max(heartbeat.timeout, heartbeat.timeout_ceiling)
    return (
        probe
        + settings.connection.wait_for_connection_timeout
        + 2 * (settings.frontend.open_ack_timeout)
    )


def explained(
    faults: Iterable[Episode],
    kinds: Iterable[str],
    at: float,
    scope: float,
    pages: frozenset[str] | None = None,
) -> Episode | None:
    """The latest fault of one of `kinds` active within `scope` seconds before `at`, if any.
    With `pages` (the loss is of values those windows sent), a fault of one window explains it
    only if it is one of them."""
    wanted = set(kinds)
    best = None
    for episode in faults:
        if episode.kind not in wanted or not episode.active(at - scope, at):
            continue
        if pages is None or episode.page is None or episode.page in pages:
            best = episode
    return best


def healthy_from(log: EventLog, scenario: Scenario, faults: list[Episode]) -> float | None:
    """From when the run must behave as on a healthy system: from the start with no fault,
    else from the declared heal (`heal_at`, when every fault was lifted), else never (None)."""
    if not faults:
        return 0.0
    if scenario.heal_at is None:
        return None
    last = max(e.end for e in faults)
    return max(scenario.heal_at, last) if math.isfinite(last) else None


def stalled(log: EventLog, start: float, bound: float) -> float:
    """How much later than `bound` after `start` a deadline may fire because the kernel's
    clock stalled meanwhile (`clock.stall`): the stalls that began within the bound."""
    extra = 0.0
    for stall in log.query("sim.clock_stalled"):
        began = _t(stall)
        if start <= began <= start + bound + extra:
            extra += float(stall.get("until") or began) - began
    return extra
