"""The ledger of the liveness check: the values a run sent (`Item`) and the events that lost
some of them (`Loss`), read from the log, each loss with the kinds of fault that explain it.

`kinds` of a loss: `None` — not a loss but the design (a merge, latest wins; a value for an
address nobody subscribed to; a value for a program that is not running); an empty set — the
injected fault is the event itself (a reloaded window's queue, a restart's queues, a message the
network dropped); else the fault kinds (faults.py) one of which must have been active shortly
before.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.delivery import RESTARTS, WHOLE_MESSAGE, key
from commrouter.simulation.faults import ACTOR, IOPUB, LINK, PARTITION, RESTART

__all__ = ["Item", "Loss", "page_losses", "program_losses", "to_program"]

AUTO: frozenset[str] = frozenset()


@dataclass(slots=True)
class Item:
    """One value sent: where it came from, its address and value, and (page -> kernel) the
    message that carried it."""

    event: Event
    kernel: Any
    address: str
    value: Any
    t: float
    seq: int
    page: str | None = None
    msg_id: str | None = None

    @classmethod
    def of(cls, event: Event, address: Any = None, value: Any = None, **extra: Any) -> Item:
        return cls(
            event,
            event.get("kernel_id"),
            str(event.get("address") if address is None else address),
            event.get("value") if address is None else value,
            float(event.get("t") or 0.0),
            int(event["seq"]),
            **extra,
        )


@dataclass(slots=True)
class Loss:
    """An event that lost values: which it can have lost, and what explains it."""

    event: Event
    what: str
    kinds: frozenset[str] | None
    count: float = 1
    kernel: Any = None  # None: any kernel
    address: str | None = None  # None: values of any address
    value: Any = None
    has_value: bool = False
    page: str | None = None
    msg_id: str | None = None
    extra_scope: float = 0.0
    at_send: bool = False  # judged at the time the value was sent (not when it was lost)
    grace: float = 0.0  # how long after the heal the fault may still explain it
    in_window: bool = False  # lost in the window's queue: only values that never left it
    items: list[Item] = field(default_factory=list)

    def fits(self, item: Item, wildcard: bool) -> bool:
        if len(self.items) >= self.count or int(self.event["seq"]) <= item.seq:
            return False
        if (self.address is None) != wildcard or (
            self.address is not None and self.address != item.address
        ):
            return False
        if self.kernel is not None and self.kernel != item.kernel:
            return False
        if self.page is not None and self.page != item.page:
            return False
        if self.msg_id is not None and self.msg_id != item.msg_id:
            return False
        if self.in_window and item.msg_id is not None:
            return False
        return not self.has_value or key(self.value) == key(item.value)

    def take(self, item: Item) -> None:
        self.items.append(item)


def _what(event: Event) -> str:
    reason = event.get("reason") or event.get("why")
    return f"{event.get('event')}" + (f" ({reason})" if reason else "")


def _loss(event: Event, kinds: frozenset[str] | None, **fields: Any) -> Loss:
    if "value" in fields:
        fields["has_value"] = True
    return Loss(event, _what(event), kinds, **fields)


# ---------------------------------------------------------------------- program -> page


def page_losses(log: EventLog, settings: Settings) -> list[Loss]:
    """What lost values on their way to the page."""
    losses: list[Loss] = []
    outstanding = _outstanding(log)
    for event in log.query().where(
        event=lambda n: (
            n
            in (
                "connection.value_merged",
                "connection.values_dropped",
                "connection.value_dropped",
                "connection.not_shown",
                "program.request_dropped",
                "host.kernel_stopping",
                "actor.crashed",
                "supervisor.dead_letter",
            )
        )
    ):
        name, kernel = event.get("event"), event.get("kernel_id")
        count = event.get("count")
        count = int(count) if isinstance(count, int) and not isinstance(count, bool) else 1
        address = event.get("address")
        if name == "connection.value_merged":
            extra = {"value": event["value"]} if "value" in event else {}
            losses.append(_loss(event, None, kernel=kernel, address=str(address), **extra))
        elif name in ("connection.values_dropped", "connection.value_dropped"):
            reason = str(event.get("reason") or "")
            kinds: frozenset[str] | None = LINK  # the link was down within the heal scope:
            # a fault that ended longer ago left the router time to link again before the age
            if reason.startswith("more than"):
                limit = settings.connection.queue_limit
                if outstanding.get(int(event["seq"]), 0) > limit:
                    kinds = None  # the bound at work: more values waited than it allows
            losses.append(_loss(event, kinds, count=count, kernel=kernel, address=str(address)))
        elif name == "connection.not_shown":
            kinds = None if settings.connection.headless or late_install(log, event) else LINK
            loss = _loss(event, kinds, count=count, kernel=kernel)
            loss.extra_scope = math.inf  # a headless verdict stands until the router tries again
            loss.grace = settings.connection.headless_retry + (
                settings.connection.wait_for_connection_timeout
            )
            losses.append(loss)
        elif name == "program.request_dropped":
            if event.get("request") == "send":
                losses.append(_loss(event, None, kernel=kernel, address=str(address)))
            elif event.get("count") is not None:
                losses.append(_loss(event, None, count=count, kernel=kernel))
        elif name == "host.kernel_stopping":
            if event.get("why") in RESTARTS:
                lost = int(event.get("queued") or 0) + int(event.get("in_flight") or 0)
                losses.append(_loss(event, AUTO, count=lost, kernel=kernel))
        else:
            losses += _actor_losses(event)
    return losses


def late_install(log: EventLog, event: Event) -> bool:
    """Whether the headless verdict behind `event` came from an install a window did run, and
    whose comm opened after the router stopped waiting for it (`wait_for_connection_timeout`
    shorter than that page needs: a configured limit, not a fault — docs/simulation.md)."""
    kernel = event.get("kernel_id")
    for failed in log.query("connection.install_failed", kernel_id=kernel):
        if int(failed["seq"]) > int(event["seq"]):
            break
        ran = log.query("page.install_ran", display_id=failed.get("display_id")).exists()
        if ran and log.query("connection.opened", kernel_id=kernel).after(failed).exists():
            return True
    return False


def _actor_losses(event: Event, msg_id: str | None = None) -> list[Loss]:
    """An actor crashed while handling a message carrying values, or a dead letter."""
    addresses = event.get("dropped_addresses") or [event.get("address")]
    if addresses == [None] and msg_id is not None:  # a whole message, its content unread
        return [_loss(event, frozenset({ACTOR}), count=math.inf, msg_id=msg_id)]
    extra = {"value": event["value"]} if len(addresses) == 1 and "value" in event else {}
    return [
        _loss(event, frozenset({ACTOR}), address=str(a), msg_id=msg_id, **extra)
        for a in addresses
        if isinstance(a, str) and a[:1] != "#"
    ]


def _outstanding(log: EventLog) -> dict[int, int]:
    """For each `connection.values_dropped` (by seq): the values of its kernel sent and not yet
    received, merged or dropped — what could be waiting."""
    waiting: dict[Any, int] = defaultdict(int)
    seen: set[tuple[Any, Any]] = set()
    found: dict[int, int] = {}
    for event in log:
        name, kernel = event.get("event"), event.get("kernel_id")
        if name in ("cell.sent", "host.send"):
            waiting[kernel] += 1
        elif name == "page.received" and (kernel, event.get("number")) not in seen:
            seen.add((kernel, event.get("number")))
            waiting[kernel] -= 1
        elif name == "connection.value_merged":
            waiting[kernel] -= 1
        elif name == "connection.values_dropped":
            found[int(event["seq"])] = waiting[kernel]
            waiting[kernel] -= int(event.get("count") or 1)
    return found


# ---------------------------------------------------------------------- page -> program


def _items(event: Event) -> list[tuple[str, Any]]:
    batch = event.get("batch")
    entries = batch if isinstance(batch, list) else [event]
    return [
        (str(e["address"]), e["value"])
        for e in entries
        if isinstance(e, Mapping)
        and isinstance(e.get("address"), str)
        and e["address"][:1] != "#"
        and "value" in e
    ]


def to_program(log: EventLog, settings: Settings) -> tuple[list[Item], list[Loss]]:
    """The values the windows sent (each with the message that carried it, once it left) and
    what lost some of them before they reached the kernel."""
    origins: list[Item] = []
    carried: dict[str, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    losses: list[Loss] = []
    linked: set[str] = set()  # windows whose link opened at least once
    for event in log.query().where(event=lambda n: str(n).startswith(("page.", "net.dropped"))):
        name, page = event.get("event"), event.get("page")
        never = page not in linked  # no install ever reached it: its queue is all it has
        if name == "page.link_open":
            linked.add(str(page))
        elif name == "page.queued":
            origins.append(Item.of(event, event.get("address"), event.get("value"), page=page))
        elif name == "page.sent" and event.get("why") == "send":  # sent at once: its message
            for address, value in _items(event):
                item = Item.of(event, address, value, page=page, msg_id=event.get("msg_id"))
                origins.append(item)
        elif name == "page.sent" and event.get("why") == "flush":  # what was queued, in order
            for address, value in _items(event):
                slot = carried[str(page)][address + key(value)]
                slot.append((int(event["seq"]), str(event.get("msg_id"))))
        elif name == "page.queue_dropped":
            extra = {"value": event.get("value"), "address": str(event.get("address"))}
            losses.append(_loss(event, None if never else LINK, page=page, in_window=True, **extra))
        elif name in ("page.reloaded", "page.closed", "page.vanished"):
            discarded = int(event.get("discarded") or 0)
            losses.append(_loss(event, AUTO, count=discarded, page=page, in_window=True))
        elif name == "page.left_queued":  # a window whose link never (re)opened
            extra = {"value": event.get("value"), "address": str(event.get("address"))}
            loss = _loss(event, None if never else LINK, page=page, at_send=True, **extra)
            loss.in_window = True
            if log.query("connection.headless").exists():  # no install until it tries again
                loss.grace = loss.extra_scope = settings.connection.headless_retry
            losses.append(loss)
        elif name == "net.dropped" and event.get("msg_type") == "comm_msg":
            losses.append(_loss(event, AUTO, count=math.inf, msg_id=str(event.get("msg_id"))))
    for item in origins:  # a queued value's message: the first flush after it, in order
        if item.msg_id is not None:
            continue
        slot = carried[str(item.page)][item.address + key(item.value)]
        index = next((i for i, (seq, _) in enumerate(slot) if seq >= item.seq), None)
        if index is not None:
            item.msg_id = slot.pop(index)[1]
    return origins, losses


def program_losses(log: EventLog) -> list[Loss]:
    """What lost a window's value once it reached the kernel, by the message that carried it."""
    losses: list[Loss] = []
    opened_by = {e.get("comm_id"): e.get("kernel_id") for e in log.query("connection.opened")}
    # comms whose comm_close IOPub lost: their window goes on sending on them until told
    close_lost = {e.get("comm_id") for e in log.query("iopub.dropped", kind="comm_close")}
    for event in log:
        name = event.get("event")
        msg_id = str(event.get("msg_id") or "").removesuffix(".dup") or None
        address = event.get("address")
        if name == "connection.msg_dropped":
            whole = event.get("reason") in WHOLE_MESSAGE or not isinstance(address, str)
            extra = {} if whole else {"address": str(address)}
            loss = _loss(event, LINK, count=math.inf, msg_id=msg_id, **extra)
            if opened_by.get(event.get("comm_id"), event.get("kernel_id")) != event.get(
                "kernel_id"
            ):  # a comm of the kernel before a restart: the page learns it at its next install
                loss.kinds, loss.extra_scope, loss.grace = frozenset({RESTART}), math.inf, math.inf
            elif event.get("comm_id") in close_lost:  # the window never learnt of the close
                loss.kinds = frozenset({IOPUB, PARTITION})
                loss.extra_scope = loss.grace = math.inf
            losses.append(loss)
        elif name in ("router.dropped", "program.value_dropped", "program.value_merged"):
            if name == "program.value_merged":  # the value lost is the one it replaced
                msg_id = str(event.get("replaced") or "").removesuffix(".dup") or None
            extra = {"value": event["value"]} if "value" in event else {}
            losses.append(_loss(event, None, msg_id=msg_id, address=str(address), **extra))
        elif name == "program.values_dropped":
            for entry in event.get("dropped") or []:
                if isinstance(entry, list) and len(entry) == 2:
                    lost_id = str(entry[1] or "").removesuffix(".dup") or None
                    losses.append(_loss(event, None, msg_id=lost_id, address=str(entry[0])))
        elif name == "cell.lost" and "value" in event:
            losses.append(_loss(event, AUTO, address=str(address), value=event.get("value")))
        elif name == "host.kernel_stopping" and event.get("why") in RESTARTS:
            losses.append(_loss(event, AUTO, count=int(event.get("outbox") or 0)))
        elif name in ("actor.crashed", "supervisor.dead_letter") and msg_id is not None:
            losses += _actor_losses(event, msg_id)
    return losses
