"""A client acting as the front-end on the Jupyter wire, the same for every measured system.

It does what a real front-end must: signs every message it sends (a fresh header each time),
and verifies and decodes every IOPub message it receives (status, stream, comm_msg...), with
`transports/jupyter_wire.py`'s codec. It speaks the front-end link of docs/protocol.md as the
browser hub (frontend/commrouter.js) does: it reads `#comm_open_ack`'s `{stream, seq}`, answers
each numbered `#heartbeat/ping` with a `#heartbeat/pong` carrying the same number, unpacks
batches, tracks the kernel's value numbers (a number already seen is ignored, a gap stops the
message: the kernel sends the rest again) and acknowledges cumulatively with one `#ack` per
received burst (everything one `pump` drained). Toward a kernel that understands them it sends
several values as one batch message. A kernel whose `#comm_open_ack` carries no `seq` (the
ipykernel echo) is unnumbered: its values are taken as they come and nothing is acknowledged.
One thread, one poll loop: nothing in the client adds thread hand-offs to what is measured.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

from commrouter.transports.jupyter_sockets import ConnectionInfo
from commrouter.transports.jupyter_wire import Signer, WireMessage, decode, encode, new_header

PING = "#heartbeat/ping"
PONG = "#heartbeat/pong"
OPEN_ACK = "#comm_open_ack"
ACK = "#ack"

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
        # The kernel's numbered stream (None: unnumbered, until a `#comm_open_ack` with a seq).
        self.stream: str | None = None
        self.received: int | None = None  # highest value number received in order
        self.acked = 0  # highest number acknowledged with #ack
        self.ack_due = False  # something arrived (or a gap) since the last #ack
        self.ack_gap = False  # ... and a message skipped a number: the #ack says `gap`
        self.batches = False  # the kernel accepts front-end batch messages
        # Counters of value traffic (private addresses excluded), for the batching factor.
        self.messages_in = 0  # comm_msgs on our comm that carried values
        self.values_in = 0  # values they carried (duplicates included)
        self.messages_out = 0  # comm_msgs sent that carried values
        self.values_out = 0
        self.duplicates = 0  # numbered values already received (a resend), ignored
        self.gaps = 0  # numbered messages that skipped a number (the rest ignored)
        self.acks_sent = 0

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
        if not address.startswith("#"):
            self.messages_out += 1
            self.values_out += 1

    def comm_send_many(self, address: str, values: Sequence[Any]) -> None:
        """Values sent in one go: one batch message when there are several and the kernel
        accepts batches (as the hub sends what one JS task sent), else one message each."""
        if len(values) > 1 and self.batches:
            batch = [{"address": address, "value": value} for value in values]
            self.send("comm_msg", {"comm_id": self.comm_id, "data": {"batch": batch}})
            self.messages_out += 1
            self.values_out += len(values)
            return
        for value in values:
            self.comm_send(address, value)

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
        if self.ack_due:
            self._ack()
        return handled

    def _ack(self) -> None:
        """One cumulative #ack for what this burst received (again after a gap)."""
        self.ack_due = False
        if self.received is None or self.comm_id is None:
            return
        data: dict[str, Any] = {"address": ACK, "value": self.received}
        if self.ack_gap:
            data["gap"] = True
            self.ack_gap = False
        self.send("comm_msg", {"comm_id": self.comm_id, "data": data})
        self.acked = self.received
        self.acks_sent += 1

    def _iopub(self, message: WireMessage) -> None:
        self.decoded += 1
        msg_type = message.msg_type
        self.by_type[msg_type] = self.by_type.get(msg_type, 0) + 1
        content = message.content
        if msg_type == "comm_msg":
            if content.get("comm_id") != self.comm_id:
                return
            data = content.get("data") or {}
            batch = data.get("batch")
            items = batch if isinstance(batch, list) else [data]
            if any(not str(item.get("address", "")).startswith("#") for item in items):
                self.messages_in += 1
                self.values_in += len(items)
            seq = data.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                for item in items:  # unnumbered: the open ack, pings, an unnumbered kernel
                    self._dispatch(item)
                return
            if self.received is None:
                return  # numbered before any #comm_open_ack said where the stream starts
            self.ack_due = True
            for offset, item in enumerate(items):
                number = seq + offset
                if number <= self.received:
                    self.duplicates += 1
                    continue
                if number != self.received + 1:
                    self.gaps += 1  # the kernel sends it again after our ack saying `gap`
                    self.ack_gap = True
                    return
                self.received = number
                self._dispatch(item)
        elif msg_type == "stream":
            self.stream_tail.append(f"[{content.get('name')}] {content.get('text', '')}")
        elif msg_type == "error":
            self.stream_tail.append(f"[error] {content.get('ename')}: {content.get('evalue')}")

    def _dispatch(self, item: Mapping[str, Any]) -> None:
        address = item.get("address")
        value = item.get("value")
        if address == PING:
            self.comm_send(PONG, value)  # at once, with the ping's number
            self.pings_answered += 1
            return
        if address == PONG:
            return
        if address == OPEN_ACK:
            self._opened(value)
        handler = self.on_comm
        if handler is None or address == OPEN_ACK:
            self.comm_inbox.append((address, value))
        else:
            handler(address, value, time.perf_counter_ns())

    def _opened(self, ack: Any) -> None:
        """`#comm_open_ack`: `{stream, seq}` starts a numbered stream at `seq` (a new stream
        starts where the kernel says; the same one keeps what was received)."""
        if not isinstance(ack, Mapping) or not isinstance(ack.get("seq"), int):
            self.stream, self.received = None, None  # an unnumbered kernel (ipykernel's echo)
            return
        first = ack["seq"]
        if self.stream == ack.get("stream") and self.received is not None:
            self.received = max(self.received, first - 1)
        else:
            self.stream, self.received = ack.get("stream"), first - 1

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
