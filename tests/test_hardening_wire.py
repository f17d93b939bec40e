"""Bad input on the real Jupyter wire, sent next to a real jupyter_client: every message is
decoded once at the edge with limits, refused with a logged reason, and the kernel keeps
answering kernel_info and running cells (docs/reliability.md)."""

from __future__ import annotations

import json
import time

import pytest

from tests.kernel_harness import log_events, running_kernel
from tests.wire_attack import RawPeer, assert_serves, dumps, header

TIMEOUT = 30
PARTS = ("header", "parent_header", "metadata", "content")

# The JSON Python's json module accepts but JSON does not, and what is too deep.
POISONS = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "lone surrogate": b'"\\ud800"',
    "deep nesting": b"[" * 2048 + b"]" * 2048,
    "unclosed nesting": b"[" * 2048,
}


# The poison tests send about a hundred refusals of one kind in a few seconds and wait for each
# one's log line: their kernel logs every refusal. The flood test keeps the default bound.
EVERY_REFUSAL = {"COMMROUTER_LOG_REFUSALS_PER_SECOND": "100000"}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with running_kernel(tmp_path_factory.mktemp("hardening-wire"), EVERY_REFUSAL) as running:
        yield running


@pytest.fixture
def default_kernel(tmp_path):
    with running_kernel(tmp_path) as running:
        yield running


@pytest.fixture
def peer(kernel):
    manager, _, _ = kernel
    raw = RawPeer(manager)
    yield raw
    raw.close()


def dropped_since(log_file, count: int) -> list[dict]:
    return log_events(log_file, "kernel.message_dropped")[count:]


def wait_dropped(log_file, before: int, n: int = 1) -> list[dict]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = dropped_since(log_file, before)
        if len(found) >= n:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no kernel.message_dropped within {TIMEOUT} s")


def with_poison(part: str, poison: bytes, msg_type: str) -> list[bytes]:
    """The four parts of a `msg_type` request with `poison` as a value inside `part`."""
    parts = {
        "header": dumps(header(msg_type)),
        "parent_header": b"{}",
        "metadata": b"{}",
        "content": dumps({"code": "print('should not run')"}),
    }
    body = parts[part]
    parts[part] = body[:-1] + (b', "x": ' if body != b"{}" else b'{"x": ') + poison + b"}"
    return [parts[name] for name in PARTS]


@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("msg_type", ["kernel_info_request", "execute_request"])
def test_poison_in_any_part_is_refused_and_the_kernel_serves(
    kernel, peer, part, poison, msg_type
) -> None:
    _, client, log_file = kernel
    before = len(log_events(log_file, "kernel.message_dropped"))
    peer.send_parts(*with_poison(part, POISONS[poison], msg_type))
    [dropped] = wait_dropped(log_file, before)
    assert dropped["reason"] == "invalid json" and dropped["channel"] == "shell"
    assert dropped["detail"]
    assert_serves(client)
    assert "should not run" not in json.dumps(log_events(log_file, "program.spawned"))


def test_poison_on_control_is_refused_and_control_serves(kernel) -> None:
    manager, client, log_file = kernel
    control = RawPeer(manager, "control")
    try:
        before = len(log_events(log_file, "kernel.message_dropped"))
        control.send_parts(*with_poison("parent_header", b"NaN", "kernel_info_request"))
        control.send_parts(*with_poison("header", POISONS["deep nesting"], "shutdown_request"))
        dropped = wait_dropped(log_file, before, 2)
        assert {e["channel"] for e in dropped} == {"control"}
        msg_id = control.request("kernel_info_request")
        assert control.reply_to(msg_id, TIMEOUT)["content"]["status"] == "ok"
    finally:
        control.close()
    assert_serves(client)


def test_oversized_and_broken_messages_are_refused(kernel, peer) -> None:
    _, client, log_file = kernel
    before = len(log_events(log_file, "kernel.message_dropped"))
    big = dumps({"code": "x" * (70 * 1024 * 1024)})  # above the 64 MiB message limit
    peer.send_parts(dumps(header("execute_request")), content=big)
    peer.send_parts(dumps(header("execute_request")), content=b'{"code": "\xff\xfe"}')
    peer.send_parts(b"[]", content=b"{}")
    peer.send_parts(dumps({"msg_id": 5, "msg_type": []}))
    peer.send_frames([b"<IDS|MSG>", b"sig"])
    peer.send_frames([b"no delimiter at all"])
    reasons = [e["reason"] for e in wait_dropped(log_file, before, 6)]
    assert reasons == [
        "too large",
        "invalid json",
        "invalid json",
        "invalid header",
        "truncated",
        "no delimiter",
    ]
    assert_serves(client)


def test_a_replayed_signed_message_is_refused(kernel, peer) -> None:
    _, client, log_file = kernel
    code = "from commrouter import program\nprogram.send('/replay', 1)\nprint('ran once')"
    head = header("execute_request")
    content = dumps({"code": code, "silent": False})
    before = len(log_events(log_file, "kernel.message_dropped"))
    frames = peer.send_parts(dumps(head), content=content)
    reply = peer.reply_to(head["msg_id"], TIMEOUT)
    assert reply is not None and reply["content"]["status"] == "ok"
    peer.send_frames(frames)  # the very same signed frames, again
    [dropped] = wait_dropped(log_file, before)
    assert dropped["reason"] == "replayed"
    assert peer.reply_to(head["msg_id"], 0.5) is None
    spawned = [e for e in log_events(log_file, "program.spawned") if "ran once" in str(e["argv"])]
    assert len(spawned) == 1
    assert_serves(client)


@pytest.mark.parametrize(
    "content",
    [
        {"code": "abc", "cursor_pos": 99},
        {"code": "abc", "cursor_pos": -5},
        {"code": "abc", "cursor_pos": "3"},
        {"code": "abc", "cursor_pos": 1e300},
        {"code": 7},
        {},
    ],
)
def test_complete_request_with_any_cursor_is_answered(kernel, peer, content) -> None:
    _, client, _ = kernel
    msg_id = peer.request("complete_request", content)
    reply = peer.reply_to(msg_id, TIMEOUT)
    assert reply is not None and reply["msg_type"] == "complete_reply"
    assert reply["content"]["status"] == "ok"
    assert 0 <= reply["content"]["cursor_start"] == reply["content"]["cursor_end"]
    assert_serves(client)


@pytest.mark.parametrize("msg_type", ["comm_open", "comm_msg", "comm_close", "comm_info_request"])
def test_comm_messages_of_the_wrong_shape_are_answered_or_dropped(kernel, peer, msg_type) -> None:
    _, client, _ = kernel
    for content in ({"comm_id": 5}, {"comm_id": [1], "data": []}, {"target_name": {"a": 1}}):
        peer.send_parts(dumps(header(msg_type)), content=dumps(content))
    assert_serves(client)


def test_the_heartbeat_survives_any_message(kernel) -> None:
    manager, client, _ = kernel
    import zmq

    hb = zmq.Context.instance().socket(zmq.REQ)
    hb.setsockopt(zmq.LINGER, 0)
    hb.connect(f"tcp://127.0.0.1:{manager.hb_port}")
    try:
        for frames in ([b"ping"], [b"two", b"frames"], [b""], [b"x" * 1_000_000]):
            hb.send_multipart(frames)
            assert hb.poll(TIMEOUT * 1000), f"no echo of {len(frames)} frame(s)"
            assert hb.recv_multipart() == frames
    finally:
        hb.close(linger=0)
    assert client.hb_channel.is_beating()
    assert_serves(client)


def test_a_flood_of_refusals_is_logged_within_a_bound(default_kernel) -> None:
    manager, client, log_file = default_kernel
    forger = RawPeer(manager)
    forger.key = b"not the key"
    try:
        before = len(log_events(log_file, "kernel.message_dropped"))
        started = time.monotonic()
        for _ in range(500):
            forger.request("kernel_info_request")
        assert_serves(client)  # handled after the 500 forgeries
        elapsed = time.monotonic() - started
    finally:
        forger.close()
    logged = [e for e in dropped_since(log_file, before) if e["reason"] == "bad signature"]
    assert 1 <= len(logged) <= 20 * (int(elapsed) + 2)  # at most 20 (the default) each second
    assert len(logged) < 500


def test_the_log_throttle_accounts_for_every_refusal(vtime) -> None:
    from commrouter.kernel.throttle import LogThrottle

    throttle = LogThrottle(vtime.clock, limit=3, window=1.0)
    first = [throttle.admit("shell", "bad signature") for _ in range(10)]
    assert [logged for logged, _ in first] == [True] * 3 + [False] * 7
    assert throttle.admit("control", "bad signature") == (True, 0)  # another kind: its own
    vtime.advance(1.0)
    assert throttle.admit("shell", "bad signature") == (True, 7)  # the 7 not logged, reported


def test_secrets_are_never_logged(kernel) -> None:
    """The connection key and a run's link secret appear in no log line, even at debug level
    (the harness's kernel logs at debug), even when the cell prints its secret."""
    manager, client, log_file = kernel
    out: list[str] = []

    def hook(message: dict) -> None:
        if message["msg_type"] == "stream":
            out.append(message["content"]["text"])

    code = "import os\nprint(os.environ['COMMROUTER_LINK_SECRET'])"
    reply = client.execute_interactive(code, timeout=TIMEOUT, output_hook=hook)
    assert reply["content"]["status"] == "ok"
    secret = "".join(out).strip()
    assert len(secret) == 32
    text = log_file.read_text()
    assert "kernel.started" in text and secret not in text
    assert manager.session.key.decode() not in text
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"
