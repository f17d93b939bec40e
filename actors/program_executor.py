"""ProgramExecutor: the running cell program's side of the router.

It owns the current program's link: it gates every request from the program (requests from a
program that is no longer running are dropped with a log line), routes them to the actor that
handles them, and delivers front-end values to the program through a bounded outbox.

Outbox policy (a slow program, a fast front-end): values wait in arrival order. Once
`program.outbox_limit` values wait, a new value for an address that already has one waiting
replaces it (a *merge*: the program sees the newest value, never a stale one); a value for an
address with nothing waiting is still queued, so the outbox stays bounded by the number of
subscribed addresses. Every merge and every drop is counted and logged with its reason.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.context import CONNECTION, SUBSCRIPTIONS
from commrouter.actors.runtime import RouterActor
from commrouter.router.messages import (
    DeliverToProgram,
    EnsureFrontEnd,
    LinkClosed,
    LinkFault,
    LinkWritable,
    Parent,
    ProgramDisplay,
    ProgramFinished,
    ProgramRead,
    ProgramSend,
    ProgramSnapshot,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    QueryProgram,
    ResetSubscriptions,
    RouteReady,
    StartProgram,
    SyncAck,
    SyncDone,
    ToProgram,
    ValueForProgram,
)
from commrouter.transports.interfaces import ProgramLink


@dataclass(slots=True)
class Pending:
    """One outbox entry; a value entry's `value` is replaced in place by a merge."""

    address: str | None  # None for control messages, which are never merged
    value: Any


@dataclass(slots=True)
class ExecutorState:
    program_id: str | None = None
    link: ProgramLink | None = None
    link_open: bool = False
    parent: Parent = None
    outbox: deque[Pending] = field(default_factory=deque)
    waiting: dict[str, Pending] = field(default_factory=dict)  # address -> its queued entry
    awaiting_routes: int = 0  # subscribes whose route the Router has not confirmed yet
    held: deque[Any] = field(default_factory=deque)  # requests held until then, in order
    delivered: int = 0
    merged: int = 0
    dropped: int = 0


class ProgramExecutor(RouterActor):
    name = "program_executor"
    state: ExecutorState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connection = self.ctx.slot(CONNECTION)
        self.subscriptions = self.ctx.slot(SUBSCRIPTIONS)
        self.limit = self.ctx.settings.program.outbox_limit

    # ------------------------------------------------------------------------ lifecycle

    def handle_StartProgram(self, m: StartProgram) -> None:
        st = self.state
        if st.program_id is not None:
            self._finish("replaced by a new program")
        st.program_id, st.link, st.link_open, st.parent = m.program_id, m.link, True, m.parent
        self.subscriptions.tell(ResetSubscriptions(m.program_id))
        m.link.attach(self.slot.tell)
        self.log.info("program.started", program_id=m.program_id)

    def handle_ProgramFinished(self, m: ProgramFinished) -> None:
        if m.program_id != self.state.program_id:
            self.log.info(
                "program.finish_ignored", program_id=m.program_id, reason="not the running program"
            )
            return
        self._finish("finished")

    def _finish(self, reason: str) -> None:
        st = self.state
        program_id = st.program_id
        if st.link is not None:
            st.link.close()
        self._drop_outbox(reason)
        st.program_id, st.link, st.link_open, st.parent = None, None, False, None
        if st.held:
            self.log.info(
                "program.request_dropped", reason=reason, count=len(st.held), program_id=program_id
            )
        st.awaiting_routes, st.held = 0, deque()
        self.subscriptions.tell(ResetSubscriptions(None))
        self.log.info("program.finished", program_id=program_id, reason=reason)

    # --------------------------------------------------------------- requests from the program

    def _admit(self, m: Any, request: str, address: str | None = None) -> bool:
        """True if `m` is to be handled now: it comes from the running program, and no earlier
        subscribe of that program still waits for its route (else it is held, in order)."""
        st = self.state
        if m.program_id != st.program_id:
            self.log.info(
                "program.request_dropped",
                reason="program is not running",
                request=request,
                program_id=m.program_id,
                address=address,
            )
            return False
        if st.awaiting_routes:
            st.held.append(m)
            return False
        return True

    def handle_RouteReady(self, m: RouteReady) -> None:
        st = self.state
        if m.program_id != st.program_id or not st.awaiting_routes:
            return
        st.awaiting_routes -= 1
        if st.awaiting_routes:
            return
        held, st.held = st.held, deque()
        for request in held:  # a held subscribe raises the barrier again for those after it
            self._handler_for(type(request))(self, request)

    def handle_ProgramSend(self, m: ProgramSend) -> None:
        if self._admit(m, "send", m.address):
            self.connection.tell(m)

    def handle_ProgramRead(self, m: ProgramRead) -> None:
        if self._admit(m, "read", m.address):
            self.connection.tell(m)

    def handle_ProgramSync(self, m: ProgramSync) -> None:
        if self._admit(m, "sync"):
            self.connection.tell(m)

    def handle_ProgramStartLink(self, m: ProgramStartLink) -> None:
        if self._admit(m, "start"):
            self.connection.tell(m)

    def handle_ProgramSubscribe(self, m: ProgramSubscribe) -> None:
        if self._admit(m, "subscribe", m.address):
            self.state.awaiting_routes += 1
            self.subscriptions.tell(m)
            self.connection.tell(EnsureFrontEnd(self.state.parent, None, m.program_id))

    def handle_ProgramUnsubscribe(self, m: ProgramUnsubscribe) -> None:
        if self._admit(m, "unsubscribe", m.address):
            self.subscriptions.tell(m)

    def handle_ProgramDisplay(self, m: ProgramDisplay) -> None:
        if not self._admit(m, "display"):
            return
        try:
            self.ctx.publisher.display(
                m.data, m.metadata, m.display_id, update=m.update, parent=self.state.parent
            )
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "program.display_failed",
                program_id=m.program_id,
                display_id=m.display_id,
                error=repr(error),
            )

    def handle_LinkClosed(self, m: LinkClosed) -> None:
        st = self.state
        if m.program_id != st.program_id or not st.link_open:
            return
        st.link_open = False
        self.log.info("program.link_closed", program_id=m.program_id, reason=m.reason)
        self._drop_outbox("program link closed")

    def handle_LinkFault(self, m: LinkFault) -> None:
        self.log.warning(
            "program.link_fault", program_id=m.program_id, reason=m.reason, detail=m.detail
        )

    def handle_LinkWritable(self, m: LinkWritable) -> None:
        if m.program_id == self.state.program_id:
            self._pump()

    def handle_QueryProgram(self, m: QueryProgram) -> None:
        st = self.state
        m.reply.resolve(ProgramSnapshot(st.program_id, len(st.outbox), st.merged, st.dropped))

    # ------------------------------------------------------------------ toward the program

    def handle_DeliverToProgram(self, m: DeliverToProgram) -> None:
        st = self.state
        if not st.link_open:
            st.dropped += 1
            self.log.info(
                "program.value_dropped",
                reason="no program running" if st.program_id is None else "program link closed",
                address=m.address,
                msg_id=m.msg_id,
                program_id=st.program_id,
            )
            return
        if (
            not st.outbox
            and st.link is not None
            and st.link.offer(ValueForProgram(m.address, m.value))
        ):
            st.delivered += 1
            return
        waiting = st.waiting.get(m.address)
        if waiting is not None and len(st.outbox) >= self.limit:
            waiting.value = m.value
            st.merged += 1
            self.log.info(
                "program.value_merged",
                reason="outbox full",
                address=m.address,
                msg_id=m.msg_id,
                program_id=st.program_id,
                outbox=len(st.outbox),
            )
            return
        entry = Pending(m.address, m.value)
        st.outbox.append(entry)
        st.waiting[m.address] = entry
        self._pump()

    def handle_SyncDone(self, m: SyncDone) -> None:
        st = self.state
        if m.program_id != st.program_id or not st.link_open:
            self.log.info(
                "program.sync_dropped",
                reason="program is not running",
                program_id=m.program_id,
                sync_id=m.sync_id,
            )
            return
        st.outbox.append(Pending(None, SyncAck(m.sync_id, m.error)))
        self._pump()

    def _pump(self) -> None:
        st = self.state
        link, outbox, waiting = st.link, st.outbox, st.waiting
        if link is None:
            return
        while outbox:
            entry = outbox[0]
            address = entry.address
            message: ToProgram = (
                entry.value if address is None else ValueForProgram(address, entry.value)
            )
            if not link.offer(message):
                return
            outbox.popleft()
            if address is not None:
                st.delivered += 1
                if waiting.get(address) is entry:
                    del waiting[address]

    def _drop_outbox(self, reason: str) -> None:
        st = self.state
        values = sum(1 for e in st.outbox if e.address is not None)
        if values:
            st.dropped += values
            self.log.warning(
                "program.values_dropped", reason=reason, count=values, program_id=st.program_id
            )
        st.outbox.clear()
        st.waiting.clear()
