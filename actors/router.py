"""Router: maps each address to its subscribers and dispatches front-end values.

Private addresses (starting with '#') belong to the protocol and go to the protocol actors;
every other address goes to the subscribers in the table, or is dropped with a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.context import HEARTBEAT
from commrouter.actors.runtime import RouterActor
from commrouter.router.messages import (
    DeliverToProgram,
    FrontEndBatch,
    FrontEndValue,
    PingReceived,
    PongReceived,
    QueryRoutes,
    RouteAdd,
    RouteReady,
    RouteRemove,
    RoutesCleared,
)
from commrouter.router.table import AddressTable


@dataclass(slots=True)
class RouterState:
    table: AddressTable = field(default_factory=AddressTable)
    delivered: int = 0
    dropped: int = 0


class Router(RouterActor):
    name = "router"
    state: RouterState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        heartbeat = self.ctx.slot(HEARTBEAT)
        self.slots = self.ctx.slots
        self.private: dict[str, Callable[[FrontEndValue], None]] = {
            "#heartbeat/ping": lambda m: heartbeat.tell(
                PingReceived(m.comm_id, m.parent, m.msg_id, m.value)
            ),
            "#heartbeat/pong": lambda m: heartbeat.tell(PongReceived(m.comm_id, m.msg_id, m.value)),
        }

    def handle_FrontEndBatch(self, m: FrontEndBatch) -> None:
        for value in m.values:
            self.handle_FrontEndValue(value)

    def handle_FrontEndValue(self, m: FrontEndValue) -> None:
        address = m.address
        if address[0] == "#":
            handler = self.private.get(address)
            if handler is None:
                self.log.info(
                    "router.dropped",
                    reason="unknown private address",
                    address=address,
                    comm_id=m.comm_id,
                    msg_id=m.msg_id,
                    value=m.value,
                )
            else:
                handler(m)
            return
        subscribers = self.state.table.subscribers(address)
        if not subscribers:
            self.state.dropped += 1
            self.log.info(
                "router.dropped",
                reason="no subscriber",
                address=address,
                comm_id=m.comm_id,
                msg_id=m.msg_id,
                value=m.value,
            )
            return
        delivery = DeliverToProgram(address, m.value, m.msg_id, m.read_failed)
        for name in subscribers:
            self.slots[name].tell(delivery)
        self.state.delivered += 1
        self.log.debug("router.delivered", address=address, msg_id=m.msg_id, to=len(subscribers))

    def handle_RouteAdd(self, m: RouteAdd) -> None:
        if self.state.table.add(m.address, m.subscriber):
            self.log.debug(
                "router.route_added",
                address=m.address,
                subscriber=m.subscriber,
                program_id=m.program_id,
            )
        if m.confirm_to is not None:
            self.slots[m.confirm_to].tell(RouteReady(m.program_id))

    def handle_RouteRemove(self, m: RouteRemove) -> None:
        if self.state.table.remove(m.address, m.subscriber):
            self.log.debug("router.route_removed", address=m.address, subscriber=m.subscriber)

    def handle_RoutesCleared(self, m: RoutesCleared) -> None:
        removed = self.state.table.clear_subscriber(m.subscriber)
        self.log.debug("router.routes_cleared", subscriber=m.subscriber, removed=removed)

    def handle_QueryRoutes(self, m: QueryRoutes) -> None:
        m.reply.resolve(self.state.table.snapshot())
