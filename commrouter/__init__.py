"""commrouter: an address/value channel between a Jupyter cell program and the browser.

In a Python notebook (ipykernel): `%load_ext commrouter`, then `commrouter.program` works in
every cell. The embedding facade is `CommRouter`; a host kernel starts it, gives it a
`Publisher`, hands it comm messages and runs cells with `run_program`. See README.md for a tour.

Names are imported on first use, so that `import commrouter.program` (what a cell program
imports) loads only the standard library, never the router's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commrouter.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "CommRouter": "commrouter.embedding",
    "Promise": "commrouter.actors.runtime",
    "PromiseTimeout": "commrouter.actors.runtime",
    "Settings": "commrouter.config",
    "SettingsError": "commrouter.config",
    "load_settings": "commrouter.config",
    "ActorGivenUp": "commrouter.router.errors",
    "CommRouterError": "commrouter.router.errors",
    "FrontEndUnavailable": "commrouter.router.errors",
    "InvalidAddress": "commrouter.router.errors",
    "LinkNotOpen": "commrouter.router.errors",
    "PublishFailed": "commrouter.router.errors",
    "RouterNotRunning": "commrouter.router.errors",
    "ValueNotJSON": "commrouter.router.errors",
    "RealTime": "commrouter.timing",
    "VirtualTime": "commrouter.timing",
    "ProgramLink": "commrouter.transports.interfaces",
    "Publisher": "commrouter.transports.interfaces",
    "ProgramRun": "commrouter.transports.process",
}

__all__ = [
    "ActorGivenUp",
    "CommRouter",
    "CommRouterError",
    "FrontEndUnavailable",
    "InvalidAddress",
    "LinkNotOpen",
    "ProgramLink",
    "ProgramRun",
    "Promise",
    "PromiseTimeout",
    "PublishFailed",
    "Publisher",
    "RealTime",
    "RouterNotRunning",
    "Settings",
    "SettingsError",
    "ValueNotJSON",
    "VirtualTime",
    "__version__",
    "load_ipython_extension",
    "load_settings",
    "unload_ipython_extension",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext commrouter`: host the router in this ipykernel (see `commrouter.ipython`)."""
    from commrouter.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext commrouter`: stop the router hosted in this ipykernel."""
    from commrouter.ipython import unload_ipython_extension as unload

    unload(ipython)


if TYPE_CHECKING:
    from commrouter.actors.runtime import Promise, PromiseTimeout
    from commrouter.config import Settings, SettingsError, load_settings
    from commrouter.embedding import CommRouter
    from commrouter.router.errors import (
        ActorGivenUp,
        CommRouterError,
        FrontEndUnavailable,
        InvalidAddress,
        LinkNotOpen,
        PublishFailed,
        RouterNotRunning,
        ValueNotJSON,
    )
    from commrouter.timing import RealTime, VirtualTime
    from commrouter.transports.interfaces import ProgramLink, Publisher
    from commrouter.transports.process import ProgramRun
