"""The program link's frames, kernel side: a frame's payload decoded into the router's
messages (`decode_request`, `check_hello`), and a message for the program encoded into a frame
(`encode_for_program`). Framing itself (the length prefix, the size limit) is
`commrouter.program.wire`'s; the ops and the fault reasons are in docs/program-link.md.

Pure functions: `FifoLink` calls them on its I/O thread (decoding) and in `offer` (encoding).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from commrouter.program import wire
from commrouter.router.errors import InvalidAddress
from commrouter.router.messages import (
    FromProgram,
    NoPage,
    ProgramDisplay,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    ReadFailed,
    SyncAck,
    ToProgram,
    ValueForProgram,
)
from commrouter.router.values import check_address
from commrouter.transports.json_edge import NotJSON, loads

# Fault reasons (the `reason` of LinkFault; stable, documented in docs/program-link.md).
BAD_SECRET = "bad secret"
HELLO_EXPECTED = "hello expected"
FRAME_TOO_LARGE = "frame too large"
TRUNCATED = "truncated frame"
MALFORMED = "malformed JSON"
UNKNOWN_OP = "unknown op"
BAD_FIELD = "bad field"
VALUE_TOO_LARGE = "value too large"
VALUE_NOT_JSON = "value not JSON"


class BadFrame(Exception):
    """A well-delimited frame the kernel cannot accept; the link keeps serving."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_payload(payload: bytes) -> dict[str, Any]:
    """The JSON object in one frame's payload (strict: `json_edge.loads`); BadFrame when it is
    not one."""
    try:
        obj = loads(payload)
    except NotJSON as error:
        raise BadFrame(MALFORMED, f"{error}; frame starts {payload[:60]!r}") from None
    if not isinstance(obj, dict):
        raise BadFrame(MALFORMED, f"a frame must hold a JSON object, not {type(obj).__name__}")
    return obj


def _address(obj: Mapping[str, Any], op: str) -> str:
    try:
        return check_address(obj.get("address"))
    except InvalidAddress as error:
        raise BadFrame(BAD_FIELD, f"{op}: {error}") from None


def _mapping(obj: Mapping[str, Any], key: str, op: str, required: bool) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadFrame(BAD_FIELD, f"{op}: {key!r} must be a JSON object, got {value!r:.60}")
    return value


def check_hello(payload: bytes, expected: str) -> int | None:
    """Check the first frame: `hello` with this run's secret (`expected`). Returns the pid it
    announces (None without one); BadFrame when it is not such a hello."""
    try:
        obj = parse_payload(payload)
    except BadFrame as bad:
        raise BadFrame(HELLO_EXPECTED, f"the first frame must be hello: {bad}") from None
    if obj.get("op") != "hello":
        op = f"{obj.get('op')!r:.60}"
        raise BadFrame(HELLO_EXPECTED, f"the first frame must be hello, got op {op}")
    secret = obj.get("secret")
    if not isinstance(secret, str) or not hmac.compare_digest(
        secret.encode("utf-8", "replace"), expected.encode()
    ):
        raise BadFrame(BAD_SECRET, "the hello frame's secret is not this run's")
    pid = obj.get("pid")
    return pid if type(pid) is int else None


def decode_request(program_id: str, obj: Mapping[str, Any]) -> FromProgram:
    """Decode one program -> kernel frame (after hello) into its message, once, at the edge."""
    op = obj.get("op")
    if op == "send":
        address = _address(obj, op)
        if "value" not in obj:
            raise BadFrame(BAD_FIELD, f"send to {address!r}: 'value' is missing")
        return ProgramSend(program_id, address, obj["value"], obj.get("stream") is True)
    if op == "subscribe":
        return ProgramSubscribe(program_id, _address(obj, op))
    if op == "unsubscribe":
        return ProgramUnsubscribe(program_id, _address(obj, op))
    if op == "read":
        return ProgramRead(program_id, _address(obj, op))
    if op == "sync":
        sync_id = obj.get("id")
        if type(sync_id) is not int:
            raise BadFrame(BAD_FIELD, f"sync: 'id' must be an integer, got {sync_id!r:.60}")
        return ProgramSync(program_id, sync_id)
    if op == "start":
        return ProgramStartLink(program_id)
    if op == "display":
        data = _mapping(obj, "data", op, required=True)
        metadata = _mapping(obj, "metadata", op, required=False)
        display_id = obj.get("display_id")
        update = obj.get("update", False)
        if display_id is not None and (not isinstance(display_id, str) or not display_id):
            got = f"{display_id!r:.60}"
            raise BadFrame(BAD_FIELD, f"display: 'display_id' must be a string or null, got {got}")
        if not isinstance(update, bool):
            raise BadFrame(BAD_FIELD, f"display: 'update' must be a boolean, got {update!r:.60}")
        if update and display_id is None:
            raise BadFrame(BAD_FIELD, "display: an update needs a 'display_id'")
        return ProgramDisplay(program_id, data, metadata, display_id, update)
    if op == "hello":
        raise BadFrame(UNKNOWN_OP, "hello is only valid as the first frame")
    raise BadFrame(UNKNOWN_OP, f"op {op!r:.60} is not a program -> kernel op")


def program_frame(message: ToProgram) -> dict[str, Any]:
    """One kernel -> program message as its frame's object (both transports use it)."""
    if isinstance(message, ValueForProgram):
        return {"op": "value", "address": message.address, "value": message.value}
    if isinstance(message, SyncAck):
        return {"op": "sync_ack", "id": message.sync_id, "error": message.error}
    if isinstance(message, NoPage):
        return {"op": "no_page", "reason": message.reason}
    if isinstance(message, ReadFailed):
        return {"op": "read_failed", "address": message.address, "reason": message.reason}
    raise TypeError(f"not a message for the program: {message!r}")


def encode_for_program(message: ToProgram, max_bytes: int) -> bytes:
    """One kernel -> program frame. Raises wire.FrameTooLarge."""
    what = f"value for {message.address!r}" if isinstance(message, ValueForProgram) else "frame"
    return wire.encode(program_frame(message), max_bytes, what)
