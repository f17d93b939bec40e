"""The kernel host's publisher in the simulation: `KernelHost`, what it buffers (`Published`),
and the kernel message context (the parent) of a cell run or a host call.

`KernelHost`'s publisher methods are the only part of the simulated ends that the actors call,
from their threads: they only buffer what was published, and the simulation hands it to the
windows once the step is quiet, in its canonical order. A window never answers the router from
inside a publisher call: every answer is a new message that crosses the simulated network at a
later step. That is what keeps runs deterministic. Everything else runs on the simulation's
own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commrouter.frontend import INSTALL_MARKER
from commrouter.router.messages import Parent

#: pykka names an actor's thread "<ClassName>-<n>"; this maps the class to the actor's name.
THREAD_ACTORS = {
    "Connection": "connection",
    "Heartbeat": "heartbeat",
    "Router": "router",
    "Subscriptions": "subscriptions",
    "ProgramExecutor": "program_executor",
    "Supervisor": "supervisor",
}

#: Why a comm no window holds any more, when an injected fault is the cause: a value published


def publishing_actor() -> str:
    """The actor whose thread is calling (from its pykka thread name), else "host"."""
    name = threading.current_thread().name.rsplit("-", 1)[0]
    found = THREAD_ACTORS.get(name)
    if found is None:  # a test's subclass of an actor ("LossyConnection"): its base's name
        found = next((a for c, a in THREAD_ACTORS.items() if name.endswith(c)), "host")
    return found


def cell_parent(msg_id: str, page: str | None) -> dict[str, Any]:
    """The kernel message context of a cell run (or a host call) made from window `page`."""
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": page}}


def parent_session(parent: Parent) -> str | None:
    if not isinstance(parent, Mapping):
        return None
    header = parent.get("header", parent)
    return header.get("session") if isinstance(header, Mapping) else None


@dataclass(frozen=True, slots=True)
class Published:
    """One thing a router published, with the actor that published it."""

    actor: str
    kernel_id: str
    kind: str  # comm_msg, comm_close, display, update, stream
    comm_id: str | None = None
    data: Mapping[str, Any] | None = None
    display_id: str | None = None
    parent: Parent = None


class KernelHost:
    """The `Publisher` of one kernel (router instance): IOPub, broadcast to every window.

    Called from actor threads; only buffers. `Simulation.flush` drains the buffer in its
    canonical order and hands each item to the windows.
    """

    def __init__(self, kernel_id: str, outbox: list[Published], lock: threading.Lock) -> None:
        self.kernel_id = kernel_id
        self._outbox = outbox
        self._lock = lock

    def _put(self, item: Published) -> None:
        with self._lock:
            self._outbox.append(item)

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._put(
            Published(publishing_actor(), self.kernel_id, "comm_msg", comm_id, data, None, parent)
        )

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        self._put(
            Published(publishing_actor(), self.kernel_id, "comm_close", comm_id, data, None, parent)
        )

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Parent,
    ) -> None:
        kind = "update" if update else "display"
        self._put(
            Published(publishing_actor(), self.kernel_id, kind, None, data, display_id, parent)
        )

    def stream(self, name: str, text: str, parent: Parent) -> None:
        data = {"name": name, "text": text}
        self._put(Published(publishing_actor(), self.kernel_id, "stream", None, data, None, parent))


def is_install(data: Mapping[str, Any] | None) -> bool:
    return data is not None and INSTALL_MARKER in str(data.get("text/html", ""))


#: what a display that carries the hub's `connect` holds, in the simulation (the real one holds
#: the hub's source and the kernel's page config)
CONNECT_MARKER = "<!-- commrouter.connect "


def connect_marker(kernel_id: str, program_id: str) -> str:
    """The `connect` a cell's first display carries: the kernel to link, and (for the
    simulation's record of the saved notebook) the program whose display it is."""
    return f"{CONNECT_MARKER}{kernel_id} {program_id} -->"


def connect_of(data: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(kernel id, program id) of the `connect` a display carries, or None."""
    html = str((data or {}).get("text/html", ""))
    at = html.find(CONNECT_MARKER)
    if at < 0:
        return None
    kernel_id, program_id = html[at + len(CONNECT_MARKER) :].split(" ")[:2]
    return kernel_id, program_id
