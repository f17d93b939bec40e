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
import itertools
import os
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from commrouter.transports.json_edge import NotJSON, loads
from commrouter.transports.json_encode import dumps

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
    # the header as received (verified, strict JSON): a reply's parent_header, not encoded again
    raw_header: bytes = b""

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
        digest = getattr(hashlib, algorithm.replace("-", "_"), None) or algorithm
        # keyed once: each message copies it (as jupyter_client's Session does) instead of
        # deriving the inner and outer keys again
        self._keyed = hmac.new(key, digestmod=digest) if key else None

    def sign(self, parts: Sequence[bytes]) -> bytes:
        """The hex signature over `parts` (the four encoded JSON frames), as they are."""
        if self._keyed is None:
            return b""
        mac = self._keyed.copy()
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
    return WireMessage(
        header, parent, metadata, content, tuple(frames[:split]), tuple(parts[5:]), bytes(raw[0])
    )


# ------------------------------------------------------------------------------- headers
#
# A msg_id need only be unique (the protocol recommends a UUID, jupyter_client's Session sends
# `<session>_<pid>_<n>`): one random prefix per process and a counter, instead of reading the
# OS random source for every message. A forked child draws a new prefix.

_prefix = uuid.uuid4().hex
_counter = itertools.count(1)


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = uuid.uuid4().hex, itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def new_msg_id() -> str:
    """Unique in this process and across processes: `<random hex>_<n>`."""
    return f"{_prefix}_{next(_counter)}"


def new_header(msg_type: str, session: str, username: str = "commrouter") -> dict[str, Any]:
    return {
        "msg_id": new_msg_id(),
        "msg_type": msg_type,
        "session": session,
        "username": username,
        "date": datetime.now(UTC).isoformat(),
        "version": PROTOCOL_VERSION,
    }


_ID, _DATE = "\x00msg_id\x00", "\x00date\x00"  # placeholders; ids and dates need no escaping


class Headers:
    """Encoded headers of one session, from a template per msg_type: the same bytes as
    `dumps(new_header(...))`, with only the msg_id and the date filled in per message."""

    __slots__ = ("_templates", "session", "username")

    def __init__(self, session: str, username: str = "commrouter") -> None:
        self.session = session
        self.username = username
        self._templates: dict[str, tuple[bytes, bytes, bytes]] = {}

    def encoded(self, msg_type: str) -> bytes:
        template = self._templates.get(msg_type)
        if template is None:
            template = self._templates[msg_type] = self._template(msg_type)
        head, middle, tail = template
        msg_id = new_msg_id().encode("ascii")
        return b"".join((head, msg_id, middle, datetime.now(UTC).isoformat().encode(), tail))

    def _template(self, msg_type: str) -> tuple[bytes, bytes, bytes]:
        header = new_header(msg_type, self.session, self.username)
        header.update(msg_id=_ID, date=_DATE)
        text = dumps(header)
        head, rest = text.split(dumps(_ID)[1:-1], 1)
        middle, tail = rest.split(dumps(_DATE)[1:-1], 1)
        return head, middle, tail


# ------------------------------------------------------------------------------ encoding

Part = Mapping[str, Any] | bytes  # bytes: a JSON object already encoded (a template, a header)


def encode_part(obj: Part | None) -> bytes:
    """A JSON part as bytes: encoded once, or as given (bytes), `{}` for None."""
    if obj is None:
        return b"{}"
    if isinstance(obj, bytes):
        return obj
    return dumps(obj)


def encode(
    signer: Signer,
    header: Part,
    content: Part,
    parent_header: Part | None = None,
    metadata: Part | None = None,
    identities: Sequence[bytes] = (),
    buffers: Sequence[bytes] = (),
) -> list[bytes]:
    """The frames of one message, signed. Each JSON part is a mapping, encoded once here, or
    bytes already encoded (used as they are: the caller vouches for them)."""
    parts = [
        encode_part(header),
        encode_part(parent_header),
        encode_part(metadata),
        encode_part(content),
    ]
    return [*identities, DELIMITER, signer.sign(parts), *parts, *buffers]
