"""A client acting as the front-end on the Jupyter wire, the same for every measured system.

It does what a real front-end must: signs every message it sends (a fresh header each time),
and verifies and decodes every IOPub message it receives (status, stream, comm_msg...), with
`transports/jupyter_wire.py`'s codec. It answers the kernel's `#heartbeat/ping` with
`#heartbeat/pong` on the same comm, as commrouter.js does. One thread, one poll loop: nothing
in the client adds thread hand-offs to what is measured.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import zmq

from commrouter.transports.jupyter_sockets import ConnectionInfo
from commrouter.transports.jupyter_wire import Signer, WireMessage, decode, encode, new_header

PING = "#heartbeat/ping"
PONG = "#heartbeat/pong"
OPEN_ACK = "#comm_open_ack"

# (address, value, receive time from perf_counter_ns)
CommHandler = Callable[[str, Any, int], None]


class KernelGone(RuntimeError):
    """The system under test stopped answering within a bounded wait."""


class FrontEnd:
    """One front-end connection (shell DEALER + IOPub SUB) to a kernel.

    Args:
        connection: the connection file's contents.
        describe: called for a short description of the system's state when a wait fails
            (e.g. the tail of its stderr), so a failure says why.
    """

    def __init__(
        self, connection: Mapping[str, Any], describe: Callable[[], str] = lambda: ""
    ) -> None:
        self.info = ConnectionInfo.from_dict(connection)
        self.signer = Signer(self.info.key, self.info.signature_scheme)
        self.session = uuid.uuid4().hex
        self.describe = describe
        self.context = zmq.Context()
        self.shell = self.context.socket(zmq.DEALER)
        self.shell.setsockopt(zmq.LINGER, 0)
        self.shell.connect(self.info.url("shell"))
        self.iopub = self.context.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.LINGER, 0)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(self.info.url("iopub"))
        self.poller = zmq.Poller()
        self.poller.register(self.iopub, zmq.POLLIN)
        self.poller.register(self.shell, zmq.POLLIN)
        self.comm_id: str | None = None
        self.on_comm: CommHandler | None = None  # values on our comm (pings are answered here)
        self.comm_inbox: deque[tuple[str, Any]] = deque(maxlen=10_000)  # when on_comm is None
        self.replies: dict[str, WireMessage] = {}  # shell replies by their request's msg_id
        self.decoded = 0  # IOPub messages verified and decoded
        self.by_type: dict[str, int] = {}
        self.pings_answered = 0
        self.stream_tail: deque[str] = deque(maxlen=40)  # the cells' recent stdout/stderr

    # ----------------------------------------------------------------------- sending

    def send(self, msg_type: str, content: Mapping[str, Any]) -> str:
        """Sign and send one shell message; returns its msg_id."""
        header = new_header(msg_type, self.session, "bench")
        self.shell.send_multipart(encode(self.signer, header, content))
        return header["msg_id"]

    def comm_send(self, address: str, value: Any) -> None:
        """One comm_msg on the open comm, as the browser's `send(address, value)`."""
        data = {"address": address, "value": value}
        self.send("comm_msg", {"comm_id": self.comm_id, "data": data})

    def execute(self, code: str) -> str:
        return self.send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )

    # --------------------------------------------------------------------- receiving

    def pump(self, timeout_ms: int) -> int:
        """Wait at most `timeout_ms` for traffic, then decode everything already there.
        Returns how many messages were handled."""
        handled = 0
        for sock, _ in self.poller.poll(timeout_ms):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                handled += 1
                message = decode(frames, self.signer)  # verify + JSON, as a front-end must
                if sock is self.iopub:
                    self._iopub(message)
                else:
                    parent = message.parent_header.get("msg_id")
                    if parent:
                        self.replies[parent] = message
        return handled

    def _iopub(self, message: WireMessage) -> None:
        self.decoded += 1
        msg_type = message.msg_type
        self.by_type[msg_type] = self.by_type.get(msg_type, 0) + 1
        content = message.content
        if msg_type == "comm_msg":
            if content.get("comm_id") != self.comm_id:
                return
            data = content.get("data") or {}
            address = data.get("address")
            if address == PING:
                self.comm_send(PONG, True)
                self.pings_answered += 1
                return
            handler = self.on_comm
            if handler is None:
                self.comm_inbox.append((address, data.get("value")))
            else:
                handler(address, data.get("value"), time.perf_counter_ns())
        elif msg_type == "stream":
            self.stream_tail.append(f"[{content.get('name')}] {content.get('text', '')}")
        elif msg_type == "error":
            self.stream_tail.append(f"[error] {content.get('ename')}: {content.get('evalue')}")

    def wait_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump until `done()`; KernelGone after `timeout` seconds, saying what was awaited."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = "".join(self.stream_tail)[-2000:]
                raise KernelGone(
                    f"{what}: nothing within {timeout} s. {self.describe()}"
                    + (f"\ncell output:\n{tail}" if tail else "")
                )
            self.pump(max(1, min(100, int(remaining * 1000))))

    def take_comm(self, address: str) -> Any:
        """The first value received at `address` (from the inbox), or raise LookupError."""
        for index, (got, value) in enumerate(self.comm_inbox):
            if got == address:
                del self.comm_inbox[index]
                return value
        raise LookupError(address)

    def has_comm(self, address: str) -> bool:
        return any(got == address for got, _ in self.comm_inbox)

    def reply_to(self, msg_id: str, timeout: float, what: str) -> WireMessage:
        self.wait_until(lambda: msg_id in self.replies, timeout, what)
        return self.replies.pop(msg_id)

    # ------------------------------------------------------------------ conversations

    def connect(self, timeout: float = 60.0) -> None:
        """Wait until the kernel answers kernel_info and IOPub delivers (a SUB socket misses
        what was published before it joined: ask again until a status comes through)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.decoded
            msg_id = self.send("kernel_info_request", {})
            end = time.monotonic() + 0.5
            while time.monotonic() < end and not (msg_id in self.replies and self.decoded > seen):
                self.pump(50)
            if msg_id in self.replies and self.decoded > seen:
                self.replies.clear()
                return
        raise KernelGone(f"no kernel_info_reply and IOPub within {timeout} s. {self.describe()}")

    def open_comm(self, target: str, data: Mapping[str, Any], timeout: float = 30.0) -> str:
        """comm_open as the browser does, then wait for the kernel's `#comm_open_ack`."""
        self.comm_id = uuid.uuid4().hex
        self.send("comm_open", {"comm_id": self.comm_id, "target_name": target, "data": data})
        self.wait_until(lambda: self.has_comm(OPEN_ACK), timeout, f"{OPEN_ACK} for {target}")
        self.take_comm(OPEN_ACK)
        return self.comm_id

    def close(self) -> None:
        self.shell.close(0)
        self.iopub.close(0)
        self.context.term()
