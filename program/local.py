"""The in-process transport of the program link: for a host whose whole session is the program
(commrouter inside ipykernel). Standard library only.

The kernel side (`commrouter.transports.local_link.LocalProgramLink`) makes a `LocalLink` and
the host installs it with `commrouter.program.use_link(link)`; from then on every
`commrouter.program` call in the process goes through it. Requests are handed to the kernel
side as they are made, each with the *parent* of the caller (the request whose output it is:
the running cell, or, in a callback, the cell that subscribed), so every publish is addressed
per request. No pipe, no frame on a wire: frames are still encoded once, to refuse what is not
JSON or is too large exactly as over the pipes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from commrouter.program import wire
from commrouter.program.base import DEFAULT_MAX_FRAME, DEFAULT_TIMEOUT, BaseLink, Subscription
from commrouter.program.errors import LinkClosedError


class OutputContext(Protocol):
    """What the host says about output: whose output the calling thread's is, and how to make
    a thread's output belong to a given parent for a while."""

    def current(self) -> Any:
        """The parent of the caller now (e.g. the execute request of the running cell)."""
        ...

    def activate(self, parent: Any) -> contextlib.AbstractContextManager[Any]:
        """Within the block, this thread's output (print, display) goes to `parent`."""
        ...


class NoOutputContext:
    """A host without parents: every request carries None."""

    def current(self) -> Any:
        return None

    def activate(self, parent: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


Request = Callable[[dict[str, Any], Any], None]


class LocalLink(BaseLink):
    """The program side of an in-process link.

    Args:
        request: called with each request frame (a dict, as in docs/program-link.md) and the
            caller's parent, on the caller's thread; must not block for long.
        output: the host's `OutputContext` (default: no parents).
        timeout: default timeout of `read` and `sync`, seconds.
        max_frame_bytes: largest request accepted, as over the pipes.
        program_id: the program's id in the router.
        kernel_id: the Jupyter kernel's id (the page's widgets name their kernel with it).
        page: the page hub's config for this kernel (JSON), which widgets save with their output.
    """

    def __init__(
        self,
        request: Request,
        *,
        output: OutputContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME,
        program_id: str = "",
        kernel_id: str = "",
        page: str = "",
    ) -> None:
        super().__init__(
            timeout=timeout,
            max_frame_bytes=max_frame_bytes,
            program_id=program_id,
            kernel_id=kernel_id,
            page=page,
        )
        self._request = request
        self._output = output or NoOutputContext()
        self._local = threading.local()  # .parent while a callback runs on this thread

    # ------------------------------------------------------------- the kernel side calls

    def deliver(self, message: dict[str, Any]) -> bool:
        """A message from the kernel (`value` or `sync_ack`). Never blocks: False means the
        callback thread is full and nothing was taken; `on_room` is called when it has room."""
        return self._receive(message, block=False)

    def set_on_room(self, on_room: Callable[[], None]) -> None:
        self._runner.on_room = on_room

    def kernel_closed(self, reason: str) -> None:
        """The kernel side closed the link: waiters fail, listeners end, writes raise."""
        if self._closed is None:
            self._kernel_gone(reason)

    # ---------------------------------------------------------------------- transport

    def close(self) -> None:
        """The program side has nothing of its own to close (the host closes the link)."""

    def current_parent(self) -> Any:
        """The parent a request made now on this thread carries."""
        parent = getattr(self._local, "parent", None)
        return parent if parent is not None else self._output.current()

    def _transmit(self, frame: dict[str, Any], data: bytes) -> None:
        if self._closed is not None:
            raise LinkClosedError(self._closed)
        # a fresh copy, as over the pipes: the router never sees an object the caller may mutate
        self._request(json.loads(data[wire.HEADER :]), self.current_parent())

    def _capture(self) -> Any:
        return self.current_parent()

    @contextlib.contextmanager
    def _callback_scope(self, sub: Subscription) -> Iterator[None]:
        self._local.parent = sub.context
        try:
            with self._output.activate(sub.context):
                yield
        finally:
            self._local.parent = None
