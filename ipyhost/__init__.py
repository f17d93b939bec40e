"""commrouter inside ipykernel: the host behind `%load_ext commrouter`.

`IPythonHost` hosts one `CommRouter` in the running ipykernel through the public facade: a
publisher on the kernel's IOPub with an explicit parent per publish, the `commrouter` comm
target registered with the `comm` package, and an in-process program link so that
`commrouter.program` works in every cell (the whole kernel session is one program). `load()` and
`unload()` (also `commrouter.ipython.load()`, `%load_ext commrouter`) manage the one host of the
process.
"""

from __future__ import annotations

from commrouter.ipyhost.host import IPythonHost, current_host, load, unload
from commrouter.ipyhost.output import KernelOutput
from commrouter.ipyhost.publisher import IPyKernelPublisher

__all__ = ["IPyKernelPublisher", "IPythonHost", "KernelOutput", "current_host", "load", "unload"]
