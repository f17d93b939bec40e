"""commrouter in a Python notebook: `%load_ext commrouter`, or `commrouter.ipython.load()`.

Loading hosts one router in the running ipykernel (idempotent) and links the kernel session to
it as one program, so `commrouter.program` (send, subscribe, listen, read, sync, display, the
widgets) works in every cell and subscriptions live across cells until unsubscribed, closed, or
the kernel ends. Unloading (`%unload_ext commrouter`, `unload()`) stops it cleanly; the kernel's
exit stops it too. See `commrouter.ipyhost` for the host itself.
"""

from __future__ import annotations

from typing import Any


def load(shell: Any = None) -> Any:
    """Host the router in the running ipykernel (`shell` defaults to `get_ipython()`); returns
    the `commrouter.ipyhost.IPythonHost`. Calling it again returns the running host."""
    from commrouter.ipyhost import load as load_host

    return load_host(shell)


def unload() -> None:
    """Stop the hosted router and unlink the session's program (idempotent)."""
    from commrouter.ipyhost import unload as unload_host

    unload_host()


def load_ipython_extension(ipython: Any) -> None:
    """IPython's hook for `%load_ext commrouter`."""
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """IPython's hook for `%unload_ext commrouter`."""
    unload()
