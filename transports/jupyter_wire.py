"""The Jupyter wire protocol's multipart messages: decode, verify, sign, encode.

A message on the wire is `[identities..., b"<IDS|MSG>", signature, header, parent_header,
metadata, content, buffers...]`. The signature is the hex HMAC (scheme from the connection
file, `hmac-sha256` by default) over the four JSON parts, keyed with the connection file's
key; an empty key means unsigned. Decoding is done once, here, at the edge: everything past
this module sees a `WireMessage` with decoded, strict JSON (`json_edge.loads`: no NaN or
Infinity, no lone surrogates, nesting at most `json_edge.MAX_DEPTH`), a message at most
`MAX_MESSAGE_BYTES` long, and a signature not seen before (`ReplayGuard`, as jupyter_client's
`Session` keeps a digest history).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from commrouter.transports.json_edge import NotJSON, loads

DELIMITER = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"
_REQUIRED_HEADER = ("msg_id", "msg_type")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # all frames of one incoming message, buffers included
REPLAY_HISTORY = 2**16  # signatures remembered (jupyter_client's Session: digest_history_size)


class WireError(ValueError):
    """A multipart message that cannot be accepted; `reason` is a short, stable phrase."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One decoded message; `identities` route a reply back through a ROUTER socket."""

    header: Mapping[str, Any]
    parent_header: Mapping[str, Any]
    metadata: Mapping[str, Any]
    content: Mapping[str, Any]
    identities: tuple[bytes, ...] = ()
    buffers: tuple[bytes, ...] = field(default=())

    @property
    def msg_type(self) -> str:
        return self.header["msg_type"]

    @property
    def msg_id(self) -> str:
        return self.header["msg_id"]


class Signer:
    """HMAC signing and constant-time verification with the connection file's key."""

    def __init__(self, key: bytes | str, scheme: str = "hmac-sha256") -> None:
        if isinstance(key, str):
            key = key.encode("ascii")
        algorithm = scheme.removeprefix("hmac-")
        if not scheme.startswith("hmac-") or algorithm not in hashlib.algorithms_available:
            raise ValueError(f"unsupported signature scheme {scheme!r}")
        self.key = key
        self._digest = getattr(hashlib, algorithm.replace("-", "_"), None) or algorithm

    def sign(self, parts: Sequence[bytes]) -> bytes:
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=self._digest)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode("ascii")

    def verify(self, signature: bytes, parts: Sequence[bytes]) -> bool:
        if not self.key:
            return True
        return hmac.compare_digest(signature, self.sign(parts))


class ReplayGuard:
    """The signatures of the last `size` accepted messages: a signed message seen before is a
    replay. Oldest first out (jupyter_client culls a random tenth when full; the bound is the
    same, and which entries go is deterministic here). Used by one thread (the IO thread)."""

    __slots__ = ("_seen", "size")

    def __init__(self, size: int = REPLAY_HISTORY) -> None:
        self.size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def check_and_add(self, signature: bytes) -> None:
        if signature in self._seen:
            raise WireError("replayed", "a signature seen before (within the replay history)")
        self._seen[signature] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def decode(
    frames: Sequence[bytes], signer: Signer, replay: ReplayGuard | None = None
) -> WireMessage:
    """Split, verify and decode a multipart message, or raise WireError with the reason."""
    size = sum(len(frame) for frame in frames)
    if size > MAX_MESSAGE_BYTES:
        raise WireError("too large", f"{size} bytes, above the limit of {MAX_MESSAGE_BYTES}")
    try:
        split = list(frames).index(DELIMITER)
    except ValueError:
        raise WireError("no delimiter", f"{len(frames)} frames without <IDS|MSG>") from None
    parts = list(frames[split + 1 :])
    if len(parts) < 5:
        raise WireError("truncated", f"{len(parts)} frames after the delimiter, need 5")
    signature, raw = parts[0], parts[1:5]
    if not signature and signer.key:
        raise WireError("missing signature")
    if not signer.verify(signature, raw):
        raise WireError("bad signature")
    decoded = []
    for name, part in zip(("header", "parent_header", "metadata", "content"), raw, strict=True):
        try:
            decoded.append(loads(part))
        except NotJSON as error:
            raise WireError("invalid json", f"{name}: {error}") from None
    header, parent, metadata, content = decoded
    for name, part in (
        ("header", header),
        ("parent_header", parent),
        ("metadata", metadata),
        ("content", content),
    ):
        if not isinstance(part, dict):
            raise WireError("invalid json", f"{name} is not an object")
    missing = [key for key in _REQUIRED_HEADER if not isinstance(header.get(key), str)]
    if missing:
        raise WireError("invalid header", f"missing {', '.join(missing)}")
    if replay is not None and signer.key:
        replay.check_and_add(signature)
    return WireMessage(header, parent, metadata, content, tuple(frames[:split]), tuple(parts[5:]))


def _dumps(obj: Any) -> bytes:
    return json.dumps(
        obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    ).encode("utf-8")


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray | memoryview):
        raise TypeError("bytes belong in buffers, not in JSON parts")
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


def new_header(msg_type: str, session: str, username: str = "commrouter") -> dict[str, Any]:
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": session,
        "username": username,
        "date": datetime.now(UTC).isoformat(),
        "version": PROTOCOL_VERSION,
    }


def encode(
    signer: Signer,
    header: Mapping[str, Any],
    content: Mapping[str, Any],
    parent_header: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    identities: Sequence[bytes] = (),
    buffers: Sequence[bytes] = (),
) -> list[bytes]:
    """The frames of one message, signed."""
    parts = [_dumps(header), _dumps(parent_header or {}), _dumps(metadata or {}), _dumps(content)]
    return [*identities, DELIMITER, signer.sign(parts), *parts, *buffers]
