"""The reference kernel over the real Jupyter wire, driven by jupyter_client."""

from __future__ import annotations

import uuid

import pytest
import zmq
from jupyter_client.session import Session

from tests.kernel_harness import iopub_until, log_events, open_comm, running_kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with running_kernel(tmp_path_factory.mktemp("kernel")) as running:
        yield running


def test_kernel_info(kernel):
    _, client, _ = kernel
    reply = client.kernel_info(reply=True, timeout=30)
    content = reply["content"]
    assert content["status"] == "ok"
    assert content["protocol_version"] == "5.3"
    assert content["implementation"] == "commrouter"
    assert content["language_info"]["name"] == "python"


def test_heartbeat_is_answered(kernel):
    manager, client, _ = kernel
    assert manager.is_alive()
    assert client.hb_channel.is_beating()


def test_comm_open_for_an_unknown_target_gets_comm_close(kernel):
    _, client, _ = kernel
    comm_id = uuid.uuid4().hex
    message = client.session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": "nobody", "data": {}}
    )
    client.shell_channel.send(message)
    seen = iopub_until(client, lambda m: m["msg_type"] == "comm_close")
    assert seen[-1]["content"]["comm_id"] == comm_id


def test_comm_info_lists_the_open_comm(kernel):
    manager, client, _log_file = kernel
    comm_id, _ = open_comm(client, manager)
    reply = client.comm_info(target_name="commrouter", reply=True, timeout=30)
    assert reply["content"]["comms"] == {comm_id: {"target_name": "commrouter"}}


def test_a_message_signed_with_the_wrong_key_is_ignored_and_logged(kernel):
    manager, client, log_file = kernel
    forger = Session(key=b"not-the-key", username="forger")
    honest = Session(key=client.session.key, username="honest")
    context = zmq.Context.instance()
    shell = context.socket(zmq.DEALER)
    shell.connect(f"tcp://127.0.0.1:{manager.shell_port}")
    try:
        forger.send(shell, "kernel_info_request", {})
        honest.send(shell, "kernel_info_request", {})
        # one peer's messages are handled in order: the first reply on this socket answers
        # the honest request, so the forged one before it was dropped (and logged)
        assert shell.poll(30_000), "no reply within 30 s"
        _, reply = honest.recv(shell)
        assert reply["msg_type"] == "kernel_info_reply"
        assert reply["parent_header"]["username"] == "honest"
        dropped = log_events(log_file, "kernel.message_dropped")
        assert [(e["channel"], e["reason"]) for e in dropped] == [("shell", "bad signature")]
        assert not shell.poll(0)  # nothing ever went back for the forged request
    finally:
        shell.close(linger=0)
    assert client.kernel_info(reply=True, timeout=30)["content"]["status"] == "ok"


def test_completion_inspection_and_history_are_answered_empty(kernel):
    """Cells run in fresh processes: nothing to complete, inspect or remember, said at once."""
    _, client, _ = kernel
    complete = client.complete("pri", cursor_pos=3, reply=True, timeout=30)["content"]
    assert complete == {
        "status": "ok",
        "matches": [],
        "cursor_start": 3,
        "cursor_end": 3,
        "metadata": {},
    }
    inspect = client.inspect("print", reply=True, timeout=30)["content"]
    assert inspect["status"] == "ok" and inspect["found"] is False
    history = client.history(reply=True, timeout=30)["content"]
    assert history == {"status": "ok", "history": []}
