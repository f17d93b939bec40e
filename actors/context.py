"""What every actor is given: settings, time, logging, the publisher and its peers' slots."""

from __future__ import annotations

from collections.abc import Callable
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
    install_html: str  # the rendered install script, published at every install

    def slot(self, name: str) -> Slot:
        return self.slots[name]
