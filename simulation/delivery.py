"""The delivery invariants, both ways, read from a run's log.

- **to the program**: per address, what the programs received is, in order, a subsequence of
  the window values that reached the kernel (`host.comm_received`, a batch's items one by one);
  every value that did not arrive is explained by an event naming its message
  (`connection.msg_dropped`, `router.dropped`, `program.value_dropped`: one item, or the whole
  message for a reason that rejects the message) or counted (`program.value_merged`,
  `program.values_dropped`, `cell.lost`, the outbox of a kernel that restarted).
- **to the page**: per address, what the windows received is, in order, a subsequence of what
  the programs and the host sent. A value is identified by its kernel and its origin (the
  `origin` of the `connection.sent` that published it on that comm with that `number`): it counts
  once however often it was sent again, in however many windows, or in a new window's snapshot.
  Values a window sent and the router relayed to the others have origin 0 and are not the
  programs'. Every value sent and never received is counted by an event: merged
  (`connection.value_merged`: the page received a newer value for that address), dropped
  (`connection.values_dropped`), not shown (`connection.not_shown`, headless), a request the
  program executor dropped, or the queue of a kernel that restarted. A value published on a comm
  no window holds, and never received later, must have lost its comm to an injected fault.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.page import FAULT_FATES
from commrouter.simulation.runner import Violation
from commrouter.simulation.scenario import Scenario

__all__ = ["RESTARTS", "check_delivery_to_page", "check_delivery_to_program", "key", "received"]

RESTARTS = ("kernel restart", "server restart")
#: connection.msg_dropped reasons that reject a whole comm message (not one item of a batch)
WHOLE_MESSAGE = (
    "content missing",
    "comm_id missing",
    "comm_id is not a string",
    "comm_id is not an open comm",
    "data missing",
    "batch missing",
)


def key(value: Any) -> str:
    """Compare JSON values as JSON (so that 1, 1.0 and true stay different)."""
    return json.dumps(value, sort_keys=True) + type(value).__name__


def violation(check: str, message: str, event: Event | None = None) -> Violation:
    if event is None:
        return Violation(check, message)
    return Violation(check, message, int(event["seq"]), float(event.get("t") or 0.0))


def describe(event: Event) -> str:
    msg = f", msg {event['msg_id']}" if event.get("msg_id") else ""
    return f"{json.dumps(event.get('value'))} (t={event.get('t')}{msg})"


def _count(event: Event) -> int:
    count = event.get("count")
    return int(count) if isinstance(count, int) and not isinstance(count, bool) else 1


def _match(
    check: str, address: str, sent: list[Event], got: list[Event], what: str
) -> tuple[list[Event], list[Violation]]:
    """Match `got` as a subsequence of `sent` (by value). Returns the unmatched sent events."""
    missing: list[Event] = []
    index = 0
    for event in got:
        wanted = key(event.get("value"))
        while index < len(sent) and key(sent[index].get("value")) != wanted:
            missing.append(sent[index])
            index += 1
        if index == len(sent):
            return missing, [
                violation(
                    check,
                    f"{what} got {describe(event)} at {address}, which was not sent to it "
                    "(or was delivered twice, or out of order)",
                    event,
                )
            ]
        index += 1
    return missing + sent[index:], []


def _settle(
    check: str, missing: dict[str, list[Event]], credits: Counter[str], wildcard: int, what: str
) -> list[Violation]:
    violations = []
    for address, events in missing.items():
        excess = len(events) - credits[address]
        if excess <= 0:
            continue
        taken = min(excess, wildcard)
        wildcard -= taken
        excess -= taken
        if excess > 0:
            unexplained = events[-excess:]
            shown = ", ".join(describe(e) for e in unexplained[:4])
            more = f" and {excess - 4} more" if excess > 4 else ""
            violations.append(
                violation(
                    check,
                    f"{excess} value(s) sent to {address} never reached {what} and no event "
                    f"explains it: {shown}{more}",
                    unexplained[0],
                )
            )
    return violations


def _compare(
    check: str,
    sent: Mapping[str, list[Event]],
    got: Mapping[str, list[Event]],
    credits: Counter[str],
    wildcard: int,
    what: str,
) -> list[Violation]:
    violations: list[Violation] = []
    missing: dict[str, list[Event]] = {}
    for address in sorted(set(sent) | set(got)):
        lost, problems = _match(check, address, sent.get(address, []), got.get(address, []), what)
        violations += problems
        if lost:
            missing[address] = lost
    return violations + _settle(check, missing, credits, wildcard, what)


def _by_address(events: Iterable[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[str(event.get("address"))].append(event)
    return grouped


def restart_losses(log: EventLog, *fields: str) -> int:
    stops = log.query("host.kernel_stopping").where(why=lambda why: why in RESTARTS)
    return sum(int(e.get(name) or 0) for e in stops for name in fields)


# ------------------------------------------------------------------- page -> program


def arrivals(log: EventLog) -> list[Event]:
    """Every window value that reached the kernel, a batch's items one by one (each with its
    message's `msg_id` and `t`)."""
    items: list[Event] = []
    for message in log.query("host.comm_received", msg_type="comm_msg"):
        batch = message.get("batch")
        entries = batch if isinstance(batch, list) else [message]
        for entry in entries:
            if not isinstance(entry, Mapping) or "value" not in entry:
                continue
            address = entry.get("address")
            if not isinstance(address, str) or address[:1] == "#":
                continue
            items.append({**message, "address": address, "value": entry["value"]})
    return items


def _unexplained_arrivals(log: EventLog) -> list[Event]:
    whole: set[Any] = set()
    single: Counter[tuple[Any, str]] = Counter()
    valued: Counter[tuple[Any, str, str]] = Counter()
    for name in (
        "connection.msg_dropped",
        "router.dropped",
        "program.value_dropped",
        "actor.crashed",  # a crash while handling the message (an injected one)
        "supervisor.dead_letter",
    ):
        for event in log.query(name):
            msg_id, address = event.get("msg_id"), event.get("address")
            if event.get("reason") in WHOLE_MESSAGE or not isinstance(address, str):
                whole.add(msg_id)
            elif "value" in event:  # the very item (the value is logged at debug)
                valued[(msg_id, address, key(event["value"]))] += 1
            else:
                single[(msg_id, address)] += 1
    kept = []
    for item in arrivals(log):
        slot = (item.get("msg_id"), str(item["address"]))
        if item.get("msg_id") in whole:
            continue
        exact = (*slot, key(item.get("value")))
        if valued[exact] > 0:
            valued[exact] -= 1
            continue
        if single[slot] > 0:
            single[slot] -= 1
            continue
        kept.append(item)
    return kept


def check_delivery_to_program(
    log: EventLog, scenario: Scenario, settings: Settings
) -> list[Violation]:
    sent = _by_address(_unexplained_arrivals(log))
    got = _by_address(log.query("cell.received"))
    credits: Counter[str] = Counter()
    for event in log.query("program.value_merged"):
        credits[str(event.get("address"))] += 1
    credits.update(str(e.get("address")) for e in log.query("cell.lost") if "value" in e)
    wildcard = sum(int(e.get("count") or 0) for e in log.query("program.values_dropped"))
    wildcard += restart_losses(log, "outbox")
    return _compare("delivery to the program", sent, got, credits, wildcard, "the program")


# ------------------------------------------------------------------- program -> page


def origins(log: EventLog) -> dict[tuple[Any, Any, Any], int]:
    """(kernel, comm, number) -> the origin of the entry published there (`connection.sent`):
    one value sent to several windows, or again in a snapshot, has one origin."""
    found: dict[tuple[Any, Any, Any], int] = {}
    for event in log.query("connection.sent"):
        origin = event.get("origin")
        if isinstance(origin, int):
            found[(event.get("kernel_id"), event.get("comm_id"), event.get("number"))] = origin
    return found


def _identity(event: Event, known: Mapping[tuple[Any, Any, Any], int]) -> int | None:
    """A received or unheard value's origin (None: unnumbered, or not known)."""
    return known.get((event.get("kernel_id"), event.get("comm_id"), event.get("number")))


def received(log: EventLog) -> list[Event]:
    """The values the windows took, each value once however many windows took it (its kernel
    and its origin, else its number), in each kernel's sending order (kernels in the order they
    started). Values a window sent, relayed to the others (origin 0), are not the program's."""
    kernels = {k: i for i, k in enumerate(log.query("host.kernel_started").values("kernel_id"))}
    known = origins(log)
    seen: set[tuple[Any, Any]] = set()
    taken: list[tuple[int, int, int, Event]] = []
    for event in log.query("page.received"):
        origin = _identity(event, known)
        number = event.get("number")
        if origin == 0:
            continue
        if origin is not None:
            number = origin
        if isinstance(number, int):
            slot = (event.get("kernel_id"), number)
            if slot in seen:
                continue
            seen.add(slot)
        else:  # an unnumbered value: in log order
            number = 0
        order = kernels.get(event.get("kernel_id"), len(kernels))
        taken.append((order, number, int(event["seq"]), event))
    taken.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in taken]


def _merge_credits(log: EventLog) -> Counter[str]:
    """Values merged away, per address: each replaced entry once, however many windows'
    outboxes merged it."""
    credits: Counter[str] = Counter()
    seen: set[tuple[Any, Any]] = set()
    for event in log.query("connection.value_merged"):
        origin = event.get("origin")
        if isinstance(origin, int):
            slot = (event.get("kernel_id"), origin)
            if slot in seen:
                continue
            seen.add(slot)
        credits[str(event.get("address"))] += 1
    return credits


def check_delivery_to_page(
    log: EventLog, scenario: Scenario, settings: Settings
) -> list[Violation]:
    check = "delivery to the page"
    sent = _by_address(log.query().where(lambda e: e.get("event") in ("cell.sent", "host.send")))
    taken = received(log)
    got = _by_address(taken)
    credits = _merge_credits(log)
    for name in ("connection.values_dropped", "connection.value_dropped"):
        for event in log.query(name):
            credits[str(event.get("address"))] += _count(event)
    credits.update(
        str(e.get("address")) for e in log.query("program.request_dropped", request="send")
    )
    for event in log.query().where(  # a crash while handling it (injected), a dead letter
        lambda e: e.get("event") in ("actor.crashed", "supervisor.dead_letter")
    ):
        credits.update(a for a in event.get("dropped_addresses") or [event.get("address")] if a)
    held = log.query("program.request_dropped").where(lambda e: e.get("count") is not None)
    wildcard = sum(int(e["count"]) for e in held) + restart_losses(log, "queued", "in_flight")
    wildcard += sum(_count(e) for e in log.query("connection.not_shown"))  # headless
    violations = _compare(check, sent, got, credits, wildcard, "the page")
    known = origins(log)
    had = {(e.get("kernel_id"), _identity(e, known) or e.get("number")) for e in taken}
    merged = {
        (e.get("kernel_id"), e.get("origin"))
        for e in log.query("connection.value_merged")
        if isinstance(e.get("origin"), int)
    }
    for event in log.query("host.unheard", msg_type="comm_msg"):
        if str(event.get("address"))[:1] == "#" or "value" not in event:
            continue
        origin = _identity(event, known)
        slot = (event.get("kernel_id"), origin or event.get("number"))
        if origin == 0 or slot in had or slot in merged:
            continue  # sent again later and received, merged (a newer value took its place
            # in another window), or a window's value relayed
        if event.get("why") not in FAULT_FATES:
            violations.append(
                violation(
                    check,
                    f"value {describe(event)} for {event.get('address')} was published on comm "
                    f"{event.get('comm_id')}, which no window holds ({event.get('why')}), never "
                    "received later, and no injected fault explains it",
                    event,
                )
            )
    return violations
