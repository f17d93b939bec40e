"""Connection: the front-end link's lifecycle (install, open, ack, close, stale detection) and
the ordered queue of everything headed for the front-end.

It is the seed's comms.State minus heartbeat and subscriptions: HandleOpen, HandleMsg, Close,
InstallWebSocket, Send and the program's send/read/sync requests.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.context import HEARTBEAT, PROGRAM, ROUTER
from commrouter.actors.runtime import Promise, RouterActor
from commrouter.router.errors import FrontEndUnavailable, LinkNotOpen, PublishFailed
from commrouter.router.messages import (
    CloseLink,
    CommCloseReceived,
    CommMsgReceived,
    CommOpenReceived,
    EnsureFrontEnd,
    FrontEndValue,
    HeartbeatRequest,
    InstallTimedOut,
    LinkSnapshot,
    Parent,
    Probe,
    ProbeAnswered,
    ProgramRead,
    ProgramSend,
    ProgramStartLink,
    ProgramSync,
    QueryLink,
    SendToFrontEnd,
    SyncDone,
)
from commrouter.timing import Timer

OPEN_ACK = "#comm_open_ack"
PROBE_BACKSTOP = 1.5  # a probe ends at the latest after this many heartbeat timeouts


@dataclass(slots=True)
class Outgoing:
    """A comm_msg payload waiting for the link, or (with `sync_id`) a sync marker."""

    data: Mapping[str, Any] | None
    reply: Promise[bool] | None = None
    program_id: str | None = None
    sync_id: int | None = None
    parent: Parent = None  # whose output the publish is (decided per request, kept when queued)


@dataclass(slots=True)
class ConnectionState:
    """Durable: survives a restart of the Connection actor."""

    installed: bool = False
    opened: bool = False
    comm_id: str | None = None
    display_id: str | None = None
    display_parent: Parent = None
    last_heard: float | None = None
    installing: bool = False  # install script published, waiting for comm_open
    probing: bool = False  # heartbeat probe of a silent front-end under way
    probe_parent: Parent = None
    install_seq: int = 0
    install_timer: Timer | None = None
    waiters: list[Promise[bool]] = field(default_factory=list)
    queue: deque[Outgoing] = field(default_factory=deque)


class Connection(RouterActor):
    name = "connection"
    state: ConnectionState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        settings = self.ctx.settings
        self.target_name = settings.connection.target_name
        self.threshold = settings.heartbeat.request_threshold
        self.heartbeat_timeout = settings.heartbeat.timeout
        self.wait_timeout = settings.connection.wait_for_connection_timeout
        self.publisher = self.ctx.publisher
        self.router = self.ctx.slot(ROUTER)
        self.heartbeat = self.ctx.slot(HEARTBEAT)
        self.program = self.ctx.slot(PROGRAM)
        self.clock = self.ctx.clock

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
        st = self.state
        if st.opened and st.comm_id != comm_id:
            self._publish_close(st.comm_id, m.parent, why="replaced by a new comm_open")
        self._erase_install_display(m.parent)
        try:
            self.publisher.comm_msg(comm_id, {"address": OPEN_ACK, "value": True}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what=OPEN_ACK, comm_id=comm_id, error=repr(error)
            )
            return
        st.comm_id, st.opened, st.installed = comm_id, True, True
        st.last_heard = self.clock.now()
        self._stop_install()
        self.log.info("connection.opened", comm_id=comm_id, msg_id=m.msg_id)
        self._settle_waiters(True)
        self._flush()

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
        if not comm_id:
            return self._drop_msg("comm_id missing", None, m.msg_id)
        if not st.opened or comm_id != st.comm_id:
            return self._drop_msg("comm_id is not the open comm", comm_id, m.msg_id)
        data = content.get("data")
        if not isinstance(data, Mapping):
            return self._drop_msg("data missing", comm_id, m.msg_id)
        address = data.get("address")
        if not isinstance(address, str) or not address:
            return self._drop_msg("address missing", comm_id, m.msg_id)
        if "value" not in data:
            return self._drop_msg("value missing", comm_id, m.msg_id, address)
        st.last_heard = self.clock.now()
        value = data["value"]
        self.log.debug(
            "connection.received", address=address, comm_id=comm_id, msg_id=m.msg_id, value=value
        )
        self.router.tell(FrontEndValue(address, value, comm_id, m.parent, m.msg_id))
        return None

    def _drop_msg(
        self, reason: str, comm_id: Any, msg_id: str | None, address: str | None = None
    ) -> None:
        self.log.info(
            "connection.msg_dropped", reason=reason, comm_id=comm_id, msg_id=msg_id, address=address
        )

    def handle_CommCloseReceived(self, m: CommCloseReceived) -> None:
        content = m.content
        comm_id = content.get("comm_id") if isinstance(content, Mapping) else None
        if not comm_id or comm_id != self.state.comm_id:
            self.log.info(
                "connection.close_ignored",
                reason="not the open comm",
                comm_id=comm_id,
                msg_id=m.msg_id,
            )
            return
        self._reset()
        self.log.info("connection.closed", by="front-end", comm_id=comm_id, msg_id=m.msg_id)

    # --------------------------------------------------------------------- from the host

    def handle_CloseLink(self, m: CloseLink) -> None:
        st = self.state
        comm_id = st.comm_id
        if m.parent is not None and st.opened and comm_id:
            self._publish_close(comm_id, m.parent, why="closed by the host")
        self._reset()
        self.log.info("connection.closed", by="host", comm_id=comm_id)
        if m.reply is not None:
            m.reply.resolve(True)

    def handle_EnsureFrontEnd(self, m: EnsureFrontEnd) -> None:
        self._ensure(m.parent, m.reply)

    def handle_SendToFrontEnd(self, m: SendToFrontEnd) -> None:
        self._send(Outgoing({"address": m.address, "value": m.value}, m.reply), m.parent)

    def handle_HeartbeatRequest(self, m: HeartbeatRequest) -> None:
        st = self.state
        if not st.opened or st.comm_id is None:
            m.reply.fail(LinkNotOpen("no open comm to send a heartbeat on"))
            return
        self.heartbeat.tell(Probe(st.comm_id, m.parent, m.timeout, m.reply))

    def handle_QueryLink(self, m: QueryLink) -> None:
        st = self.state
        m.reply.resolve(
            LinkSnapshot(
                st.installed,
                st.opened,
                st.comm_id,
                st.display_id,
                st.last_heard,
                st.installing or st.probing,
                len(st.queue),
            )
        )

    # ------------------------------------------------------------------ from the program

    def handle_ProgramSend(self, m: ProgramSend) -> None:
        self._send(Outgoing({"address": m.address, "value": m.value}, None, m.program_id), m.parent)

    def handle_ProgramRead(self, m: ProgramRead) -> None:
        data = {"address": m.address, "read_request": True}
        self._send(Outgoing(data, None, m.program_id), m.parent)

    def handle_ProgramStartLink(self, m: ProgramStartLink) -> None:
        self._ensure(m.parent, None)

    def handle_ProgramSync(self, m: ProgramSync) -> None:
        marker = Outgoing(None, None, m.program_id, m.sync_id)
        if self.state.queue:
            self.state.queue.append(marker)
        else:
            self._ack_sync(marker, None)

    # ------------------------------------------------------------------- the install flow

    def _ready(self) -> bool:
        st = self.state
        return (
            st.opened
            and not st.queue
            and not st.installing
            and not st.probing
            and st.last_heard is not None
            and self.clock.now() - st.last_heard <= self.threshold
        )

    def _send(self, item: Outgoing, parent: Parent) -> None:
        if self._ready():
            self._publish(item, parent)
            return
        queue = self.state.queue
        item.parent = parent
        queue.append(item)
        self.log.debug(
            "connection.queued",
            address=item.data["address"] if item.data else None,
            program_id=item.program_id,
            queued=len(queue),
        )
        self._ensure(parent, None)

    def _ensure(self, parent: Parent, reply: Promise[bool] | None) -> None:
        st = self.state
        if st.installing or st.probing:
            self._wait(reply)
            return
        if st.opened and st.last_heard is not None:
            if self.clock.now() - st.last_heard <= self.threshold:
                self._flush()
                if reply is not None:
                    reply.resolve(True)
                return
            self._wait(reply)
            self._probe(parent)
            return
        self._wait(reply)
        self._install(parent)

    def _wait(self, reply: Promise[bool] | None) -> None:
        if reply is not None:
            self.state.waiters.append(reply)

    def _probe(self, parent: Parent) -> None:
        st = self.state
        st.probing, st.probe_parent = True, parent
        st.install_seq += 1
        seq = st.install_seq
        answer: Promise[bool] = Promise()
        answer.on_done(
            lambda p: self.tell_self(
                ProbeAnswered(seq, p.error is None and bool(p.get(0)), _error_text(p.error))
            )
        )
        self.log.info("connection.probe_started", comm_id=st.comm_id, silent_for=self._silence())
        self.heartbeat.tell(Probe(st.comm_id or "", parent, self.heartbeat_timeout, answer))
        # A backstop of our own: if the Heartbeat actor cannot answer (the supervisor gave up on
        # it), the probe still ends, as a failure, after half a timeout more than it would.
        st.install_timer = self.ctx.scheduler.call_later(
            self.heartbeat_timeout * PROBE_BACKSTOP,
            self.slot,
            ProbeAnswered(seq, False, "the heartbeat actor did not answer"),
        )

    def handle_ProbeAnswered(self, m: ProbeAnswered) -> None:
        st = self.state
        if not st.probing or m.install_seq != st.install_seq:
            return
        self._stop_install()  # not probing any more; the backstop is cancelled
        if m.answered:
            self.log.info("connection.probe_answered", comm_id=st.comm_id)
            self._settle_waiters(True)
            self._flush()
            return
        self.log.info("connection.stale", comm_id=st.comm_id, reason=m.error or "no pong in time")
        self._install(st.probe_parent)

    def _install(self, parent: Parent) -> None:
        st = self.state
        self._erase_install_display(parent)
        self._reset()
        st.install_seq += 1
        display_id = f"commrouter-install-{uuid.uuid4().hex}"
        html = self.ctx.install_html
        try:
            self.publisher.display(
                {"text/html": html, "text/plain": ""}, {}, display_id, update=False, parent=parent
            )
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("connection.install_failed", reason="publish failed", error=repr(error))
            self._fail_pending(PublishFailed(f"could not publish the install script: {error!r}"))
            return
        st.installed, st.installing = True, True
        st.display_id, st.display_parent = display_id, parent
        st.install_timer = self.ctx.scheduler.call_later(
            self.wait_timeout, self.slot, InstallTimedOut(st.install_seq)
        )
        self.log.info("connection.install_started", display_id=display_id)

    def handle_InstallTimedOut(self, m: InstallTimedOut) -> None:
        st = self.state
        if not st.installing or m.install_seq != st.install_seq:
            return
        st.installing, st.installed, st.install_timer = False, False, None
        self.log.warning(
            "connection.install_failed",
            reason="timeout",
            waited=self.wait_timeout,
            display_id=st.display_id,
        )
        self._fail_pending(
            FrontEndUnavailable(
                f"the front-end did not open the comm within {self.wait_timeout} s "
                "(is the notebook open in a browser, and is the output trusted?)"
            )
        )

    def _stop_install(self) -> None:
        st = self.state
        st.installing = st.probing = False
        if st.install_timer is not None:
            st.install_timer.cancel()
            st.install_timer = None

    def _erase_install_display(self, parent: Parent) -> None:
        """Overwrite the transient install script with nothing, so it is never saved."""
        st = self.state
        if st.display_id is None:
            return
        display_id, st.display_id = st.display_id, None
        try:
            self.publisher.display(
                {}, {}, display_id, update=True, parent=st.display_parent or parent
            )
            self.log.info("connection.install_display_erased", display_id=display_id)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed",
                what="erase install display",
                error=repr(error),
                display_id=display_id,
            )

    def _reset(self) -> None:
        st = self.state
        st.comm_id, st.opened, st.installed = None, False, False

    # ------------------------------------------------------------------ the outgoing queue

    def _flush(self) -> None:
        queue = self.state.queue
        while queue:
            item = queue.popleft()
            if item.sync_id is not None:
                self._ack_sync(item, None)
            else:
                self._publish(item, item.parent)

    def _publish(self, item: Outgoing, parent: Parent) -> None:
        data = item.data
        assert data is not None
        try:
            self.publisher.comm_msg(self.state.comm_id or "", data, parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.value_dropped",
                reason="publish failed",
                error=repr(error),
                address=data.get("address"),
                program_id=item.program_id,
                comm_id=self.state.comm_id,
            )
            if item.reply is not None:
                item.reply.fail(PublishFailed(repr(error)))
            return
        self.log.debug(
            "connection.sent",
            address=data.get("address"),
            comm_id=self.state.comm_id,
            program_id=item.program_id,
        )
        if item.reply is not None:
            item.reply.resolve(True)

    def _fail_pending(self, error: Exception) -> None:
        self._settle_waiters(error)
        queue = self.state.queue
        dropped = 0
        while queue:
            item = queue.popleft()
            if item.sync_id is not None:
                self._ack_sync(item, str(error))
                continue
            dropped += 1
            self.log.warning(
                "connection.value_dropped",
                reason="front-end unavailable",
                address=item.data.get("address") if item.data else None,
                program_id=item.program_id,
            )
            if item.reply is not None:
                item.reply.fail(error)
        if dropped:
            self.log.warning("connection.queue_dropped", count=dropped, error=str(error))

    def _settle_waiters(self, outcome: bool | Exception) -> None:
        waiters, self.state.waiters = self.state.waiters, []
        for waiter in waiters:
            if isinstance(outcome, Exception):
                waiter.fail(outcome)
            else:
                waiter.resolve(outcome)

    def _ack_sync(self, marker: Outgoing, error: str | None) -> None:
        assert marker.program_id is not None and marker.sync_id is not None
        self.program.tell(SyncDone(marker.program_id, marker.sync_id, error))

    def _publish_close(self, comm_id: str | None, parent: Parent, why: str) -> None:
        try:
            self.publisher.comm_close(comm_id or "", {}, parent)
            self.log.info("connection.close_sent", comm_id=comm_id, why=why)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what="comm_close", comm_id=comm_id, error=repr(error)
            )

    def _silence(self) -> float | None:
        last = self.state.last_heard
        return None if last is None else round(self.clock.now() - last, 6)


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else str(error)
