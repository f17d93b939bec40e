"""Liveness and end-to-end accounting, read from a run's log (docs/simulation.md, "Liveness").

- **accounting**: every value a window sent (`page.queued`, `page.sent`) and every value a
  program or the host sent (`cell.sent`, `host.send`) ends somewhere: it arrived (the program's
  `cell.received`; any window's `page.received` of its kernel and number), or one event lost it —
  and names it (`ledger.py` has the table). A value with no such end is *stranded* (left in a
  window's queue, a dead comm, an outbox) and is a violation.
- **liveness**: a loss is accepted only where an injected fault explains it: the event that
  lost the value names a kind of loss, and a fault of a kind that causes it
  (`faults.episodes`) was active shortly before (`faults.heal_scope`). Merges (latest wins),
  values for an address nobody subscribed to and values for a program that ended are the
  design, not losses. With no fault in the run, or for what was sent after the declared heal
  (`heal_at`), no loss is accepted at all, every sync returns (without an error if its
  program started after the heal) and every read is answered.
- **replies**: a pong the router took as the answer to ping N carried N.

A value counts as delivered when any window received it (values are identified per kernel by
their `number`), so the check holds whatever the number of windows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.delivery import key, received, violation
from commrouter.simulation.faults import Episode, episodes, explained, heal_scope, healthy_from
from commrouter.simulation.ledger import Item, Loss, page_losses, program_losses, to_program
from commrouter.simulation.runner import Violation
from commrouter.simulation.scenario import Scenario

__all__ = ["check_accounting", "check_replies", "check_settled_after_heal"]

ACCOUNTING, LIVENESS, REPLIES = "accounting", "liveness", "replies"
HEALED = LIVENESS  # the same promise, where no fault (any more) excuses anything
ANSWERS = ("cell.received", "cell.read_failed")


def _assign(items: list[Item], losses: list[Loss]) -> list[Item]:
    """Give each undelivered item the first loss that can have lost it (same kernel and
    address or a loss of any address, after the item was sent, with room left); returns the
    items no loss explains."""
    stranded = []
    for item in items:
        for wildcard in (False, True):
            loss = next((x for x in losses if x.fits(item, wildcard)), None)
            if loss is not None:
                loss.take(item)
                break
        else:
            stranded.append(item)
    return stranded


def describe(item: Item) -> str:
    msg = f", msg {item.msg_id}" if item.msg_id else ""
    return f"{json.dumps(item.value)} (t={item.t}{msg})"


#: the losses that name a value most precisely go first: the message and the value, the value,
#: the message (the same value may also have arrived in another message)
_TIERS: tuple[Callable[[Loss], bool], ...] = (
    lambda x: x.msg_id is not None and x.has_value,
    lambda x: x.msg_id is None and x.has_value,
    lambda x: x.msg_id is not None and not x.has_value,
)


def _settle(
    items: list[Item],
    losses: list[Loss],
    got: list[Event],
    keys: tuple[Key, Callable[[Event], tuple[object, ...]]],
) -> list[Item]:
    """Give each item its end: a precise loss, an arrival (`got`), else any loss that fits.
    Returns the stranded items."""
    taken: set[int] = set()
    for tier in _TIERS:
        for loss in (x for x in losses if tier(x)):
            for item in reversed(items):  # what it lost was the latest such value before it
                if id(item) not in taken and loss.fits(item, False):
                    loss.take(item)
                    taken.add(id(item))
    left = [i for i in items if id(i) not in taken]
    return _assign(_undelivered(left, got, keys), losses)


def _judge(
    losses: list[Loss], faults: list[Episode], scope: float, healthy: float | None
) -> list[Violation]:
    violations = []
    for loss in losses:
        if not loss.items or loss.kinds is None:
            continue  # lost nothing that was sent, or the design (merge, no subscriber, ...)
        late = [i for i in loss.items if healthy is not None and i.t >= healthy + loss.grace]
        if late:
            when = (
                "in a run with no fault injected"
                if not faults
                else f"sent after the faults were healed (t={healthy})"
            )
            violations.append(
                violation(
                    HEALED,
                    f"{loss.what} lost {describe(late[0])} for {late[0].address}, {when}",
                    loss.event,
                )
            )
            continue
        if not loss.kinds:
            continue  # the injected fault is the event itself (a reload, a restart)
        window = scope + loss.extra_scope
        at = max(i.t for i in loss.items) if loss.at_send else float(loss.event.get("t") or 0.0)
        sent_by = {i.page for i in loss.items}
        pages = None if None in sent_by else frozenset(str(p) for p in sent_by)
        if explained(faults, loss.kinds, at, window, pages) is None:
            shown = ", ".join(describe(i) for i in loss.items[:3])
            violations.append(
                violation(
                    LIVENESS,
                    f"{loss.what} lost {len(loss.items)} value(s) for {loss.items[0].address} "
                    f"({shown}) and no injected fault explains it (a loss of this kind needs "
                    f"one of: {', '.join(sorted(loss.kinds))} within {window:g} s before)",
                    loss.event,
                )
            )
    return violations


def _stranded(items: list[Item], where: str) -> list[Violation]:
    violations = []
    grouped: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        grouped[item.address].append(item)
    for address, lost in sorted(grouped.items()):
        shown = ", ".join(describe(i) for i in lost[:4])
        more = f" and {len(lost) - 4} more" if len(lost) > 4 else ""
        violations.append(
            violation(
                ACCOUNTING,
                f"{len(lost)} value(s) sent to {address} never reached {where} and no event "
                f"lost them (stranded): {shown}{more}",
                lost[0].event,
            )
        )
    return violations


def check_accounting(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    """End-to-end accounting both ways, and each loss judged by the faults that explain it."""
    faults = episodes(log, scenario)
    scope = heal_scope(settings)
    healthy = healthy_from(log, scenario, faults)
    violations: list[Violation] = []
    # program (and host) -> page
    sent = [Item.of(e) for e in log.query().where(event=lambda n: n in ("cell.sent", "host.send"))]
    losses = page_losses(log, settings)
    missing = _settle(sent, losses, received(log), by_value(by_kernel=True))
    violations += _stranded(missing, "any window")
    violations += _judge(losses, faults, scope, healthy)
    # page -> program: the window's queue, the network, the kernel
    origins, losses = to_program(log, settings)
    losses += program_losses(log)
    handed = list(
        log.query("program.delivered")
    )  # to the program's link (or lost there: cell.lost)
    missing = _settle(origins, losses, handed, by_message())
    violations += _stranded(missing, "the program")
    violations += _judge(losses, faults, scope, healthy)
    return violations


Key = Callable[[Item], tuple[object, ...]]


def by_value(by_kernel: bool) -> tuple[Key, Callable[[Event], tuple[object, ...]]]:
    """Match what the windows received by kernel, address and value."""
    return (
        lambda i: (i.kernel if by_kernel else None, i.address, key(i.value)),
        lambda e: (
            e.get("kernel_id") if by_kernel else None,
            str(e.get("address")),
            key(e.get("value")),
        ),
    )


def by_message() -> tuple[Key, Callable[[Event], tuple[object, ...]]]:
    """Match what the program executor handed to the program by message and address."""
    return (
        lambda i: (i.msg_id, i.address),
        lambda e: (str(e.get("msg_id") or "").removesuffix(".dup"), str(e.get("address"))),
    )


def _undelivered(
    items: list[Item], got: list[Event], keys: tuple[Key, Callable[[Event], tuple[object, ...]]]
) -> list[Item]:
    """The items of `items` that no event of `got` matches (by `keys`, received after it was
    sent). Order is the delivery checks' business, not this one's (the network may reorder a
    window's messages). The latest items are matched first: a value sent again later and
    delivered is not credited to an earlier copy that was lost."""
    item_key, event_key = keys
    arrivals: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for event in got:
        arrivals[event_key(event)].append(int(event["seq"]))
    missing = []
    for item in reversed(items):
        seqs = arrivals[item_key(item)]
        later = [s for s in seqs if s > item.seq]
        if later:
            seqs.remove(min(later))
        else:
            missing.append(item)
    missing.reverse()
    return missing


#: how a program ends (the scenario's cell steps, or the kernel stopping)
ENDS = ("cell.finished", "cell.crashed", "cell.replaced", "cell.killed")


def _ended_waiting(log: EventLog, sync: Event) -> bool:
    """The program of `sync` ended while the sync waited, and the router said it dropped the
    sync for that reason (`program.sync_dropped`): the real `program.sync()` blocks, so only a
    program ended from outside leaves one unanswered."""
    program_id = sync.get("program_id")
    ended = log.query(program_id=program_id).after(sync).where(lambda e: e.get("event") in ENDS)
    dropped = log.query("program.sync_dropped", program_id=program_id, sync_id=sync.get("sync_id"))
    return ended.exists() and dropped.exists()


def check_settled_after_heal(
    log: EventLog, scenario: Scenario, settings: Settings
) -> list[Violation]:
    """After the heal (or in a run with no fault): every sync returns, every read is answered."""
    healthy = healthy_from(log, scenario, episodes(log, scenario))
    if healthy is None:
        return []
    violations = []
    started = {e.get("program_id"): float(e.get("t") or 0.0) for e in log.query("cell.started")}
    for sync in log.query("cell.sync").where(t=lambda t: float(t or 0.0) >= healthy):
        program_id = sync.get("program_id")
        if started.get(program_id, 0.0) < healthy:
            continue  # an earlier program's: the sync check judges it (it may have ended)
        ack = log.query("cell.sync_ack", program_id=program_id, sync_id=sync.get("sync_id"))
        first = ack.first()
        if first is None and _ended_waiting(log, sync):
            continue  # the program ended before the answer came: it is owed to nobody
        if first is None:
            violations.append(
                violation(
                    HEALED, f"sync {sync.get('sync_id')} of {program_id} never returned", sync
                )
            )
        elif first.get("error") is not None:
            violations.append(
                violation(
                    HEALED,
                    f"sync {sync.get('sync_id')} of {program_id}, started after the heal, "
                    f"failed: {first.get('error')}",
                    first,
                )
            )
    for read in log.query("cell.read").where(t=lambda t: float(t or 0.0) >= healthy):
        program_id = read.get("program_id")
        answered = (
            log.query(address=read.get("address"))
            .after(read)
            .where(
                lambda e, p=program_id: (
                    e.get("event") == "page.read_requested"
                    or (e.get("event") in ANSWERS and e.get("program_id") == p)
                )
            )
            .exists()
            or log.query("program.no_page", program_id=program_id).exists()
        )  # the page was asked (its answer is a value the accounting follows), or a headless
        # run: the program API answers with the read's default
        if not answered:
            violations.append(
                violation(HEALED, f"the read of {read.get('address')} was never answered", read)
            )
    return violations


def check_replies(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    """A pong taken as the answer to ping N carried N (the page's message, as it arrived)."""
    pongs = {
        str(e.get("msg_id")): e.get("value")
        for e in log.query("host.comm_received", address="#heartbeat/pong")
    }
    violations = []
    for answer in log.query("heartbeat.pong_received"):
        carried = pongs.get(str(answer.get("msg_id")))
        if carried is not None and carried != answer.get("ping"):
            violations.append(
                violation(
                    REPLIES,
                    f"ping {answer.get('ping')} was taken as answered by a pong to ping {carried} "
                    f"(msg {answer.get('msg_id')})",
                    answer,
                )
            )
    return violations


CHECKS: tuple[Callable[[EventLog, Scenario, Settings], list[Violation]], ...] = (
    check_accounting,
    check_settled_after_heal,
    check_replies,
)
