"""The router's `Publisher` in ipykernel: signed IOPub messages through the kernel's session.

Every publish carries the parent the router decided for it (the comm message being answered,
or the cell whose request caused it). It does not use `Comm.send`: ipykernel 7 routes the next
incoming messages of a comm to the subshell of its last publish, which would undo the page's
subshell (see docs/architecture.md, "Hosts").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def parent_header(parent: Any) -> dict[str, Any]:
    """The header of `parent` (a message dict, or a header), or {} for none."""
    if isinstance(parent, Mapping):
        header = parent.get("header", parent)
        return dict(header) if isinstance(header, Mapping) else {}
    return {}


class IPyKernelPublisher:
    """Publishes for the router on `kernel`'s IOPub (thread-safe: ipykernel's IOPub socket
    takes messages from any thread).

    Args:
        kernel: the running `ipykernel` kernel (`get_ipython().kernel`).
        closed: called with a comm id after the router closed that comm, so the host can forget
            the kernel-side comm object.
    """

    def __init__(self, kernel: Any, closed: Callable[[str], None] | None = None) -> None:
        self.kernel = kernel
        self._closed = closed

    def publish(self, msg_type: str, content: Mapping[str, Any], parent: Any) -> None:
        """Send one IOPub message whose parent header is `parent`'s header."""
        session, socket = self.kernel.session, self.kernel.iopub_socket
        if session is None or socket is None:
            raise ConnectionError("the kernel has no IOPub socket (shutting down?)")
        session.send(socket, msg_type, dict(content), parent=parent_header(parent))

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        self.publish("comm_msg", {"comm_id": comm_id, "data": data}, parent)

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Any) -> None:
        self.publish("comm_close", {"comm_id": comm_id, "data": data}, parent)
        if self._closed is not None:
            self._closed(comm_id)

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Any,
    ) -> None:
        transient = {} if display_id is None else {"display_id": display_id}
        content = {"data": dict(data), "metadata": dict(metadata), "transient": transient}
        self.publish("update_display_data" if update else "display_data", content, parent)

    def stream(self, name: str, text: str, parent: Any) -> None:
        self.publish("stream", {"name": name, "text": text}, parent)
