"""Connection: the front-end link. One window per open comm (each tab or view that opened it),
each with its own outbox, acknowledgements and liveness (router/page_window.py).

This module holds what arrives from the page (comm_open, comm_msg, comm_close) and the host's
requests; `PageLiveness` (actors/page_liveness.py) installs the page, probes silent windows and
removes dead ones; `PageFlow` (actors/page_flow.py) moves everything headed for the page;
`PageSharing` (actors/page_sharing.py) keeps the windows on one state (relays, the snapshot,
reads). Together they are the seed's comms.State minus heartbeat and subscriptions: HandleOpen,
HandleMsg, Close, InstallWebSocket, Send and the program's send/read/sync requests
(docs/protocol.md, "Windows").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.context import HEARTBEAT, PROGRAM, ROUTER
from commrouter.actors.page_flow import PageFlow
from commrouter.actors.page_liveness import OPEN_ACK, PageLiveness
from commrouter.actors.page_sharing import PageSharing
from commrouter.actors.runtime import Promise, RouterActor
from commrouter.router.errors import LinkNotOpen
from commrouter.router.messages import (
    CloseLink,
    CommCloseReceived,
    CommMsgReceived,
    CommOpenReceived,
    EnsureFrontEnd,
    FrontEndBatch,
    FrontEndValue,
    HeartbeatRequest,
    LinkSnapshot,
    Parent,
    Probe,
    ProgramSend,
    ProgramStartLink,
    QueryLink,
)
from commrouter.router.page_outbox import PageOutbox
from commrouter.router.page_window import LastValues, ReadTrack, SyncTrack, Window
from commrouter.timing import Timer, TokenBucket

ACK = "#ack"
PROBE_BACKSTOP = 1.5  # a ping ends at the latest after this many ceiling timeouts


@dataclass(slots=True)
class ConnectionState:
    """Durable: survives a restart of the Connection actor."""

    windows: dict[str, Window] = field(default_factory=dict)  # comm id -> window, oldest first
    parked: PageOutbox | None = None  # what is owed while no window is open
    gone: dict[str, tuple[float, Window | None]] = field(default_factory=dict)  # closed comms
    removed: dict[str, Window] = field(default_factory=dict)  # removed untold, may speak again
    installed: bool = False
    display_id: str | None = None
    display_parent: Parent = None
    last_heard: float | None = None  # from any window
    installing: bool = False  # install script published, waiting for comm_open
    install_seq: int = 0
    install_timer: Timer | None = None
    probe_parent: Parent = None
    waiters: list[Promise[bool]] = field(default_factory=list)
    ever_opened: bool = False
    installed_at: float | None = None  # when the install script was last published
    program_id: str | None = None
    program_parent: Parent = None
    last_parent: Parent = None  # of the latest request: where output goes that has no cell
    # toward the page (actors/page_flow.py); the actor creates these
    bucket: TokenBucket = None  # type: ignore[assignment]
    last_values: LastValues = None  # type: ignore[assignment]
    syncs: dict[tuple[str, int], SyncTrack] = field(default_factory=dict)
    reads: dict[str, ReadTrack] = field(default_factory=dict)  # address -> windows asked
    flush_scheduled: bool = False
    drain_scheduled: bool = False  # a DrainDue is on its way (PageFlow._enqueue)
    expiry_timer: Timer | None = None
    headless: bool = False
    warned_headless: bool = False
    not_shown: int = 0
    merged: int = 0
    dropped: int = 0
    resent: int = 0
    relayed: int = 0
    origins: int = 0  # the last number given to an entry (its copies share it)


class Connection(PageFlow, PageSharing, PageLiveness, RouterActor):
    name = "connection"
    state: ConnectionState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        settings = self.ctx.settings
        self.target_name = settings.connection.target_name
        self.threshold = settings.heartbeat.request_threshold
        self.dead_after = settings.heartbeat.dead_after
        self.probe_backstop = PROBE_BACKSTOP * max(
            settings.heartbeat.timeout_ceiling, settings.heartbeat.timeout
        )
        self.wait_timeout = settings.connection.wait_for_connection_timeout
        self.grace = settings.connection.replaced_grace
        self.queue_max_age = settings.connection.queue_max_age
        self.window_size = settings.flow.window
        self.queue_limit = settings.connection.queue_limit
        self.ack_timeout = settings.flow.ack_timeout
        self.ack_timeout_ceiling = max(settings.flow.ack_timeout_ceiling, self.ack_timeout)
        self.publisher = self.ctx.publisher
        self.router = self.ctx.slot(ROUTER)
        self.heartbeat = self.ctx.slot(HEARTBEAT)
        self.program = self.ctx.slot(PROGRAM)
        self.clock = self.ctx.clock
        st = self.state
        if st.bucket is None:  # first incarnation (a restart keeps them)
            rate = settings.flow.max_messages_per_second
            st.bucket = TokenBucket(rate, rate / 4, self.clock.now())
            st.last_values = LastValues(settings.connection.snapshot_limit)
            st.headless = settings.connection.headless

    def on_failure(self, *exc_info: Any) -> None:
        """A program's value lost with the message that crashed: its next sync says so."""
        failed = self._current
        if isinstance(failed, ProgramSend) and failed.program_id is not None:
            outbox = self._outboxes()[0]  # (one outbox: a sync sums what its outboxes lost)
            lost = outbox.unsynced.setdefault(failed.program_id, Counter())
            lost[failed.address] += 1
        super().on_failure(*exc_info)

    # ------------------------------------------------------------------ from the front-end

    def handle_CommOpenReceived(self, m: CommOpenReceived) -> None:
        content = m.content
        comm_id = content.get("comm_id") if isinstance(content, Mapping) else None
        reason = self._open_rejection(content, comm_id)
        if reason is not None:
            self.log.info(
                "connection.open_ignored", reason=reason, comm_id=comm_id, msg_id=m.msg_id
            )
            return
        assert isinstance(content, Mapping) and isinstance(comm_id, str)
        resume = _resume_of(content.get("data"))
        self._open(comm_id, resume, m.parent, m.msg_id, m.concurrent)

    def _open(
        self,
        comm_id: str,
        resume: tuple[str, int] | None,
        parent: Parent,
        msg_id: str | None,
        concurrent: bool,
    ) -> Window | None:
        """Open window `comm_id` (docs/protocol.md, comm_open); None if the ack could not be
        published."""
        st = self.state
        replaced, outbox = self._outbox_for(comm_id, resume)
        resumed = resume is not None and outbox.stream == resume[0]
        if resumed:
            assert resume is not None
            self._settled(outbox.ack(resume[1]))
        self._erase_install_display(parent)
        ack = {"stream": outbox.stream, "seq": outbox.first_unacked()}
        try:
            self.publisher.comm_msg(comm_id, {"address": OPEN_ACK, "value": ack}, parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what=OPEN_ACK, comm_id=comm_id, error=repr(error)
            )
            return None
        now = self.clock.now()
        if replaced is not None:
            self._forget(replaced, parent, comm_id)
        if outbox is st.parked:
            st.parked = None
        window = Window(comm_id, outbox, now, now, concurrent, ack_backoff=self.ack_timeout)
        if replaced is not None:
            window.ack_rtts, window.ack_backoff = replaced.ack_rtts, replaced.ack_backoff
        self._admit(window)
        if replaced is not None and replaced.comm_id != comm_id:
            st.gone[replaced.comm_id] = (now, window)  # its acks count for the new comm
        st.last_heard = now
        st.ever_opened, st.headless = True, False
        self.log.info(
            "connection.opened",
            comm_id=comm_id,
            msg_id=msg_id,
            next_seq=ack["seq"],
            windows=len(st.windows),
            resumed=resumed,
        )
        self._settle_waiters(True)
        self._resend(window, "a new comm opened")
        if not resumed:
            self._snapshot(window)
        self._pump(parent)
        return window

    def _admit(self, window: Window) -> None:
        """`window` is open: in the table, no longer gone, and the install is over."""
        st = self.state
        st.windows[window.comm_id] = window
        st.gone.pop(window.comm_id, None)
        st.removed.pop(window.comm_id, None)
        window.outbox.owner = window.comm_id
        st.installed = True
        self._stop_install()
        if st.expiry_timer is not None:
            st.expiry_timer.cancel()
            st.expiry_timer = None

    def _outbox_for(
        self, comm_id: str, resume: tuple[str, int] | None
    ) -> tuple[Window | None, PageOutbox]:
        """The window a comm_open takes over (the same comm again, or the same page's earlier
        comm: its `resume` names that window's stream) and the outbox the new window gets:
        that window's, else what waits while no window is open, else a new one."""
        st = self.state
        same = st.windows.get(comm_id)
        if same is not None:
            return same, same.outbox
        if resume is not None:  # an open window's page, or a dormant one's, reconnecting
            for window in (*st.windows.values(), *filter(self._dormant, st.removed.values())):
                if window.outbox.stream == resume[0]:
                    return window, window.outbox
        if not st.windows and st.parked is not None:
            return None, st.parked
        return None, self._new_outbox()

    def _new_outbox(self) -> PageOutbox:
        return PageOutbox(self.window_size, self.queue_limit)

    def _open_rejection(self, content: Any, comm_id: Any) -> str | None:
        if not isinstance(content, Mapping):
            return "content missing"
        if not isinstance(comm_id, str) or not comm_id:
            return "comm_id missing"
        target = content.get("target_name")
        if target != self.target_name:
            return f"target_name {target!r} is not {self.target_name!r}"
        data = content.get("data")
        kernel_id = data.get("kernel_id") if isinstance(data, Mapping) else None
        if kernel_id != self.ctx.kernel_id:
            return f"kernel_id {kernel_id!r} is not this kernel's"
        return None

    def handle_CommMsgReceived(self, m: CommMsgReceived) -> None:
        content = m.content
        st = self.state
        if not isinstance(content, Mapping):
            return self._drop_msg("content missing", None, m.msg_id)
        comm_id = content.get("comm_id")
        data = content.get("data")
        if not comm_id:
            return self._refuse("comm_id missing", None, m.msg_id, data)
        if not isinstance(comm_id, str):
            return self._refuse("comm_id is not a string", repr(comm_id)[:80], m.msg_id, data)
        if not isinstance(data, Mapping):
            return self._drop_msg("data missing", comm_id, m.msg_id)
        window = st.windows.get(comm_id)
        if window is None and comm_id in st.removed:
            window = self._take_back(comm_id, m)
        successor = window
        if window is None:
            gone = st.gone.get(comm_id)
            if gone is None or self.clock.now() - gone[0] > self.grace:
                return self._refuse("comm_id is not an open comm", comm_id, m.msg_id, data, True)
            successor = gone[1] if gone[1] is not None and gone[1] in st.windows.values() else None
            self.log.info(
                "connection.received_on_replaced",
                comm_id=comm_id,
                msg_id=m.msg_id,
                address=_address_of(data),
            )
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else (data,)
        values: list[FrontEndValue] = []
        for item in items:
            value = self._item(item, comm_id, window, successor, m)
            if value is not None:
                values.append(value)
        if len(values) == 1:
            self.router.tell(values[0])
        elif values:
            self.router.tell(FrontEndBatch(tuple(values)))
        if values:
            self._relay(values, successor)
        return None

    def _item(
        self,
        item: Any,
        comm_id: str,
        window: Window | None,
        successor: Window | None,
        m: CommMsgReceived,
    ) -> FrontEndValue | None:
        """Check one value of a message; acks and read failures are ours, the rest goes to
        the Router."""
        if not isinstance(item, Mapping):
            self._drop_msg("batch item is not an object", comm_id, m.msg_id)
            return None
        address = item.get("address")
        if not isinstance(address, str) or not address:
            self._drop_msg("address missing", comm_id, m.msg_id)
            return None
        failed = item.get("read_failed")
        if "value" not in item and not isinstance(failed, str):
            self._drop_msg("value missing", comm_id, m.msg_id, address)
            return None
        if window is not None:
            self._heard(window)
        if isinstance(failed, str) and "value" not in item:
            self.log.info("connection.read_failed", address=address, comm_id=comm_id, reason=failed)
            if self._ask_another_window(address, comm_id):
                return None
            return FrontEndValue(address, None, comm_id, m.parent, m.msg_id, failed)
        value = item["value"]
        if address == ACK:
            if successor is not None:
                self._on_ack(successor, value, m.msg_id, item.get("gap") is True)
            return None
        self.log.debug(
            "connection.received", address=address, comm_id=comm_id, msg_id=m.msg_id, value=value
        )
        if address[0] != "#":
            self.state.reads.pop(address, None)  # whatever window answered, the read is done
        return FrontEndValue(address, value, comm_id, m.parent, m.msg_id)

    def _refuse(
        self, reason: str, comm_id: Any, msg_id: str | None, data: Any, loud: bool = False
    ) -> None:
        """A whole message refused: one line per value it carried (each item of a batch),
        with its address and (at debug) its value; one line if it carried none."""
        items = _items_of(data)
        if not items:
            return self._drop_msg(reason, comm_id, msg_id, None, loud)
        for address, value in items:
            self._drop_msg(reason, comm_id, msg_id, address, loud, value)
        return None

    def _drop_msg(
        self,
        reason: str,
        comm_id: Any,
        msg_id: str | None,
        address: str | None = None,
        loud: bool = False,
        value: Any = None,
    ) -> None:
        if loud:
            self.log.warning(
                "connection.msg_dropped",
                reason=reason,
                comm_id=comm_id,
                msg_id=msg_id,
                address=address,
                value=value,
            )
            return
        self.log.info(
            "connection.msg_dropped",
            reason=reason,
            comm_id=comm_id,
            msg_id=msg_id,
            address=address,
            value=value,
        )

    def handle_CommCloseReceived(self, m: CommCloseReceived) -> None:
        content = m.content
        comm_id = content.get("comm_id") if isinstance(content, Mapping) else None
        window = self.state.windows.get(comm_id) if isinstance(comm_id, str) else None
        if isinstance(comm_id, str) and self.state.removed.pop(comm_id, None) is not None:
            self.log.info("connection.closed", by="front-end", comm_id=comm_id, msg_id=m.msg_id)
            return
        if window is None:
            self.log.info(
                "connection.close_ignored",
                reason="not an open comm",
                comm_id=comm_id,
                msg_id=m.msg_id,
            )
            return
        self._remove_window(window, "closed by the front-end")
        self.log.info("connection.closed", by="front-end", comm_id=comm_id, msg_id=m.msg_id)

    # --------------------------------------------------------------------- from the host

    def handle_CloseLink(self, m: CloseLink) -> None:
        st = self.state
        comm_ids = list(st.windows)
        for window in list(st.windows.values()):
            if m.parent is not None:
                self._publish_close(window.comm_id, m.parent, why="closed by the host")
            self._remove_window(window, "closed by the host")
        st.installed = False
        self.log.info("connection.closed", by="host", comm_id=comm_ids[-1] if comm_ids else None)
        if m.reply is not None:
            m.reply.resolve(True)

    def handle_EnsureFrontEnd(self, m: EnsureFrontEnd) -> None:
        self._ensure(m.parent, m.reply, explicit=m.reply is not None)

    def handle_HeartbeatRequest(self, m: HeartbeatRequest) -> None:
        """Ping every open window: True as soon as one answers, False when none did."""
        windows = list(self.state.windows.values())
        if not windows:
            m.reply.fail(LinkNotOpen("no open comm to send a heartbeat on"))
            return
        answers: list[Promise[bool]] = []

        def one_done(_: Promise[bool]) -> None:
            if any(a.done and a.error is None and a.get(0) for a in answers):
                m.reply.resolve(True)
            elif all(a.done for a in answers):
                errors = [a.error for a in answers if a.error is not None]
                if len(errors) == len(answers):
                    m.reply.fail(errors[0])
                else:
                    m.reply.resolve(False)

        answers.extend(Promise() for _ in windows)
        for window, answer in zip(windows, answers, strict=True):
            answer.on_done(one_done)
            self.heartbeat.tell(Probe(window.comm_id, m.parent, m.timeout, answer))

    def handle_QueryLink(self, m: QueryLink) -> None:
        st = self.state
        windows = list(st.windows.values())
        newest = windows[-1] if windows else None
        outboxes = [w.outbox for w in windows] or ([st.parked] if st.parked else [])
        m.reply.resolve(
            LinkSnapshot(
                st.installed,
                bool(windows),
                newest.comm_id if newest else None,
                st.display_id,
                st.last_heard,
                st.installing or any(w.probing for w in windows),
                sum(len(o.pending) for o in outboxes),
                sum(o.numbered for o in outboxes),
                newest.outbox.acked if newest else 0,
                st.merged,
                st.dropped,
                st.not_shown,
                st.resent,
                st.headless,
                tuple(st.windows),
            )
        )

    def handle_ProgramStartLink(self, m: ProgramStartLink) -> None:
        self._ensure(m.parent, None, explicit=True)


def _resume_of(data: Any) -> tuple[str, int] | None:
    """(stream, seq) of a comm_open's `resume`, if it has a valid one."""
    resume = data.get("resume") if isinstance(data, Mapping) else None
    if not isinstance(resume, Mapping):
        return None
    stream, seq = resume.get("stream"), resume.get("seq")
    if not isinstance(stream, str) or isinstance(seq, bool) or not isinstance(seq, int):
        return None
    return stream, seq


def _address_of(data: Mapping[str, Any]) -> str | None:
    """The address a message was for (the first one of a batch), for the logs."""
    items = _items_of(data)
    return items[0][0] if items else None


def _items_of(data: Any) -> list[tuple[str | None, Any]]:
    """(address, value) of each value a refused message's data carried (a batch's items), for
    the logs; an address that is not a string is None."""
    if not isinstance(data, Mapping):
        return []
    batch = data.get("batch")
    items = batch if isinstance(batch, list) else [data]
    found: list[tuple[str | None, Any]] = []
    for item in items:
        address = item.get("address") if isinstance(item, Mapping) else None
        value = item.get("value") if isinstance(item, Mapping) else None
        found.append((address if isinstance(address, str) else None, value))
    return found
