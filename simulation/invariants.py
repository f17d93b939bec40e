"""The checks every run must pass, written against the recorded log with the query API.

Each check reads only the log (the router's events plus what the simulated ends logged), so
it can be run again on a log file read back from disk. A check returns `Violation`s; each
points at the event (`seq`) that shows the problem best.

- delivery, both ways (simulation/delivery.py): nothing lost without an event that explains
  or counts it, nothing twice, nothing out of order; a value sent again (resent, or to a new
  window) counts once;
- syncs: every sync is acknowledged or its loss is logged; a sync acknowledged without an
  error comes after the page received everything the program sent since its previous sync
  (merged values and a headless run aside), so a sync after a drop must carry an error;
- bounds: every install ends (opened or failed) within `wait_for_connection_timeout`, every
  probe within `heartbeat.dead_after` plus the longest ping, every host promise within its
  bound, unless the kernel stopped first;
- supervision: no `supervisor.gave_up`, no unhealthy actor, every crash followed by a restart
  (unless the scenario expects the Supervisor to give up on that actor); no error-level event
  other than the injected crashes;
- teardown: the world became quiet, nothing waits for the page (queued or unacknowledged),
  and after the routers stopped no timer, message, actor, program link or host promise was left.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from commrouter.config import Settings
from commrouter.observability.query import Event, EventLog
from commrouter.simulation.delivery import (
    RESTARTS,
    check_delivery_to_page,
    check_delivery_to_program,
    key,
    received,
)
from commrouter.simulation.delivery import violation as _v
from commrouter.simulation.faults import stalled
from commrouter.simulation.liveness import CHECKS as LIVENESS_CHECKS
from commrouter.simulation.runner import Violation
from commrouter.simulation.scenario import EVENT_RESERVED, Scenario

__all__ = ["CHECKS", "check_expectations", "check_run", "probe_bound"]

EPSILON = 1e-6


def check_run(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    """Every invariant, then the scenario's own expectations."""
    violations: list[Violation] = []
    for check in CHECKS:
        violations += check(log, scenario, settings)
    violations += check_expectations(log, scenario)
    return violations


def probe_bound(settings: Settings) -> float:
    """The longest a probe may last: the silence that declares a link dead, plus the longest
    ping it may be waiting on (and the probe backstop's half timeout)."""
    heartbeat = settings.heartbeat
    longest = max(heartbeat.timeout, heartbeat.timeout_ceiling)
    return heartbeat.dead_after + 1.5 * longest


def check_syncs(log: EventLog, scenario: Scenario, settings: Settings) -> list[Violation]:
    check = "sync"
    violations = []
    taken = received(log)
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
        violations += _sync_answer(log, sync, ack, taken)
    return violations


def _sync_answer(log: EventLog, sync: Event, ack: Event, taken: list[Event]) -> list[Violation]:
    """What a sync acknowledged without an error promises: the page received everything the
    program sent since its previous sync (a merge, a read request that reached the page or was
    dropped and answered as failed, and a headless run account for theirs). A value dropped
    before it leaves it short: only an error may say so."""
    if ack.get("error") is not None:
        return []  # the error says what was lost
    program_id, sync_id = sync.get("program_id"), sync.get("sync_id")
    previous = (
        log.query("cell.sync", program_id=program_id).before(sync).last()
        or log.query("cell.started", program_id=program_id).first()
    )
    since = -1 if previous is None else int(previous["seq"])
    asked = Counter(
        str(e.get("address"))
        for e in log.query(program_id=program_id)
        .after(since)
        .before(sync)
        .where(event=lambda name: name in ("cell.sent", "cell.read"))
    )
    if not asked:
        return []
    kernel = sync.get("kernel_id")
    window = log.query().after(since).before(ack)
    if window.where(kernel_id=kernel).named("connection.headless", "connection.not_shown").exists():
        return []  # a headless run shows nothing, and says so
    had: Counter[str] = Counter()
    for event in taken:
        if event.get("kernel_id") == kernel and since < int(event["seq"]) < int(ack["seq"]):
            had[str(event.get("address"))] += 1
    for event in window.named("page.read_requested", "connection.value_merged"):
        had[str(event.get("address"))] += 1
    for event in window.named("connection.read_dropped").where(program_id=program_id):
        had[str(event.get("address"))] += 1
    short = {a: n - had[a] for a, n in asked.items() if had[a] < n}
    if not short:
        return []
    detail = ", ".join(f"{a}: {n}" for a, n in sorted(short.items()))
    dropped = window.named("connection.values_dropped").where(address=lambda a: str(a) in short)
    why = " (some were dropped)" if dropped.exists() else ""
    return [
        _v(
            "sync",
            f"sync {sync_id} of {program_id} was acknowledged without an error before the page "
            f"received everything sent before it (missing {detail}){why}",
            ack,
        )
    ]


def _ended_within(
    log: EventLog,
    start: Event,
    ends: tuple[str, ...],
    bound: float,
) -> Event | None:
    """The event that ended `start` in time (an end, or its kernel stopping), else None."""
    limit = float(start["t"]) + bound + stalled(log, float(start["t"]), bound) + EPSILON
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
            _ended_within(
                log,
                start,
                (
                    "connection.opened",
                    "connection.install_failed",
                    "connection.revived",
                    "connection.relinked",
                ),
                wait,
            )
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
    bound = probe_bound(settings)
    probe_ends = (
        "connection.probe_answered",
        "connection.probe_ended",
        "connection.stale",
        "connection.opened",
    )
    for start in log.query("connection.probe_started"):
        if _ended_within(log, start, probe_ends, bound) is None:
            violations.append(
                _v(
                    check,
                    f"the probe started at t={start['t']} did not end within {bound} s",
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
                continue
            began = float(start["t"])
            if kind == "send":  # a value merged into it while it waited starts its age again
                merged = log.query("connection.value_merged", address=start.get("address"))
                began = max([began, *(float(e["t"]) for e in merged.after(start).before(end))])
            if float(end["t"]) - began > bound + stalled(log, began, bound) + EPSILON:
                violations.append(
                    _v(
                        check,
                        f"the host's {kind} #{index} took "
                        f"{round(float(end['t']) - began, 6)} s (bound {bound} s)",
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
    injected = Counter(
        e.get("target")
        for e in log.query("sim.step")
        if e.get("do") in ("host.crash", "host.crash_on")
    )
    failing = [  # the publisher raised on purpose until then
        (float(e["t"]), float(e.get("until") or 0.0)) for e in log.query("host.publisher_failing")
    ]
    for event in log.query().where(lambda e: e.get("level") in ("error", "critical")):
        name = str(event.get("event"))
        if name == "actor.crashed" and injected[event.get("actor")] > 0:
            injected[event.get("actor")] -= 1
            continue
        if name == "supervisor.gave_up" or name.startswith(("sim.", "host.")):
            continue  # judged above and by the teardown check
        if name.endswith(
            ("publish_failed", "send_failed", "display_failed", "install_failed")
        ) and any(start <= float(event.get("t") or 0.0) <= end + EPSILON for start, end in failing):
            continue  # the injected publisher failure, reported by the router
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
    if link is not None and (link.get("queued") or link.get("in_flight")):
        violations.append(
            _v(
                check,
                f"{link.get('queued')} item(s) still queued and {link.get('in_flight')} not "
                "acknowledged toward the front-end at the end",
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
    for name, what in leftovers.items():
        value = teardown.get(name)
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
    *LIVENESS_CHECKS,  # accounting, liveness, after the heal, replies (simulation/liveness.py)
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
    taken = received(log)  # each value once, however often it was sent or to which window
    for field, events, who in (
        ("program_received", list(log.query("cell.received")), "the program"),
        ("page_received", taken, "the page"),
    ):
        for address, values in expect.get(field, {}).items():
            got = [e.get("value") for e in events if e.get("address") == address]
            if [key(v) for v in got] != [key(v) for v in values]:
                violations.append(
                    _v("expected", f"{who} received {got} at {address}, expected {values}")
                )
    final = expect.get("final_link")
    if final is not None:
        state = log.query("host.link_state").last()
        if state is None:
            violations.append(_v("expected", "no final link state was recorded"))
        else:
            for name, value in final.items():
                if state.get(name) != value:
                    violations.append(
                        _v(
                            "expected",
                            f"final link {name} is {state.get(name)!r}, expected {value!r}",
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
    for name, pattern in rule.get("matches", {}).items():
        query = query.where(lambda e, n=name, p=pattern: re.search(p, str(e.get(n))) is not None)
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
