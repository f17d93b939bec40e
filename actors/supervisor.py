"""Supervisor: starts the actors in order, restarts one that crashed, stops them in order.

pykka has no supervision of its own: an exception in a `tell` handler stops that actor. Every
commrouter actor reports its crash here (`RouterActor.on_failure`) after parking its unread
inbox in its slot. The Supervisor starts a new incarnation on the same slot, so the durable
state (the slot's `state`) and every peer's and timer's reference survive; the message that
crashed is logged and not retried. Too many restarts of one actor within
`actors.restart_window` seconds of clock time and it gives up on that actor, loudly: its slot
is buried (every message for it is a dead letter, whose waiter fails at once) and the actor
class's `given_up` hook releases what its durable state holds (the executor kills its programs
and settles their handles), so no caller waits on an actor that will never answer.

Stopping: each actor gets `STOP_GRACE` seconds to work through its inbox; one still busy then
(a flood queued ahead of the stop) skips the rest (`Slot.discard`) and stops.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import pykka

from commrouter.actors.context import PROGRAM, ActorContext
from commrouter.actors.runtime import RouterActor, Slot, answer_failure, carried_values
from commrouter.router.errors import ActorGivenUp
from commrouter.router.messages import ActorCrashed, ProgramSync, QueryHealth, SyncDone

STOP_GRACE = 0.5  # seconds an actor may spend on its queued messages once asked to stop


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """One supervised actor: its class and a factory for its durable state."""

    actor_class: type[RouterActor]
    new_state: Any  # zero-argument callable


class Supervisor(RouterActor):
    name = "supervisor"

    def __init__(self, context: ActorContext, slot: Slot, specs: list[ActorSpec]) -> None:
        super().__init__(context, slot)
        self.specs = {spec.actor_class.name: spec for spec in specs}
        self.order = [spec.actor_class.name for spec in specs]
        self.restarts: dict[str, deque[float]] = {name: deque() for name in self.order}
        self.given_up: set[str] = set()
        self.stopping = False

    def on_start(self) -> None:
        for name in self.order:
            slot = self.ctx.slot(name)
            if slot.state is None:
                slot.state = self.specs[name].new_state()
            slot.attach(self.specs[name].actor_class.start(self.ctx, slot))
        self.log.info("supervisor.started", actors=self.order)

    def on_stop(self) -> None:
        self.stopping = True
        timeout = self.ctx.settings.actors.stop_timeout
        for name in reversed(self.order):
            slot = self.ctx.slot(name)
            ref = slot.ref
            slot.detach()
            if ref is not None and ref.is_alive():
                try:
                    self._stop_one(name, slot, ref, timeout)
                except Exception as error:  # noqa: BLE001 - keep stopping the others
                    self.log.error("supervisor.stop_failed", target=name, error=repr(error))
        self.log.info("supervisor.stopped", actors=list(reversed(self.order)))

    def _stop_one(self, name: str, slot: Slot, ref: pykka.ActorRef[Any], timeout: float) -> None:
        stopped = ref.stop(block=False)
        try:
            stopped.get(timeout=min(STOP_GRACE, timeout))
            return
        except pykka.Timeout:
            pass
        slot.discard()
        self.log.warning("supervisor.discarding", target=name, reason="busy when asked to stop")
        stopped.get(timeout=timeout)

    def handle_ActorCrashed(self, m: ActorCrashed) -> None:
        if self.stopping or m.name not in self.specs:
            return
        window = self.ctx.settings.actors.restart_window
        limit = self.ctx.settings.actors.restart_limit
        now = self.ctx.clock.now()
        history = self.restarts[m.name]
        while history and now - history[0] > window:
            history.popleft()
        if len(history) >= limit:
            self.given_up.add(m.name)
            self.log.critical(
                "supervisor.gave_up",
                target=m.name,
                error=m.error,
                restarts=len(history),
                window=window,
            )
            slot = self.ctx.slot(m.name)
            slot.bury(lambda message: self._dead_letter(m.name, message))
            self.specs[m.name].actor_class.given_up(self.ctx, slot.state, self.log)
            return
        history.append(now)
        slot = self.ctx.slot(m.name)
        ref = self.specs[m.name].actor_class.start(self.ctx, slot)
        handed = slot.attach(ref)
        self.log.warning(
            "supervisor.restarted",
            target=m.name,
            error=m.error,
            handed_over=handed,
            restarts=len(history),
        )

    def _dead_letter(self, name: str, message: Any) -> None:
        """A message for an actor given up on: logged, and whoever waits on it is told."""
        error = ActorGivenUp(f"the {name} actor is not running (restarted too often)")
        answer_failure(message, error)
        if isinstance(message, ProgramSync):  # the program waits for its ack: answer it now
            self.ctx.slot(PROGRAM).tell(SyncDone(message.program_id, message.sync_id, str(error)))
        for ids in carried_values(message):  # a batch: one line per value
            self.log.error(
                "supervisor.dead_letter",
                target=name,
                message_type=type(message).__name__,
                comm_id=ids["comm_id"],
                address=ids["address"],
                program_id=ids["program_id"],
                msg_id=ids["msg_id"],
                value=ids["value"],
            )

    def handle_QueryHealth(self, m: QueryHealth) -> None:
        m.reply.resolve({name: name not in self.given_up for name in self.order})
