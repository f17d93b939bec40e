"""ProgramExecutor: the running cell program's side of the router.

It owns the current program's link: it gates every request from the program (requests from a
program that is no longer running are dropped with a log line), routes them to the actor that
handles them, and delivers front-end values to the program through a bounded outbox.

Outbox policy (a slow program, a fast front-end): values wait in arrival order. Once
`program.outbox_limit` values wait, a new value for an address that already has one waiting
replaces it (a *merge*: the program sees the newest value, never a stale one); a value for an
address with nothing waiting is still queued, so the outbox stays bounded by the number of
subscribed addresses. Every merge and every drop is counted and logged with its reason.

Real programs (`RunProgram`): the executor creates the named-pipe link (`FifoLink`), spawns the
command with the link's environment variables (`ProgramProcess`), and finishes the program when
its process exited (`ProgramExited`, told by the watcher thread once the rest of the program's
output and requests were drained). The link's pipes and directory are removed whenever the
program is finished, replaced, fails to start, or the router stops (which kills the program).

Lifecycle before data: the link's events and requests, the process's exit and signals come in
the slot's urgent lane (`Slot.tell_urgent`), ahead of the front-end's values queued in the
inbox, so a program killed during a flood is finished at once. If the supervisor gives up on
the executor, `given_up` kills the programs and settles their handles: no run waits forever.
"""

from __future__ import annotations

import json
import os
import signal
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from commrouter.actors.context import CONNECTION, SUBSCRIPTIONS
from commrouter.actors.program_gate import ProgramGate
from commrouter.actors.runtime import RouterActor
from commrouter.frontend.install import page_config
from commrouter.router.display_queue import DisplayQueue, HeldDisplay
from commrouter.router.messages import (
    DeliverToProgram,
    DisplayDue,
    EnsureFrontEnd,
    GatedEvent,
    LinkCheckpoint,
    LinkClosed,
    LinkFault,
    LinkWritable,
    NoPage,
    Parent,
    ProgramContext,
    ProgramDisplay,
    ProgramExited,
    ProgramFinished,
    ProgramRead,
    ProgramSend,
    ProgramSnapshot,
    ProgramStartLink,
    ProgramSubscribe,
    ProgramSync,
    ProgramUnsubscribe,
    PublishWaitingDisplays,
    QueryProgram,
    ReadFailed,
    ResetSubscriptions,
    RouteReady,
    RunProgram,
    SignalProgram,
    StartProgram,
    SyncAck,
    SyncDone,
    ToProgram,
    ValueForProgram,
)
from commrouter.timing import Timer
from commrouter.transports.fifo_link import FifoLink
from commrouter.transports.interfaces import ProgramLink
from commrouter.transports.process import ProgramProcess


def release(st: ExecutorState, log: Any, reason: str) -> None:
    """Close the current link, kill every program still running (its handle is settled by its
    watcher, or here if it had exited already) and remove their pipes."""
    if st.gate is not None:
        st.gate.close()
    if st.link is not None:
        st.link.close()
    runs, st.runs = st.runs, {}
    for process in runs.values():
        process.detach()  # from now on its threads settle the handle themselves
        process.link.close()
        if process.signal(signal.SIGKILL):
            log.warning("program.killed", program_id=process.program_id, reason=reason)
        process.settle_if_exited()


@dataclass(slots=True)
class Pending:
    """One outbox entry; a value entry's `value` is replaced in place by a merge."""

    address: str | None  # None for control messages, which are never merged
    value: Any
    msg_id: str | None = None  # the front-end message the value came in (for the logs)


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
    runs: dict[str, ProgramProcess] = field(default_factory=dict)  # live subprocesses by id
    gate: ProgramGate | None = None  # the running program's link sink (real time only)
    displays: DisplayQueue | None = None  # the program's rich output, at a bounded rate
    display_timer: Timer | None = None


class ProgramExecutor(RouterActor):
    name = "program_executor"
    state: ExecutorState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connection = self.ctx.slot(CONNECTION)
        self.subscriptions = self.ctx.slot(SUBSCRIPTIONS)
        self.limit = self.ctx.settings.program.outbox_limit
        self.page = json.dumps(page_config(self.ctx.kernel_id, self.ctx.settings))
        if self.state.displays is None:  # first incarnation (a restart keeps what waits)
            rate = self.ctx.settings.program.display_messages_per_second
            self.state.displays = DisplayQueue(rate, self.ctx.clock.now())
        self.displays: DisplayQueue = self.state.displays

    # ------------------------------------------------------------------------ lifecycle

    def handle_StartProgram(self, m: StartProgram) -> None:
        self._start(m.program_id, m.link, m.parent)

    def _start(self, program_id: str, link: ProgramLink, parent: Parent) -> None:
        st = self.state
        if st.program_id is not None:
            self._finish("replaced by a new program")
        st.program_id, st.link, st.link_open, st.parent = program_id, link, True, parent
        self.connection.tell(ProgramContext(program_id, parent))
        self.subscriptions.tell(ResetSubscriptions(program_id))
        if self.slot.activity.tracked or not self.ctx.settings.program.direct_sends:
            link.attach(self.slot.tell_urgent)  # virtual time: every event through us
        else:
            st.gate = ProgramGate(program_id, parent, self.slot, self.connection, self.log)
            link.attach(st.gate)
        self.log.info("program.started", program_id=program_id)

    def handle_RunProgram(self, m: RunProgram) -> None:
        settings = self.ctx.settings.program
        if m.program_id in self.state.runs:
            self._spawn_failed(m, ValueError(f"program {m.program_id!r} is already running"))
            return
        try:
            link = FifoLink(
                m.program_id,
                max_frame_bytes=settings.max_frame_bytes,
                inflight_limit=settings.inflight_limit,
                logger=self.log,
            )
        except OSError as error:
            self._spawn_failed(m, error)
            return
        env = dict(os.environ if m.env is None else m.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # a Python program's prints stream as they come
        env.update(
            link.env(settings.read_timeout, settings.sync_timeout, self.ctx.kernel_id, self.page)
        )
        process = ProgramProcess(
            m.run,
            m.argv,
            cwd=m.cwd,
            env=env,
            link=link,
            parent=m.parent,
            publisher=self.ctx.publisher,
            notify=self.slot.tell_urgent,
            drain_timeout=settings.drain_timeout,
            logger=self.log,
            output_rate=settings.output_messages_per_second,
            clock=self.ctx.clock,
        )
        try:
            process.start()
        except Exception as error:  # noqa: BLE001 - a program that cannot start fails its handle
            link.close()
            self._spawn_failed(m, error)
            return
        self.state.runs[m.program_id] = process
        m.run.process = process
        self.log.info("program.spawned", program_id=m.program_id, pid=process.pid, argv=m.argv)
        self._start(m.program_id, link, m.parent)

    def _spawn_failed(self, m: RunProgram, error: BaseException) -> None:
        self.log.error(
            "program.spawn_failed", program_id=m.program_id, argv=m.argv, error=repr(error)
        )
        m.run.fail(error)

    def handle_ProgramExited(self, m: ProgramExited) -> None:
        process = self.state.runs.pop(m.program_id, None)
        self.log.info(
            "program.exited",
            program_id=m.program_id,
            returncode=m.returncode,
            pid=None if process is None else process.pid,
        )
        if m.program_id == self.state.program_id:
            self._finish("exited")
        if process is not None:
            process.link.close()  # already closed unless it was replaced; idempotent
            process.run.settle(m.returncode)

    def handle_SignalProgram(self, m: SignalProgram) -> None:
        process = self.state.runs.get(m.program_id)
        if process is not None and process.signal(m.signum):
            self.log.info("program.signalled", program_id=m.program_id, signum=m.signum)
        else:
            self.log.info(
                "program.signal_ignored",
                program_id=m.program_id,
                signum=m.signum,
                reason="program is not running",
            )

    def on_stop(self) -> None:
        """The router stops: close the current program's link, kill the programs still
        running and remove their pipes."""
        release(self.state, self.log, "router stopping")

    @classmethod
    def given_up(cls, context: Any, state: ExecutorState, log: Any) -> None:
        release(state, log, "program executor given up")

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
        if st.gate is not None:  # before ProgramContext(None): no direct send comes after it
            st.gate.close()
            st.gate = None
        if st.link is not None:
            st.link.close()
        self._publish_waiting_displays()  # its output goes before its cell's reply
        self._drop_outbox(reason)
        st.program_id, st.link, st.link_open, st.parent = None, None, False, None
        if st.held:
            self.log.info(
                "program.request_dropped",
                reason=reason,
                count=len(st.held),
                program_id=program_id,
                dropped=[[type(m).__name__, getattr(m, "address", None)] for m in st.held],
            )
        st.awaiting_routes, st.held = 0, deque()
        self.connection.tell(ProgramContext(None, None))
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
        if not st.awaiting_routes and st.gate is not None:
            st.gate.routes_ready()

    def handle_GatedEvent(self, m: GatedEvent) -> None:
        """An event of the program's link, through its gate: handled as if told directly, then
        reported handled (if its handler raises, the gate never sees it handled and sends no
        more of that program directly)."""
        event = m.event
        self._current = event  # a crash is about the event: its log line, its waiter
        handler = self._handler_for(type(event))
        if handler is None:
            self.log.error("actor.unknown_message", message_type=type(event).__name__)
        else:
            handler(self, event)
        m.gate.handled(self.state.awaiting_routes > 0)

    def _parent(self, m: Any) -> Parent:
        """The parent a request's publishes carry: the request's own (a host that knows whose
        output each request is gives one, e.g. the in-process link), else the parent the
        program was started with (its cell's execute request)."""
        return m.parent if m.parent is not None else self.state.parent

    def _with_parent(self, m: Any) -> Any:
        return m if m.parent is not None else replace(m, parent=self.state.parent)

    def handle_ProgramSend(self, m: ProgramSend) -> None:
        if self._admit(m, "send", m.address):
            self.log.debug(
                "program.send_accepted", address=m.address, program_id=m.program_id, value=m.value
            )
            self.connection.tell(self._with_parent(m))

    def handle_ProgramRead(self, m: ProgramRead) -> None:
        if self._admit(m, "read", m.address):
            self.log.debug("program.read_accepted", address=m.address, program_id=m.program_id)
            self.connection.tell(self._with_parent(m))

    def handle_ProgramSync(self, m: ProgramSync) -> None:
        if self._admit(m, "sync"):
            self.connection.tell(self._with_parent(m))

    def handle_ProgramStartLink(self, m: ProgramStartLink) -> None:
        if self._admit(m, "start"):
            self.connection.tell(self._with_parent(m))

    def handle_ProgramSubscribe(self, m: ProgramSubscribe) -> None:
        if self._admit(m, "subscribe", m.address):
            self.state.awaiting_routes += 1
            self.subscriptions.tell(m)
            self.connection.tell(EnsureFrontEnd(self._parent(m), None, m.program_id))

    def handle_ProgramUnsubscribe(self, m: ProgramUnsubscribe) -> None:
        if self._admit(m, "unsubscribe", m.address):
            self.subscriptions.tell(m)

    def handle_ProgramDisplay(self, m: ProgramDisplay) -> None:
        if not self._admit(m, "display"):
            return
        displays = self.displays
        held = HeldDisplay(m.data, m.metadata, m.display_id, m.update, self._parent(m))
        merged = displays.merged
        for display in displays.offer(held, self.ctx.clock.now()):
            self._publish_display(display)
        if displays.merged > merged:
            self.log.debug(
                "program.display_merged",
                program_id=m.program_id,
                display_id=m.display_id,
                waiting=len(displays.held),
            )
        self._arm_display_timer()

    def handle_DisplayDue(self, m: DisplayDue) -> None:
        self.state.display_timer = None
        for display in self.displays.due(self.ctx.clock.now()):
            self._publish_display(display)
        self._arm_display_timer()

    def handle_PublishWaitingDisplays(self, m: PublishWaitingDisplays) -> None:
        m.reply.resolve(self._publish_waiting_displays())

    def _publish_waiting_displays(self) -> int:
        waiting = self.displays.drain()
        for display in waiting:
            self._publish_display(display)
        return len(waiting)

    def _arm_display_timer(self) -> None:
        st = self.state
        wait = self.displays.wait(self.ctx.clock.now())
        if wait is not None and st.display_timer is None:
            st.display_timer = self.ctx.scheduler.call_later(wait, self.slot, DisplayDue())

    def _publish_display(self, display: HeldDisplay) -> None:
        try:
            self.ctx.publisher.display(
                display.data,
                display.metadata,
                display.display_id,
                update=display.update,
                parent=display.parent,
            )
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "program.display_failed",
                program_id=self.state.program_id,
                display_id=display.display_id,
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

    def handle_LinkCheckpoint(self, m: LinkCheckpoint) -> None:
        """Flow control: every request the link emitted before this one is handled (or held,
        in which case the checkpoint waits behind them)."""
        st = self.state
        if m.program_id == st.program_id and st.awaiting_routes:
            st.held.append(m)
            return
        m.reply.resolve(m.count)

    def handle_LinkWritable(self, m: LinkWritable) -> None:
        if m.program_id == self.state.program_id:
            self._pump()

    def handle_QueryProgram(self, m: QueryProgram) -> None:
        st = self.state
        m.reply.resolve(
            ProgramSnapshot(st.program_id, len(st.outbox), st.merged, st.dropped, st.delivered)
        )

    # ------------------------------------------------------------------ toward the program

    def handle_DeliverToProgram(self, m: DeliverToProgram) -> None:
        st = self.state
        if m.read_failed is not None:
            if st.link_open:  # never merged: a control message, in order with the values
                st.outbox.append(Pending(None, ReadFailed(m.address, m.read_failed)))
                self._pump()
            return
        if not st.link_open:
            st.dropped += 1
            self.log.info(
                "program.value_dropped",
                reason="no program running" if st.program_id is None else "program link closed",
                address=m.address,
                msg_id=m.msg_id,
                program_id=st.program_id,
                value=m.value,
            )
            return
        if (
            not st.outbox
            and st.link is not None
            and st.link.offer(ValueForProgram(m.address, m.value))
        ):
            st.delivered += 1
            self.log.debug(
                "program.delivered", address=m.address, msg_id=m.msg_id, program_id=st.program_id
            )
            return
        waiting = st.waiting.get(m.address)
        if waiting is not None and len(st.outbox) >= self.limit:
            replaced, lost = waiting.msg_id, waiting.value
            waiting.value, waiting.msg_id = m.value, m.msg_id
            st.merged += 1
            self.log.info(
                "program.value_merged",
                reason="outbox full",
                address=m.address,
                msg_id=m.msg_id,
                replaced=replaced,
                program_id=st.program_id,
                outbox=len(st.outbox),
                value=lost,
            )
            return
        entry = Pending(m.address, m.value, m.msg_id)
        st.outbox.append(entry)
        st.waiting[m.address] = entry
        self.log.debug(
            "program.queued",
            address=m.address,
            msg_id=m.msg_id,
            program_id=st.program_id,
            outbox=len(st.outbox),
        )
        self._pump()

    def handle_NoPage(self, m: NoPage) -> None:
        st = self.state
        if st.program_id is None or not st.link_open:
            return
        self.log.info("program.no_page", program_id=st.program_id, reason=m.reason)
        st.outbox.append(Pending(None, m))
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
                self.log.debug(
                    "program.delivered",
                    address=address,
                    msg_id=entry.msg_id,
                    program_id=st.program_id,
                )

    def _drop_outbox(self, reason: str) -> None:
        st = self.state
        dropped = [[e.address, e.msg_id] for e in st.outbox if e.address is not None]
        if dropped:
            st.dropped += len(dropped)
            self.log.warning(
                "program.values_dropped",
                reason=reason,
                count=len(dropped),
                program_id=st.program_id,
                dropped=dropped,
            )
        st.outbox.clear()
        st.waiting.clear()
