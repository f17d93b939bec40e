"""What every actor is given: settings, time, logging, the publisher and its peers' slots."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from commrouter.actors.runtime import Slot
from commrouter.config import Settings
from commrouter.timing import Clock, Scheduler
from commrouter.transports.interfaces import Publisher

CONNECTION = "connection"
HEARTBEAT = "heartbeat"
SUBSCRIPTIONS = "subscriptions"
PROGRAM = "program_executor"
ROUTER = "router"
SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class ActorContext:
    """Shared, read-only wiring. Peers are reached only through their slots."""

    kernel_id: str
    settings: Settings
    clock: Clock
    scheduler: Scheduler
    logger: Any  # a structlog BoundLogger
    publisher: Publisher
    slots: dict[str, Slot]
    report_crash: Callable[[str, BaseException | None], None]
    # the mime bundle published (transiently) at every install: the install script as text/html,
    # or what the host supplies instead (ipykernel's link widget: a widget view)
    install_display: Mapping[str, Any]

    def slot(self, name: str) -> Slot:
        return self.slots[name]
