"""The kernel's `Publisher`: the router's publishes become signed IOPub messages."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from commrouter.transports.jupyter_sockets import KernelSockets
from commrouter.transports.jupyter_wire import WireMessage, encode, new_header


class KernelPublisher:
    """Thread-safe: every publish is encoded here and handed to the IO thread."""

    def __init__(self, sockets: KernelSockets, session: str) -> None:
        self.sockets = sockets
        self.session = session
        self._current: WireMessage | None = None  # the execute_request being run
        self._lock = threading.Lock()

    def set_current(self, message: WireMessage | None) -> None:
        with self._lock:
            self._current = message

    def publish(self, msg_type: str, content: Mapping[str, Any], parent: Any = None) -> None:
        """Publish any IOPub message; `parent` is a WireMessage, a header, or None (the
        current execution)."""
        header = new_header(msg_type, self.session)
        frames = encode(
            self.sockets.signer,
            header,
            content,
            self._parent_header(parent),
            identities=[msg_type.encode("ascii")],
        )
        self.sockets.send("iopub", frames)

    def _parent_header(self, parent: Any) -> Mapping[str, Any]:
        if isinstance(parent, WireMessage):
            return parent.header
        if isinstance(parent, Mapping):
            return parent.get("header", parent)
        with self._lock:
            return self._current.header if self._current is not None else {}

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
