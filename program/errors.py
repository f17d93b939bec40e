"""Errors a cell program sees from `commrouter.program`."""

from __future__ import annotations

from collections.abc import Iterable

from commrouter.program.wire import REQUIRED_ENV, FrameTooLarge

__all__ = [
    "FrameTooLarge",
    "LinkClosedError",
    "LinkTimeout",
    "NoPage",
    "NoValue",
    "NotUnderRouter",
    "ProgramLinkError",
    "SyncError",
]


class ProgramLinkError(RuntimeError):
    """Base of the program link's runtime errors."""


class NotUnderRouter(ProgramLinkError):
    """The program was not started by a commrouter kernel: the link's variables are missing."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            "commrouter.program must run under a commrouter kernel (a cell program started by "
            "CommRouter.run_program); missing environment variable(s): "
            + ", ".join(self.missing)
            + f" (all of {', '.join(REQUIRED_ENV)} are needed)"
        )


class LinkClosedError(ProgramLinkError):
    """The kernel closed the program link (the program was finished, or the link failed)."""


class SyncError(ProgramLinkError):
    """The kernel acknowledged a sync with an error (the front-end could not be reached)."""


class NoPage(ProgramLinkError):
    """No page will answer: no browser ever opened this kernel's link (a headless run such as
    nbconvert or papermill). Reads fail with it at once; listeners simply end."""


class NoValue(ProgramLinkError):
    """`read(address)`: the page answered that it holds no value at that address (no widget
    or synced variable there)."""


class LinkTimeout(TimeoutError):
    """No answer from the kernel within the timeout (read or sync)."""
