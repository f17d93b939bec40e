"""Whose output a request is, in ipykernel (the `OutputContext` of the in-process link)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


class KernelOutput:
    """`current()`: the request the calling thread works for, as ipykernel knows it (the
    running cell's execute request on the shell thread; in other threads, the last one).
    `activate(parent)`: within the block, this thread's prints and displays go to `parent`
    (ipykernel's per-thread parent of its output streams and display publisher)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.kernel = shell.kernel

    def current(self) -> Any:
        try:
            parent = self.kernel.get_parent()
        except LookupError:  # a thread that never saw a request, before the first one
            return None
        return parent if parent and parent.get("header") else None

    @contextlib.contextmanager
    def activate(self, parent: Any) -> Iterator[None]:
        if not parent:
            yield
            return
        targets = (sys.stdout, sys.stderr, getattr(self.shell, "display_pub", None))
        tokens = []
        for target in targets:
            set_parent = getattr(target, "set_thread_parent", None)
            if set_parent is not None:
                tokens.append((target, set_parent(parent)))
        try:
            yield
        finally:
            for target, token in reversed(tokens):  # output is buffered per parent already
                target.reset_thread_parent(token)
