"""Hand-made Jupyter wire messages for the hardening tests: any bytes in any part, signed with
the kernel's key (or not), sent on a raw DEALER socket next to the real jupyter_client."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

DELIMITER = b"<IDS|MSG>"
SERVE_TIMEOUT = 30


def header(msg_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": "attacker",
        "username": "attacker",
        "date": "2026-01-01T00:00:00Z",
        "version": "5.3",
        **extra,
    }


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


class RawPeer:
    """A DEALER socket on one of the kernel's ROUTER channels, signing with the kernel's key."""

    def __init__(self, manager: KernelManager, channel: str = "shell") -> None:
        self.key = manager.session.key
        self.session = Session(key=self.key, username="attacker")
        port = getattr(manager, f"{channel}_port")
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://127.0.0.1:{port}")

    def sign(self, parts: list[bytes]) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def send_parts(
        self,
        head: bytes,
        parent: bytes = b"{}",
        metadata: bytes = b"{}",
        content: bytes = b"{}",
        buffers: tuple[bytes, ...] = (),
        flags: int = 0,
    ) -> list[bytes]:
        """Send four JSON parts as given (any bytes), signed; returns the frames sent."""
        parts = [head, parent, metadata, content]
        frames = [DELIMITER, self.sign(parts), *parts, *buffers]
        self.socket.send_multipart(frames, flags)
        return frames

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def request(self, msg_type: str, content: dict[str, Any] | None = None) -> str:
        """A well-formed request; returns its msg_id."""
        head = header(msg_type)
        self.send_parts(dumps(head), content=dumps(content or {}))
        return head["msg_id"]

    def reply_to(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        """The reply whose parent is `msg_id`, or None if none came within `timeout` s."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.socket.poll(int(left * 1000)):
                return None
            _, message = self.session.recv(self.socket, mode=zmq.NOBLOCK)
            if message is not None and message["parent_header"].get("msg_id") == msg_id:
                return message
        return None

    def next_reply(self, timeout: float) -> dict[str, Any] | None:
        """The next reply on this socket, or None if none came within `timeout` s."""
        if not self.socket.poll(int(timeout * 1000)):
            return None
        _, message = self.session.recv(self.socket, mode=zmq.NOBLOCK)
        return message

    def close(self) -> None:
        self.socket.close(linger=0)


def assert_serves(client) -> None:
    """kernel_info is answered and a cell still runs, with its output."""
    assert client.kernel_info(reply=True, timeout=SERVE_TIMEOUT)["content"]["status"] == "ok"
    out: list[str] = []

    def hook(message: dict) -> None:
        if message["msg_type"] == "stream":
            out.append(message["content"]["text"])

    reply = client.execute_interactive("print('alive')", timeout=SERVE_TIMEOUT, output_hook=hook)
    assert reply["content"]["status"] == "ok"
    assert "".join(out) == "alive\n"
