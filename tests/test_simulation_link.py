"""The simulated page speaks issue 11's front-end link (numbered values, acks, batches, numbered
pongs, a bounded queue), and the invariants account for it: a resent or duplicated value counts
once, a merged or dropped one is counted, and a router or host that breaks the rules is caught."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from commrouter import CommRouter
from commrouter.observability.query import EventLog
from commrouter.simulation import Hooks, ScenarioError, load_scenario, parse_scenario, run_scenario
from commrouter.simulation.invariants import check_syncs
from commrouter.simulation.page import PING, PONG
from commrouter.simulation.publisher import KernelHost

ISSUE_11 = {"slow-page", "stale-pong", "reload-flood", "sync-after-drop"}


def describe(result: Any) -> str:
    return "\n".join(f"{v.check}: {v.message}" for v in result.violations)


def checks(result: Any) -> set[str]:
    return {violation.check for violation in result.violations}


class Wrapper:
    """A kernel host whose comm messages go through `change` (a list of publications)."""

    def __init__(self, host: KernelHost) -> None:
        self.host = host
        self.count = 0

    def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [data]

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        for item in self.change(data):
            self.host.comm_msg(comm_id, item, parent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)


def flow(**settings: dict[str, Any]) -> dict[str, Any]:
    """A cell sending ten values one by one, then syncing; the page answers everything."""
    steps: list[dict[str, Any]] = [
        {"at": 0.0, "do": "cell.start"},
        {"at": 0.1, "do": "cell.subscribe", "address": "/in"},
    ]
    steps += [
        {"at": 0.5 + i / 10, "do": "cell.send", "address": "/out", "value": i} for i in range(10)
    ]
    steps += [{"at": 2.0, "do": "cell.sync"}, {"at": 6.0, "do": "cell.finish"}]
    return {
        "scenario": {"steps": steps},
        "settings": settings,
        "expect": {"page_received": {"/out": list(range(10))}},
    }


def test_the_issue_11_scenarios_are_shipped() -> None:
    from commrouter.simulation import shipped

    assert set(shipped()) >= ISSUE_11


# ------------------------------------------------------------------ what the page does


def test_the_page_batches_the_sends_of_one_step() -> None:
    result = run_scenario(load_scenario("basic-flow"), 0)
    assert result.passed, describe(result)
    batch = result.log.query("host.comm_received", msg_type="comm_msg").where(
        batch=lambda items: isinstance(items, list)
    )
    assert [len(e["batch"]) for e in batch] == [3]  # page.send of [1, 2, 3]: one message
    assert result.log.query("cell.received", address="/slider").values("value") == [1, 2, 3]


def test_the_kernel_batches_under_load_and_the_page_takes_every_item() -> None:
    published: list[Mapping[str, Any]] = []

    class Counting(Wrapper):
        def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            published.append(data)
            return [data]

    result = run_scenario(
        load_scenario("program-faults"), 0, hooks=Hooks(publisher_wrapper=Counting)
    )
    assert result.passed, describe(result)
    flood = [d for d in published if "batch" in d and d["batch"][0].get("address") == "/flood"]
    assert flood, "the 300 stream values left in batches"
    numbers = result.log.query("page.received", address="/flood").values("number")
    assert numbers == sorted(numbers) and len(numbers) == 300


def test_a_lost_numbered_message_is_a_gap_the_page_skips_and_the_kernel_sends_again() -> None:
    lost: set[int] = set()

    class Lossy(Wrapper):  # IOPub's high-water mark: the first copy of every third value is lost
        def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            seq = data.get("seq")
            if isinstance(seq, int) and seq % 3 == 0 and seq not in lost:
                lost.add(seq)
                return []
            return [data]

    result = run_scenario(parse_scenario(flow()), 0, hooks=Hooks(publisher_wrapper=Lossy))
    assert result.passed, describe(result)
    assert lost and result.log.query("page.gap").exists()
    assert result.log.query("connection.resent").exists()


def test_duplicated_messages_are_taken_once() -> None:
    class Twice(Wrapper):
        def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            return [data, data] if "seq" in data else [data]

    result = run_scenario(parse_scenario(flow()), 0, hooks=Hooks(publisher_wrapper=Twice))
    assert result.passed, describe(result)
    assert result.log.query("page.duplicates").count() >= 10


def test_the_page_queue_is_bounded_and_counts_its_drops() -> None:
    """While its link is down the hub keeps `frontend.queue_limit` values (its install
    config's), the newest; the program gets those once the link is back."""
    data = {
        "scenario": {
            "steps": [
                {"at": 0.0, "do": "cell.start"},
                {"at": 0.1, "do": "cell.subscribe", "address": "/in"},
                {"at": 0.5, "do": "host.close"},
                {"at": 0.6, "do": "page.send", "address": "/in", "values": [1, 2, 3, 4, 5]},
                {"at": 1.0, "do": "host.ensure", "page": "window-1"},
            ]
        },
        "settings": {"frontend": {"queue_limit": 3}},
        "expect": {"program_received": {"/in": [3, 4, 5]}},
    }
    result = run_scenario(parse_scenario(data), 0)
    assert result.passed, describe(result)
    drops = result.log.query("page.queue_dropped")
    assert drops.values("value") == [1, 2] and drops.values("dropped") == [1, 2]
    assert drops.first()["level"] == "warning"


# ----------------------------------------------------- broken routers and hosts are caught


def test_a_router_that_lets_any_pong_answer_the_pending_ping_is_caught() -> None:
    """The stale-pong scenario fails against the seed's rule (a pong answers whatever ping is
    pending): the late pong to ping 1 then makes heartbeat() true for ping 2."""
    pinged: list[Any] = []

    class Recording(Wrapper):
        def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            if data.get("address") == PING:
                pinged.append(data.get("value"))
            return [data]

    class AnyPong(CommRouter):
        def handle_comm_msg(self, content: Any, parent: Any = None, msg_id: Any = None) -> None:
            data = content.get("data") if isinstance(content, Mapping) else None
            if isinstance(data, Mapping) and data.get("address") == PONG and pinged:
                content = {**content, "data": {**data, "value": pinged[-1]}}
            super().handle_comm_msg(content, parent, msg_id)

    hooks = Hooks(router_factory=AnyPong, publisher_wrapper=Recording)
    result = run_scenario(load_scenario("stale-pong"), 0, hooks=hooks)
    assert "expected" in checks(result)
    second = result.log.query("host.heartbeat_done", index=2).first()
    assert second is not None and second["result"] is True  # what the numbering prevents


def test_a_host_that_loses_every_value_of_an_address_is_caught() -> None:
    class Swallowing(Wrapper):  # every message carrying a value for /out, batches too
        def change(self, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            items = data.get("batch") or [data]
            return [] if any(item.get("address") == "/out" for item in items) else [data]

    result = run_scenario(parse_scenario(flow()), 0, hooks=Hooks(publisher_wrapper=Swallowing))
    assert {"delivery to the page", "sync", "teardown"} <= checks(result), describe(result)


def _log(*events: dict[str, Any]) -> EventLog:
    base = {"kernel_id": "kernel-1", "program_id": "cell-1", "t": 1.0}
    return EventLog([{**base, "seq": i, **e} for i, e in enumerate(events)])


def test_the_sync_check_holds_a_sync_to_what_the_page_received() -> None:
    sent = [
        {"event": "cell.started"},
        {"event": "cell.sent", "address": "/x", "value": 1},
        {"event": "cell.sync", "sync_id": 1},
    ]
    received = {"event": "page.received", "address": "/x", "value": 1, "number": 1}
    answered = {"event": "cell.sync_ack", "sync_id": 1, "error": None}
    scenario = parse_scenario({"scenario": {"steps": []}})
    early = check_syncs(_log(*sent, answered, received), scenario, None)  # type: ignore[arg-type]
    assert [v.message for v in early] == [
        "sync 1 of cell-1 was acknowledged without an error before the page received "
        "everything sent before it (missing /x: 1)"
    ]
    assert check_syncs(_log(*sent, received, answered), scenario, None) == []  # type: ignore[arg-type]
    failed = {**answered, "error": "1 value (/x) sent before this sync were dropped"}
    assert check_syncs(_log(*sent, failed), scenario, None) == []  # type: ignore[arg-type]


# ------------------------------------------------------------------------- the format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[frontend]\nqueue_limit = 3", "unknown key 'queue_limit'"),
        ("[frontend]\niopub_latency = [0.5, 0.1]", "iopub_latency"),
        (
            '[scenario]\nsteps = [{ at = 0, do = "page.freeze" }]',
            "'seconds' is required",
        ),
        (
            '[expect]\nevents = [{ event = "x", matches = { error = "(" } }]',
            "not a regular expression",
        ),
    ],
)
def test_the_new_keys_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"bad\.toml") as error:
        load_scenario(path)
    assert expected in str(error.value)
