"""commrouter: an address/value channel between a Jupyter cell program and the browser.

The embedding facade is `CommRouter`; a host kernel starts it, gives it a `Publisher`, hands it
comm messages and tells it when programs start and finish. See README.md for a tour.
"""

from __future__ import annotations

from commrouter.actors.runtime import Promise, PromiseTimeout
from commrouter.config import Settings, SettingsError, load_settings
from commrouter.embedding import CommRouter
from commrouter.router.errors import (
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

__version__ = "0.1.0"

__all__ = [
    "CommRouter",
    "CommRouterError",
    "FrontEndUnavailable",
    "InvalidAddress",
    "LinkNotOpen",
    "ProgramLink",
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
    "load_settings",
]
