"""Links to the outside: the front-end (through the host kernel) and the cell program."""

from __future__ import annotations

from commrouter.transports.interfaces import ProgramLink, Publisher

__all__ = ["ProgramLink", "Publisher"]
