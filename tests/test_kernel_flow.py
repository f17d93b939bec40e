"""A real kernel (jupyter_client) and a page whose IOPub reader is slow on purpose: a small
receive high-water mark and a pause per message, while the cell also prints and updates a
progress display every fifth value. Every program value must reach the page, in order, each
once, and the cell's sync() succeed. The kernel keeps its own IOPub traffic within what such a
reader takes (values flow-controlled, prints gathered, display updates rate-bounded); what IOPub
still drops, numbering, acks and resends bring again."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest
import zmq

from commrouter.transports.page_stream import PageStream
from tests.kernel_harness import kernel_id_of, running_kernel

N = 100_000
DEADLINE = 180.0  # real seconds for the whole run (it takes ~10-40 s)
CELL = f"""
    from commrouter import program
    program.display({{'text/plain': 'progress 0'}}, display_id='progress')
    for i in range({N}):
        program.send('/n', i, stream=True)
        if i % 5 == 0:  # other IOPub traffic competing for the high-water mark
            program.update_display('progress', {{'text/plain': f'progress {{i}}'}})
            print('progress', i)
    program.sync(timeout=150)  # a slow page on a loaded machine: within DEADLINE below
    print('synced')
"""


class SlowPage:
    """The page's side over a raw SUB socket with RCVHWM=8 that sleeps after each message."""

    def __init__(self, client: Any, kernel_id: str) -> None:
        self.client = client
        self.kernel_id = kernel_id
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 8)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(f"{client.transport}://{client.ip}:{client.iopub_port}")
        self.numbering = PageStream()
        self.comm_id: str | None = None
        self.values: list[int] = []
        self.messages = self.gaps = self.acks = 0
        self.stderr = ""

    def close(self) -> None:
        self.sub.close(linger=0)
        self.context.term()

    def shell(self, msg_type: str, content: dict[str, Any]) -> None:
        self.client.shell_channel.send(self.client.session.msg(msg_type, content))

    def wait_subscribed(self) -> None:
        """A PUB drops everything before the subscription arrives: wait until it did."""
        deadline = time.monotonic() + 30
        while not self.sub.poll(200):
            assert time.monotonic() < deadline, "the SUB socket never got a message"
            self.client.kernel_info()
        while self.sub.poll(50):
            self.sub.recv_multipart()

    def pump(self, timeout_ms: int) -> None:
        if not self.sub.poll(timeout_ms):
            return
        frames = self.sub.recv_multipart()
        _, frames = self.client.session.feed_identities(frames)
        message = self.client.session.deserialize(frames)
        self.messages += 1
        time.sleep(0.001)  # a slow reader
        msg_type, content = message["msg_type"], message["content"]
        if msg_type == "stream" and content["name"] == "stderr":
            self.stderr += content["text"]
        html = content.get("data", {}).get("text/html", "") if msg_type == "display_data" else ""
        if self.comm_id is None and "data-commrouter-install" in html:
            self.comm_id = "slow-page"
            data = {"kernel_id": self.kernel_id}
            self.shell(
                "comm_open", {"comm_id": self.comm_id, "target_name": "commrouter", "data": data}
            )
        if msg_type != "comm_msg" or content.get("comm_id") != self.comm_id:
            return
        data = content["data"]
        address = data.get("address")
        if address == "#comm_open_ack":
            self.numbering.opened(data["value"])
            return
        if address == "#heartbeat/ping":
            self.comm_msg({"address": "#heartbeat/pong", "value": data["value"]})
            return
        items, gap = self.numbering.accept(data)
        self.gaps += gap
        self.values.extend(item["value"] for item in items if item.get("address") == "/n")
        ack = {"address": "#ack", "value": self.numbering.received}
        self.comm_msg({**ack, "gap": True} if gap else ack)
        self.acks += 1

    def comm_msg(self, data: dict[str, Any]) -> None:
        self.shell("comm_msg", {"comm_id": self.comm_id, "data": data})


@pytest.mark.timeout(DEADLINE + 30)  # the test's own bound, not the suite's default of 120 s
def test_every_program_value_reaches_a_slow_iopub_reader(tmp_path):
    env = {"COMMROUTER_LOG_LEVEL": "info"}
    with running_kernel(tmp_path, env) as (manager, client, log_file):
        page = SlowPage(client, kernel_id_of(manager))
        try:
            page.wait_subscribed()
            msg_id = client.execute(textwrap.dedent(CELL))
            deadline = time.monotonic() + DEADLINE
            reply = None
            while reply is None:
                assert time.monotonic() < deadline, f"no reply; page got {len(page.values)}"
                page.pump(20)
                if client.shell_channel.msg_ready():
                    message = client.get_shell_msg(timeout=1)
                    if message["parent_header"].get("msg_id") == msg_id:
                        reply = message
        finally:
            page.close()
        log = log_file.read_text()
    assert reply["content"]["status"] == "ok", (reply["content"], page.stderr)  # sync() succeeded
    assert page.values == list(range(N))  # every value, in order, each once
    assert "connection.values_dropped" not in log
    print(
        f"\n{N} values over {page.messages} IOPub messages read; {page.gaps} gaps "
        f"(messages lost at the high-water mark, sent again), "
        f"{log.count('connection.resent')} resends, {page.acks} acks"
    )
