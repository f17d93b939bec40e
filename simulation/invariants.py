"""The checks every run must pass, written against the recorded log with the query API.

Each check reads only the log (the router's events plus what the simulated ends logged), so
it can be run again on a log file read back from disk. A check returns `Violation`s; each
points at the event (`seq`) that shows the problem best.

- delivery to the program: per address, what the program received is what reached the
  kernel, in order, each message at most once; every message that did not arrive is
  explained by an event that names it (`connection.msg_dropped`, `router.dropped`,
  `program.value_dropped`) or counted by one (`program.value_merged`, `program.values_dropped`,
  a hung or killed cell's `cell.lost`, the outbox of a kernel that restarted);
- delivery to the page: the same for what the program and the host sent to the front-end
  (`connection.value_dropped`, `program.request_dropped`, the queue of a kernel that
  restarted); a value published on a comm no window holds is explained only if that comm was
  lost to an injected fault (the window reloaded, closed, vanished, lost its websocket...);
- syncs: every sync is acknowledged or its loss is logged; an acknowledged sync comes after
  everything the program sent before it was published (or dropped, logged);
- bounds: every install ends (opened or failed) within `wait_for_connection_timeout`, every
  probe within `heartbeat.timeout`, every host promise within its bound, unless the kernel
  stopped first;
- supervision: no `supervisor.gave_up`, no unhealthy actor, every crash followed by a restart
  (unless the scenario expects the Supervisor to give up on that actor); no error-level event
  other than the injected crashes;
- teardown: the world became quiet, and after the routers stopped no timer, message, actor,
  program link or host promise was left.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.page import FAULT_FATES
from commrouter.simulation.runner import Violation
from commrouter.simulation.scenario import EVENT_RESERVED, Scenario

__all__ = ["CHECKS", "check_expectations", "check_run"]

EPSILON = 1e-6
RESTARTS = ("kernel restart", "server restart")


def check_run(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    """Every invariant, then the scenario's own expectations."""
    violations: list[Violation] = []
    for check in CHECKS:
        violations += check(log, scenario, settings)
    violations += check_expectations(log, scenario)
    return violations


def _key(value: Any) -> str:
    """Compare JSON values as JSON (so that 1, 1.0 and true stay different)."""
    return json.dumps(value, sort_keys=True) + type(value).__name__


def _v(check: str, message: str, event: Event | None = None) -> Violation:
    if event is None:
        return Violation(check, message)
    return Violation(check, message, int(event["seq"]), float(event.get("t") or 0.0))


def _describe(event: Event) -> str:
    msg = f", msg {event['msg_id']}" if event.get("msg_id") else ""
    return f"{json.dumps(event.get('value'))} (t={event.get('t')}{msg})"


def _match(
    check: str,
    address: str,
    sent: list[Event],
    got: list[Event],
    what: str,
) -> tuple[list[Event], list[Violation]]:
    """Match `got` as a subsequence of `sent` (by value). Returns the unmatched sent events."""
    missing: list[Event] = []
    index = 0
    for event in got:
        key = _key(event.get("value"))
        while index < len(sent) and _key(sent[index].get("value")) != key:
            missing.append(sent[index])
            index += 1
        if index == len(sent):
            return missing, [
                _v(
                    check,
                    f"{what} got {_describe(event)} at {address}, which was not sent to it "
                    "(or was delivered twice, or out of order)",
                    event,
                )
            ]
        index += 1
    return missing + sent[index:], []


def _settle_missing(
    check: str,
    missing: dict[str, list[Event]],
    credits: Counter[str],
    wildcard: int,
    what: str,
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
            shown = ", ".join(_describe(e) for e in unexplained[:4])
            more = f" and {excess - 4} more" if excess > 4 else ""
            violations.append(
                _v(
                    check,
                    f"{excess} value(s) sent to {address} never reached {what} and no event "
                    f"explains it: {shown}{more}",
                    unexplained[0],
                )
            )
    return violations


def _by_address(events: Iterable[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[str(event.get("address"))].append(event)
    return grouped


def _restart_losses(log: EventLog, field: str) -> int:
    stops = log.query("host.kernel_stopping").where(why=lambda why: why in RESTARTS)
    return sum(int(e.get(field) or 0) for e in stops)


def check_delivery_to_program(
    log: EventLog, scenario: Scenario, settings: Settings
) -> list[Violation]:
    check = "delivery to the program"
    explained = {
        e.get("msg_id")
        for name in ("connection.msg_dropped", "router.dropped", "program.value_dropped")
        for e in log.query(name)
    }
    arrivals = log.query("host.comm_received", msg_type="comm_msg").where(
        lambda e: "value" in e and isinstance(e.get("address"), str) and e["address"][:1] != "#"
    )
    sent = _by_address(e for e in arrivals if e.get("msg_id") not in explained)
    got = _by_address(log.query("cell.received"))
    credits = Counter(str(e.get("address")) for e in log.query("program.value_merged"))
    credits.update(str(e.get("address")) for e in log.query("cell.lost") if "value" in e)
    wildcard = sum(int(e.get("count") or 0) for e in log.query("program.values_dropped"))
    wildcard += _restart_losses(log, "outbox")
    violations: list[Violation] = []
    missing: dict[str, list[Event]] = {}
    for address in sorted(set(sent) | set(got)):
        lost, problems = _match(
            check, address, sent.get(address, []), got.get(address, []), "the program"
        )
        violations += problems
        if lost:
            missing[address] = lost
    return violations + _settle_missing(check, missing, credits, wildcard, "the program")


def check_delivery_to_page(
    log: EventLog, scenario: Scenario, settings: Settings
) -> list[Violation]:
    check = "delivery to the page"
    sources = log.query().where(lambda e: e.get("event") in ("cell.sent", "host.send"))
    sent = _by_address(sources)
    published = log.query().where(
        lambda e: (
            e.get("event") == "page.received"
            or (
                e.get("event") == "host.unheard"
                and e.get("msg_type") == "comm_msg"
                and "value" in e
                and str(e.get("address"))[:1] != "#"
            )
        )
    )
    got = _by_address(published)
    credits = Counter(str(e.get("address")) for e in log.query("connection.value_dropped"))
    single = log.query("program.request_dropped", request="send")
    credits.update(str(e.get("address")) for e in single)
    held = log.query("program.request_dropped").where(lambda e: e.get("count") is not None)
    wildcard = sum(int(e["count"]) for e in held) + _restart_losses(log, "queued")
    violations: list[Violation] = []
    missing: dict[str, list[Event]] = {}
    for address in sorted(set(sent) | set(got)):
        lost, problems = _match(
            check, address, sent.get(address, []), got.get(address, []), "the page"
        )
        violations += problems
        if lost:
            missing[address] = lost
    violations += _settle_missing(check, missing, credits, wildcard, "the page")
    for event in published:
        if event.get("event") != "host.unheard":
            continue
        if event.get("why") not in FAULT_FATES:
            violations.append(
                _v(
                    check,
                    f"value {_describe(event)} for {event.get('address')} was published on comm "
                    f"{event.get('comm_id')}, which no window holds ({event.get('why')}) and no "
                    "injected fault explains",
                    event,
                )
            )
    return violations


def check_syncs(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    check = "sync"
    violations = []
    for sync in log.query("cell.sync"):
        program_id, sync_id = sync.get("program_id"), sync.get("sync_id")
        ack = log.query("cell.sync_ack", program_id=program_id, sync_id=sync_id).first()
        if ack is None:
            later = log.query().after(sync)
            explained = (
                later.named("program.sync_dropped")
                .where(program_id=program_id, sync_id=sync_id)
                .exists()
                or later.named("cell.lost").where(program_id=program_id, sync_id=sync_id).exists()
                or later.named("program.request_dropped").where(program_id=program_id).exists()
                or later.named("host.kernel_stopping")
                .where(kernel_id=sync.get("kernel_id"), why=lambda w: w in RESTARTS)
                .exists()
            )
            if not explained:
                violations.append(
                    _v(check, f"sync {sync_id} of {program_id} was never acknowledged", sync)
                )
            continue
        if ack.get("error") is not None:
            continue
        asked = (
            log.query(program_id=program_id)
            .before(sync)
            .where(event=lambda name: name in ("cell.sent", "cell.read"))
        )
        handled = (
            log.query(program_id=program_id)
            .before(ack)
            .where(
                lambda e: (
                    e.get("event") in ("connection.sent", "connection.value_dropped")
                    or (
                        e.get("event") == "program.request_dropped"
                        and e.get("request") in ("send", "read")
                    )
                )
            )
        )
        if handled.count() < asked.count():
            violations.append(
                _v(
                    check,
                    f"sync {sync_id} of {program_id} was acknowledged before everything sent "
                    f"before it was published ({handled.count()} of {asked.count()})",
                    ack,
                )
            )
    return violations


def _ended_within(
    log: EventLog,
    start: Event,
    ends: tuple[str, ...],
    bound: float,
) -> Event | None:
    """The event that ended `start` in time (an end, or its kernel stopping), else None."""
    limit = float(start["t"]) + bound + EPSILON
    kernel = start.get("kernel_id")
    for event in log.query().after(start):
        if float(event.get("t") or 0.0) > limit:
            return None
        name = event.get("event")
        if event.get("kernel_id") != kernel:
            continue
        if name in ends or (name == "host.kernel_stopping" and event.get("why") in RESTARTS):
            return event
    return None


def check_bounds(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    check = "bounded waits"
    violations = []
    wait = settings.connection.wait_for_connection_timeout
    for start in log.query("connection.install_started"):
        if (
            _ended_within(log, start, ("connection.opened", "connection.install_failed"), wait)
            is None
        ):
            violations.append(
                _v(
                    check,
                    f"the install {start.get('display_id')} started at t={start['t']} did not "
                    f"end (opened or failed) within {wait} s",
                    start,
                )
            )
    timeout = settings.heartbeat.timeout
    probe_ends = ("connection.probe_answered", "connection.stale", "connection.opened")
    for start in log.query("connection.probe_started"):
        if _ended_within(log, start, probe_ends, timeout) is None:
            violations.append(
                _v(
                    check,
                    f"the probe started at t={start['t']} did not end within {timeout} s",
                    start,
                )
            )
    for kind in ("ensure", "send", "heartbeat", "close"):
        for start in log.query(f"host.{kind}"):
            index = start.get("index")
            end = (
                log.query()
                .where(
                    lambda e, k=kind, i=index: (
                        e.get("index") == i
                        and (
                            e.get("event") == f"host.{k}_done"
                            or (
                                e.get("event") == f"host.{k}_abandoned" and e.get("why") in RESTARTS
                            )
                        )
                    )
                )
                .first()
            )
            bound = float(start.get("bound") or 0.0)
            if end is None:
                violations.append(_v(check, f"the host's {kind} #{index} never settled", start))
            elif float(end["t"]) - float(start["t"]) > bound + EPSILON:
                violations.append(
                    _v(
                        check,
                        f"the host's {kind} #{index} took "
                        f"{round(float(end['t']) - float(start['t']), 6)} s (bound {bound} s)",
                        end,
                    )
                )
    return violations


def check_supervision(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    check = "supervision"
    expected = set(scenario.expect.get("gave_up", []))
    violations = []
    for event in log.query("supervisor.gave_up"):
        if event.get("target") not in expected:
            violations.append(_v(check, f"the supervisor gave up on {event.get('target')}", event))
    for crash in log.query("actor.crashed"):
        actor = crash.get("actor")
        restarted = (
            log.query(target=actor, kernel_id=crash.get("kernel_id"))
            .after(crash)
            .where(event=lambda name: name in ("supervisor.restarted", "supervisor.gave_up"))
        )
        if not restarted.exists():
            violations.append(_v(check, f"{actor} crashed and was never restarted", crash))
    for health in log.query("host.health"):
        for name, ok in (health.get("health") or {}).items():
            if not ok and name not in expected:
                violations.append(_v(check, f"{name} is not healthy at the end", health))
    for name in sorted(expected):
        if not log.query("supervisor.gave_up", target=name).exists():
            violations.append(
                _v(check, f"expected the supervisor to give up on {name}; it did not")
            )
    injected = Counter(e.get("target") for e in log.query("sim.step", do="host.crash"))
    for event in log.query().where(lambda e: e.get("level") in ("error", "critical")):
        name = str(event.get("event"))
        if name == "actor.crashed" and injected[event.get("actor")] > 0:
            injected[event.get("actor")] -= 1
            continue
        if name == "supervisor.gave_up" or name.startswith(("sim.", "host.")):
            continue  # judged above and by the teardown check
        if name == "supervisor.dead_letter" and event.get("target") in expected:
            continue  # what an actor given up on was told: expected with the give-up
        violations.append(_v(check, f"unexpected error event {name}", event))
    return violations


def check_teardown(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    check = "teardown"
    violations = []
    finished = log.query("sim.finished").last()
    if finished is not None and not finished.get("quiet"):
        violations.append(
            _v(check, "the world was still busy a minute (virtual) after the last step", finished)
        )
    for pending in log.query().where(lambda e: str(e.get("event")).endswith("_pending")):
        violations.append(
            _v(check, f"{pending['event']}: a host promise was still pending", pending)
        )
    link = log.query("host.link_state").last()
    if link is not None and link.get("queued"):
        violations.append(
            _v(
                check,
                f"{link['queued']} item(s) still queued toward the front-end at the end",
                link,
            )
        )
    teardown = log.query("sim.teardown").last()
    if teardown is None:
        return [*violations, _v(check, "the run did not reach its teardown")]
    leftovers = {
        "timers_pending": "timer(s) still pending",
        "in_flight": "message(s) still in flight",
        "actors_alive": "actor(s) still alive after stop",
        "links_open": "program link(s) left open",
        "promises_pending": "host promise(s) never settled",
    }
    for key, what in leftovers.items():
        value = teardown.get(key)
        if value:
            violations.append(_v(check, f"{what}: {value}", teardown))
    return violations


CHECKS: tuple[Callable[[EventLog, Scenario, Settings], list[Violation]], ...] = (
    check_delivery_to_program,
    check_delivery_to_page,
    check_syncs,
    check_bounds,
    check_supervision,
    check_teardown,
)


# ------------------------------------------------------------------------ expectations


def check_expectations(log: EventLog, scenario: Scenario) -> list[Violation]:
    """The scenario's [expect] table."""
    expect = scenario.expect
    violations: list[Violation] = []
    for rule in expect.get("events", []):
        violations += _expect_events(log, rule)
    for name in expect.get("absent", []):
        found = log.query(name).first()
        if found is not None:
            violations.append(_v("expected", f"{name} should not happen", found))
    violations += _expect_sequence(log, expect.get("sequence", []))
    for key, event, who in (
        ("program_received", "cell.received", "the program"),
        ("page_received", "page.received", "the page"),
    ):
        for address, values in expect.get(key, {}).items():
            got = log.query(event, address=address).values("value")
            if [_key(v) for v in got] != [_key(v) for v in values]:
                violations.append(
                    _v("expected", f"{who} received {got} at {address}, expected {values}")
                )
    final = expect.get("final_link")
    if final is not None:
        state = log.query("host.link_state").last()
        if state is None:
            violations.append(_v("expected", "no final link state was recorded"))
        else:
            for key, value in final.items():
                if state.get(key) != value:
                    violations.append(
                        _v(
                            "expected",
                            f"final link {key} is {state.get(key)!r}, expected {value!r}",
                            state,
                        )
                    )
    return violations


def _rule_query(log: EventLog, rule: Mapping[str, Any]) -> Any:
    fields = {k: v for k, v in rule.items() if k not in EVENT_RESERVED}
    query = log.query(rule["event"], **fields)
    if "at" in rule:
        at = float(rule["at"])
        query = query.between(at, at)
    if "between" in rule:
        start, end = rule["between"]
        query = query.between(float(start), float(end))
    return query


def _expect_events(log: EventLog, rule: Mapping[str, Any]) -> list[Violation]:
    count = _rule_query(log, rule).count()
    label = ", ".join(f"{k}={v!r}" for k, v in rule.items())
    bounds = []
    if "count" in rule:
        bounds.append(("exactly", count == rule["count"], rule["count"]))
    if "min" in rule:
        bounds.append(("at least", count >= rule["min"], rule["min"]))
    if "max" in rule:
        bounds.append(("at most", count <= rule["max"], rule["max"]))
    if not bounds:
        bounds.append(("at least", count >= 1, 1))
    return [
        _v("expected", f"{{{label}}}: found {count}, expected {how} {n}")
        for how, ok, n in bounds
        if not ok
    ]


def _expect_sequence(log: EventLog, items: list[Any]) -> list[Violation]:
    position = -1
    previous = "the start"
    for item in items:
        rule = {"event": item} if isinstance(item, str) else dict(item)
        found = _rule_query(log, rule).after(position).first()
        label = item if isinstance(item, str) else ", ".join(f"{k}={v!r}" for k, v in item.items())
        if found is None:
            return [_v("expected", f"sequence: no {label} after {previous}")]
        position, previous = int(found["seq"]), f"{label} (seq {found['seq']})"
    return []
