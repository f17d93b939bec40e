"""Subscriptions: the addresses the running program listens to, reset at every program run.

This actor is the authority; the Router's address table is kept in step by RouteAdd /
RouteRemove / RoutesCleared, so the hot path never waits on this actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.context import PROGRAM, ROUTER
from commrouter.actors.runtime import RouterActor
from commrouter.router.messages import (
    ProgramSubscribe,
    ProgramUnsubscribe,
    QuerySubscriptions,
    ResetSubscriptions,
    RouteAdd,
    RouteReady,
    RouteRemove,
    RoutesCleared,
)


@dataclass(slots=True)
class SubscriptionsState:
    program_id: str | None = None
    addresses: set[str] = field(default_factory=set)


class Subscriptions(RouterActor):
    name = "subscriptions"
    state: SubscriptionsState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.router = self.ctx.slot(ROUTER)
        self.program = self.ctx.slot(PROGRAM)

    def handle_ResetSubscriptions(self, m: ResetSubscriptions) -> None:
        st = self.state
        dropped = len(st.addresses)
        st.addresses = set()
        previous, st.program_id = st.program_id, m.program_id
        self.router.tell(RoutesCleared(PROGRAM))
        self.log.info(
            "subscriptions.reset",
            program_id=m.program_id,
            previous_program_id=previous,
            dropped=dropped,
        )

    def handle_ProgramSubscribe(self, m: ProgramSubscribe) -> None:
        """Record the subscription and have the Router confirm the route to the executor, which
        holds the program's later requests until then (so no answer can overtake the route)."""
        st = self.state
        if m.program_id != st.program_id:
            self._stale(m.program_id, m.address, "subscribe")
            self.program.tell(RouteReady(m.program_id))
            return
        if m.address in st.addresses:
            self.log.debug("subscriptions.already", program_id=m.program_id, address=m.address)
            self.program.tell(RouteReady(m.program_id))
            return
        st.addresses.add(m.address)
        self.router.tell(RouteAdd(m.address, PROGRAM, PROGRAM, m.program_id))
        self.log.info("subscriptions.added", program_id=m.program_id, address=m.address)

    def handle_ProgramUnsubscribe(self, m: ProgramUnsubscribe) -> None:
        st = self.state
        if m.program_id != st.program_id:
            self._stale(m.program_id, m.address, "unsubscribe")
            return
        if m.address not in st.addresses:
            self.log.info(
                "subscriptions.not_subscribed", program_id=m.program_id, address=m.address
            )
            return
        st.addresses.discard(m.address)
        self.router.tell(RouteRemove(m.address, PROGRAM))
        self.log.info("subscriptions.removed", program_id=m.program_id, address=m.address)

    def handle_QuerySubscriptions(self, m: QuerySubscriptions) -> None:
        m.reply.resolve(frozenset(self.state.addresses))

    def _stale(self, program_id: str, address: str, what: str) -> None:
        self.log.info(
            "subscriptions.request_dropped",
            reason="program is not running",
            request=what,
            program_id=program_id,
            address=address,
        )
