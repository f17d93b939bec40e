"""Property-based fuzzing against the live parts: random comm content handed to the router's
real actors, random page values streamed to a real cell program, random messages sent to the
real kernel over the wire. No actor crashes, the kernel keeps serving, and every value or
request accepted is delivered, answered, or dropped with a log line: none is lost silently."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commrouter import CommRouter, RealTime
from commrouter.observability import Recorder
from tests.conftest import KERNEL_ID, quiet_settings
from tests.fuzz_strategies import LIVE, clean_values, strict, text, to_json, values
from tests.kernel_harness import log_events, running_kernel
from tests.programs.harness import PROGRAMS, WAIT, WatchedFrontEnd
from tests.wire_attack import RawPeer, assert_serves, header

KEYS = st.sampled_from(["comm_id", "target_name", "data", "address", "value"]) | text
contents = st.none() | st.dictionaries(
    KEYS,
    values
    | st.fixed_dictionaries(
        {"address": values | st.sampled_from(["/in", "#heartbeat/ping", "#x"]), "value": values},
        optional={"read_request": values, "kernel_id": values},
    ),
    max_size=4,
)


@pytest.fixture
def router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    log = Recorder()
    fe = WatchedFrontEnd(KERNEL_ID)
    r = CommRouter(KERNEL_ID, fe, settings=quiet_settings(), time=RealTime(), log_sinks=[log])
    fe.connect(r)
    r.start()
    yield r, fe, log
    r.stop()
    assert list(tmp_path.iterdir()) == [], "a FIFO directory was left behind"


def test_random_comm_content_never_crashes_an_actor(router) -> None:
    r, fe, log = router
    comm_id = fe.open()
    handled = []

    @LIVE
    @given(st.sampled_from(["open", "msg", "close"]), contents, st.booleans())
    def handle(kind: str, content: Any, ours: bool) -> None:
        if ours and isinstance(content, dict):
            content = {**content, "comm_id": comm_id}
        getattr(r, f"handle_comm_{kind}")(content, parent=None, msg_id="fuzz")
        r.link_state()  # the Connection answers after handling it
        handled.append(kind)

    handle()
    assert not log.find("actor.crashed")
    assert all(r.health().values())
    print(f"\nfuzz figures: comm contents {len(handled)}, actor crashes 0")


def test_random_page_values_reach_a_real_program_or_are_refused_with_a_reason(router) -> None:
    r, fe, log = router
    run = r.run_program([sys.executable, str(PROGRAMS / "counter.py")])
    fe.wait_for(lambda: fe.comm_values("/ready"))
    sent = {"strict": 0, "refused": 0}

    @LIVE
    @given(st.lists(values | clean_values, max_size=20))
    def stream(batch: list[Any]) -> None:
        for value in batch:
            fe.send("/in", value)
            try:
                json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
                sent["strict"] += 1
            except ValueError:
                sent["refused"] += 1

    stream()
    fe.send("/done", True)
    assert run.wait(WAIT) == 0, fe.output("stderr")
    [count] = fe.comm_values("/count")
    state = r.program_state()
    refused = [f for f in log.find("program.link_fault") if f["reason"] == "value not JSON"]
    assert count["bad"] == 0
    assert count["count"] + state.merged + state.dropped == sent["strict"]
    assert len(refused) == sent["refused"]
    assert not log.find("actor.crashed")
    print(
        f"\nfuzz figures: page values {sent['strict'] + sent['refused']}: received"
        f" {count['count']}, merged {state.merged}, dropped {state.dropped}, refused with a"
        f" reason {len(refused)}, lost silently 0"
    )


REQUESTS = [
    "kernel_info_request",
    "comm_info_request",
    "complete_request",
    "inspect_request",
    "history_request",
    "is_complete_request",
]
OTHERS = ["comm_open", "comm_msg", "comm_close", "no_such_type", ""]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with running_kernel(tmp_path_factory.mktemp("fuzz-kernel")) as running:
        yield running


def resources(pid: int) -> tuple[int, int]:
    """The kernel process's open descriptors and threads."""
    proc = Path(f"/proc/{pid}")
    return len(list((proc / "fd").iterdir())), len(list((proc / "task").iterdir()))


def test_random_messages_to_the_real_kernel_are_answered_or_refused(kernel) -> None:
    manager, client, log_file = kernel
    assert_serves(client)  # warm: the first cell starts the reaper, the log file is open
    before = resources(manager.provisioner.process.pid)
    peer = RawPeer(manager)
    answerable: list[str] = []
    sent: list[str] = []

    @LIVE
    @given(
        st.sampled_from(REQUESTS + OTHERS),
        st.dictionaries(
            KEYS | st.sampled_from(["code", "cursor_pos"]), clean_values | values, max_size=4
        ),
        st.dictionaries(text, clean_values | values, max_size=2),
        st.booleans(),
    )
    def send(msg_type: str, content: dict, metadata: dict, ascii_only: bool) -> None:
        head = header(msg_type)
        body, meta = to_json(content, ascii_only), to_json(metadata, ascii_only)
        peer.send_parts(to_json(head, ascii_only), b"{}", meta, body)
        sent.append(msg_type)
        if msg_type in REQUESTS and strict(content) and strict(metadata):
            answerable.append(head["msg_id"])

    try:
        send()
        unanswered = set(answerable)
        while unanswered:  # every accepted request is answered (bounded: WAIT per reply)
            reply = peer.next_reply(WAIT)
            assert reply is not None, f"{len(unanswered)} accepted requests not answered"
            unanswered.discard(reply["parent_header"].get("msg_id"))
    finally:
        peer.close()
    assert_serves(client)
    assert resources(manager.provisioner.process.pid) == before  # nothing leaked
    refused = len(log_events(log_file, "kernel.message_dropped"))
    print(
        f"\nfuzz figures: kernel messages {len(sent)}, accepted requests answered"
        f" {len(answerable)}, dropped with a reason {refused}, descriptors and threads leaked 0"
    )
