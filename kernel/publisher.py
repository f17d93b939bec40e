"""The kernel's `Publisher`: the router's publishes become signed IOPub messages.

Each message is encoded once: the header from the session's template (`Headers`), the parent
header as it was received (`WireMessage.raw_header`: verified, strict JSON, not encoded again),
empty metadata as a constant, and the content with `json_encode.dumps` (orjson when installed).
The status pair around every shell message (`status`) has its content from a constant as well,
so that a busy/idle pair costs two header templates, two HMACs and two sends.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from commrouter.transports.jupyter_sockets import KernelSockets
from commrouter.transports.jupyter_wire import (
    DELIMITER,
    Headers,
    Part,
    WireMessage,
    encode,
    encode_part,
)

_EMPTY = b"{}"
_STATUS_IDENTITY = b"status"
# execution_state -> the encoded content of a status message
_STATUS = {
    state: b'{"execution_state":"%s"}' % state.encode() for state in ("busy", "idle", "starting")
}


class KernelPublisher:
    """Thread-safe: every publish is encoded here and handed to the IO thread."""

    def __init__(self, sockets: KernelSockets, session: str) -> None:
        self.sockets = sockets
        self.session = session
        self.headers = Headers(session)
        self._current: WireMessage | None = None  # the execute_request being run
        self._lock = threading.Lock()

    def set_current(self, message: WireMessage | None) -> None:
        with self._lock:
            self._current = message

    def publish(self, msg_type: str, content: Mapping[str, Any], parent: Any = None) -> None:
        """Publish any IOPub message; `parent` is a WireMessage, a header, or None (the
        current execution)."""
        frames = encode(
            self.sockets.signer,
            self.headers.encoded(msg_type),
            content,
            self._parent_header(parent),
            identities=[msg_type.encode("ascii")],
        )
        self.sockets.send("iopub", frames)

    def status(self, state: str, parent: Any = None) -> None:
        """`status` with `execution_state` busy, idle or starting: content from a constant."""
        content = _STATUS.get(state)
        if content is None:
            self.publish("status", {"execution_state": state}, parent)
            return
        parent_header = encode_part(self._parent_header(parent))
        parts = [self.headers.encoded("status"), parent_header, _EMPTY, content]
        frames = [_STATUS_IDENTITY, DELIMITER, self.sockets.signer.sign(parts), *parts]
        self.sockets.send("iopub", frames)

    def _parent_header(self, parent: Any) -> Part:
        if parent is None:
            with self._lock:
                parent = self._current
            if parent is None:
                return _EMPTY
        if isinstance(parent, WireMessage):
            return parent.raw_header or parent.header
        if isinstance(parent, Mapping):
            return parent.get("header", parent)
        return _EMPTY

    # ----------------------------------------------------------- the Publisher protocol

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        self.publish("comm_msg", {"comm_id": comm_id, "data": data}, parent)

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        self.publish("comm_close", {"comm_id": comm_id, "data": data}, parent)

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Any,
    ) -> None:
        content: dict[str, Any] = {"data": data, "metadata": metadata, "transient": {}}
        if display_id is not None:
            content["transient"] = {"display_id": display_id}
        self.publish("update_display_data" if update else "display_data", content, parent)

    def stream(self, name: str, text: str, parent: Any) -> None:
        self.publish("stream", {"name": name, "text": text}, parent)
