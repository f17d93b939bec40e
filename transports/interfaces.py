"""The two seams the router drives its links through.

`Publisher` is how the router publishes toward the front-end; the host kernel implements it
(comm messages and display data on IOPub), and so do the in-memory transports. It is called
from actor threads, so an implementation must be thread-safe. Raising from a method means the
message was not sent; the router logs it and tells whoever was waiting.

`ProgramLink` is the kernel side of the link to one running cell program. It decodes what the
program sends into `router.messages` requests once, at the edge, and hands them to the sink.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from commrouter.router.messages import LinkEvent, Parent, ToProgram


class Publisher(Protocol):
    """Publishes toward the front-end on behalf of the router (thread-safe)."""

    def comm_msg(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        """Publish comm_msg with `data` on comm `comm_id`."""
        ...

    def comm_close(self, comm_id: str, data: Mapping[str, Any], parent: Parent) -> None:
        """Publish comm_close for comm `comm_id`."""
        ...

    def display(
        self,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        display_id: str | None,
        *,
        update: bool,
        parent: Parent,
    ) -> None:
        """Publish display_data (or update_display_data when `update`), with
        `transient.display_id` set to `display_id` when given."""
        ...

    def stream(self, name: str, text: str, parent: Parent) -> None:
        """Publish a stream message: the running program's output, `name` "stdout" or
        "stderr", `text` as it came (decoded UTF-8)."""
        ...


class ProgramLink(Protocol):
    """The kernel side of the link to one cell program."""

    program_id: str

    def attach(self, sink: Callable[[LinkEvent], None]) -> None:
        """Start delivering decoded program requests and link events to `sink`.

        `sink` is thread-safe and never blocks; the link may call it from its own threads.
        """
        ...

    def offer(self, message: ToProgram) -> bool:
        """Queue `message` for the program without blocking. False means the link is full
        and nothing was taken; the link will emit `LinkWritable` when it has room again."""
        ...

    def close(self) -> None:
        """Stop the link and release what it holds. Idempotent."""
        ...
