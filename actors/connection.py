"""Connection: the front-end link's lifecycle (install, open, ack, close, liveness) and, through
its `PageFlow` half (actors/page_flow.py), everything headed for the page.

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
from commrouter.actors.page_flow import PageFlow
from commrouter.actors.runtime import Promise, RouterActor
from commrouter.router.errors import FrontEndUnavailable, LinkNotOpen, PublishFailed
from commrouter.router.messages import (
    CloseLink,
    CommCloseReceived,
    CommMsgReceived,
    CommOpenReceived,
    EnsureFrontEnd,
    FrontEndBatch,
    FrontEndValue,
    HeartbeatRequest,
    InstallTimedOut,
    LinkSnapshot,
    Parent,
    Probe,
    ProbeAnswered,
    ProgramStartLink,
    QueryLink,
)
from commrouter.router.page_outbox import PageOutbox
from commrouter.timing import Timer, TokenBucket

OPEN_ACK = "#comm_open_ack"
ACK = "#ack"
PROBE_BACKSTOP = 1.5  # a ping ends at the latest after this many ceiling timeouts


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
    ever_opened: bool = False
    installed_at: float | None = None  # when the install script was last published
    previous_comm: str | None = None  # the comm replaced last, accepted for a grace period
    replaced_at: float = 0.0
    program_id: str | None = None
    program_parent: Parent = None
    last_parent: Parent = None  # of the latest request: where output goes that has no cell
    # toward the page (actors/page_flow.py); the actor creates the outbox and the bucket
    outbox: PageOutbox = None  # type: ignore[assignment]
    bucket: TokenBucket = None  # type: ignore[assignment]
    flush_scheduled: bool = False
    ack_timer: Timer | None = None
    ack_generation: int = 0
    ack_backoff: float = 0.0
    ack_rtts: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    fast_resent: int = -1  # the ack value a duplicate ack already caused a resend for
    expiry_timer: Timer | None = None
    concurrent: bool = True  # the page's acks can arrive while a cell runs
    headless: bool = False
    warned_headless: bool = False
    not_shown: int = 0
    resent: int = 0


class Connection(PageFlow, RouterActor):
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
        self.ack_timeout = settings.flow.ack_timeout
        self.ack_timeout_ceiling = max(settings.flow.ack_timeout_ceiling, self.ack_timeout)
        self.publisher = self.ctx.publisher
        self.router = self.ctx.slot(ROUTER)
        self.heartbeat = self.ctx.slot(HEARTBEAT)
        self.program = self.ctx.slot(PROGRAM)
        self.clock = self.ctx.clock
        st = self.state
        if st.outbox is None:  # first incarnation (a restart keeps them)
            st.outbox = PageOutbox(settings.flow.window, settings.connection.queue_limit)
            rate = settings.flow.max_messages_per_second
            st.bucket = TokenBucket(rate, rate / 4, self.clock.now())
            st.ack_backoff = self.ack_timeout
            st.headless = settings.connection.headless

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
        now = self.clock.now()
        if st.opened and st.comm_id != comm_id:
            self._publish_close(st.comm_id, m.parent, why="replaced by a new comm_open")
            st.previous_comm, st.replaced_at = st.comm_id, now
        self._erase_install_display(m.parent)
        assert isinstance(content, Mapping)
        self._resume(content.get("data"))
        ack = {"stream": st.outbox.stream, "seq": st.outbox.first_unacked()}
        try:
            self.publisher.comm_msg(comm_id, {"address": OPEN_ACK, "value": ack}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what=OPEN_ACK, comm_id=comm_id, error=repr(error)
            )
            return
        st.comm_id, st.opened, st.installed = comm_id, True, True
        st.concurrent = m.concurrent
        st.last_heard = now
        st.ever_opened, st.headless = True, False
        self._stop_install()
        if st.expiry_timer is not None:
            st.expiry_timer.cancel()
            st.expiry_timer = None
        self.log.info("connection.opened", comm_id=comm_id, msg_id=m.msg_id, next_seq=ack["seq"])
        self._settle_waiters(True)
        self._resend("a new comm opened")
        self._pump(m.parent)

    def _resume(self, data: Any) -> None:
        """A hub linked before says what it received: that much is acknowledged."""
        resume = data.get("resume") if isinstance(data, Mapping) else None
        if not isinstance(resume, Mapping):
            return
        seq = resume.get("seq")
        if resume.get("stream") != self.state.outbox.stream or not _is_number(seq):
            return
        self._settled(self.state.outbox.ack(seq))

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
        if not isinstance(data, Mapping):
            return self._drop_msg("data missing", comm_id, m.msg_id)
        if not st.opened or comm_id != st.comm_id:
            if comm_id != st.previous_comm or self.clock.now() - st.replaced_at > self.grace:
                return self._refuse("comm_id is not the open comm", comm_id, m.msg_id, data, True)
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
            value = self._item(item, comm_id, m)
            if value is not None:
                values.append(value)
        if len(values) == 1:
            self.router.tell(values[0])
        elif values:
            self.router.tell(FrontEndBatch(tuple(values)))
        return None

    def _item(self, item: Any, comm_id: str, m: CommMsgReceived) -> FrontEndValue | None:
        """Check one value of a message; acks are ours, the rest goes to the Router."""
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
        self._heard(comm_id)
        if isinstance(failed, str) and "value" not in item:
            self.log.info("connection.read_failed", address=address, comm_id=comm_id, reason=failed)
            return FrontEndValue(address, None, comm_id, m.parent, m.msg_id, failed)
        value = item["value"]
        if address == ACK:
            self._on_ack(value, comm_id, m.msg_id)
            return None
        self.log.debug(
            "connection.received", address=address, comm_id=comm_id, msg_id=m.msg_id, value=value
        )
        return FrontEndValue(address, value, comm_id, m.parent, m.msg_id)

    def _heard(self, comm_id: str) -> None:
        """Any valid message from the page: it is alive, and a probe of its comm succeeded (a
        message on a comm replaced moments ago proves nothing about the open one)."""
        st = self.state
        st.last_heard = self.clock.now()
        if st.probing and comm_id == st.comm_id:
            self._probe_succeeded("heard from the page")

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
        self._ensure(m.parent, m.reply, explicit=m.reply is not None)

    def handle_HeartbeatRequest(self, m: HeartbeatRequest) -> None:
        st = self.state
        if not st.opened or st.comm_id is None:
            m.reply.fail(LinkNotOpen("no open comm to send a heartbeat on"))
            return
        self.heartbeat.tell(Probe(st.comm_id, m.parent, m.timeout, m.reply))

    def handle_QueryLink(self, m: QueryLink) -> None:
        st = self.state
        outbox = st.outbox
        m.reply.resolve(
            LinkSnapshot(
                st.installed,
                st.opened,
                st.comm_id,
                st.display_id,
                st.last_heard,
                st.installing or st.probing,
                len(outbox.pending),
                outbox.numbered,
                outbox.acked,
                outbox.merged,
                outbox.dropped,
                st.not_shown,
                st.resent,
                st.headless,
            )
        )

    def handle_ProgramStartLink(self, m: ProgramStartLink) -> None:
        self._ensure(m.parent, None, explicit=True)

    # ------------------------------------------------------------------- the install flow

    def _fresh(self) -> bool:
        """Heard from the page within the request threshold."""
        last = self.state.last_heard
        return last is not None and self.clock.now() - last <= self.threshold

    def _ensure(self, parent: Parent, reply: Promise[bool] | None, explicit: bool = False) -> None:
        """Make sure the page is there. In a headless run nothing is installed again unless
        asked `explicit`ly (the host's ensure_front_end, the program's start): every install
        would leave a script in the saved notebook when no page erases it."""
        st = self.state
        parent = parent or st.program_parent
        if parent is not None:
            st.last_parent = parent
        if st.installing or st.probing:
            self._wait(reply)
            return
        if st.opened:
            if self._fresh():
                if reply is not None:
                    reply.resolve(True)
                return
            self._wait(reply)
            self._probe(parent)
            return
        if st.headless and not self._may_install_headless(explicit):
            if reply is not None:
                reply.fail(FrontEndUnavailable("headless run: no page has opened the link"))
            return
        self._wait(reply)
        self._install(parent)

    def _may_install_headless(self, explicit: bool) -> bool:
        """In a detected headless run, install again when asked, or when the last attempt is
        `connection.headless_retry` old (a live page that missed the first script, e.g. in a
        background tab, still gets one); never when configured headless."""
        if self.ctx.settings.connection.headless:
            return False
        last = self.state.installed_at
        retry = self.ctx.settings.connection.headless_retry
        return explicit or last is None or self.clock.now() - last >= retry

    def _wait(self, reply: Promise[bool] | None) -> None:
        if reply is not None:
            self.state.waiters.append(reply)

    def _probe(self, parent: Parent) -> None:
        st = self.state
        st.probing, st.probe_parent = True, parent
        self.log.info("connection.probe_started", comm_id=st.comm_id, silent_for=self._silence())
        self._ping()

    def _ping(self) -> None:
        """One ping of a probe; the Heartbeat picks its (adaptive) timeout."""
        st = self.state
        st.install_seq += 1
        seq = st.install_seq
        answer: Promise[bool] = Promise()
        answer.on_done(
            lambda p: self.tell_self(
                ProbeAnswered(seq, p.error is None and bool(p.get(0)), _error_text(p.error))
            )
        )
        self.heartbeat.tell(Probe(st.comm_id or "", st.probe_parent, None, answer))
        # A backstop of our own: if the Heartbeat actor cannot answer (the supervisor gave up on
        # it), the ping still ends, as a failure, a while after the longest it could wait.
        st.install_timer = self.ctx.scheduler.call_later(
            self.probe_backstop,
            self.slot,
            ProbeAnswered(seq, False, "the heartbeat actor did not answer"),
        )

    def handle_ProbeAnswered(self, m: ProbeAnswered) -> None:
        st = self.state
        if not st.probing or m.install_seq != st.install_seq:
            return
        if st.install_timer is not None:
            st.install_timer.cancel()
            st.install_timer = None
        if m.answered:
            self._probe_succeeded("pong")
            return
        silent = self._silence()
        if m.error is None and silent is not None and silent < self.dead_after:
            self.log.info(
                "connection.probe_retried",
                comm_id=st.comm_id,
                silent_for=silent,
                reason=m.error or "no pong in time",
            )
            self._ping()
            return
        self.log.warning(
            "connection.stale",
            comm_id=st.comm_id,
            silent_for=silent,
            reason=m.error or f"silent for {self.dead_after} s",
        )
        st.probing = False  # the probe ends here, with its verdict
        self._install(st.probe_parent)  # (its reset remembers the comm for the grace period)

    def _probe_succeeded(self, how: str) -> None:
        st = self.state
        self._stop_install()  # not probing any more; the backstop is cancelled
        self.log.info("connection.probe_answered", comm_id=st.comm_id, by=how)
        self._settle_waiters(True)
        self._pump(None)

    def _install(self, parent: Parent) -> None:
        st = self.state
        self._erase_install_display(parent)
        self._reset()
        st.install_seq += 1
        display_id = f"commrouter-install-{uuid.uuid4().hex}"
        bundle = dict(self.ctx.install_display)
        try:
            self.publisher.display(bundle, {}, display_id, update=False, parent=parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("connection.install_failed", reason="publish failed", error=repr(error))
            self._install_failed(PublishFailed(f"could not publish the install script: {error!r}"))
            return
        st.installed, st.installing = True, True
        st.installed_at = self.clock.now()
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
        # Nothing ran the script: erase it, so that a saved notebook (nbconvert) never holds it.
        # (with the latest request's parent: a notebook runner such as nbclient takes output
        # only for the cell that runs now, and the script's own cell may be done)
        self._erase_install_display(st.last_parent, latest=True)
        self._install_failed(
            FrontEndUnavailable(
                f"the front-end did not open the comm within {self.wait_timeout} s "
                "(is the notebook open in a browser, and is the output trusted?)"
            )
        )

    def _install_failed(self, error: Exception) -> None:
        """Waiters fail; values stay queued for a later comm, unless no page ever opened one
        (a headless run: then they are counted as not shown and syncs are answered)."""
        self._settle_waiters(error)
        if not self.state.ever_opened:
            self._go_headless(str(error))
            return
        self._fail_syncs(str(error))
        self._arm_expiry()

    def _stop_install(self) -> None:
        st = self.state
        st.installing = st.probing = False
        if st.install_timer is not None:
            st.install_timer.cancel()
            st.install_timer = None

    def _erase_install_display(self, parent: Parent, latest: bool = False) -> None:
        """Overwrite the transient install script with nothing, so it is never saved; with the
        parent of the script's own display unless `latest` says to use `parent`."""
        st = self.state
        if st.display_id is None:
            return
        display_id, st.display_id = st.display_id, None
        parent = (parent or st.display_parent) if latest else (st.display_parent or parent)
        try:
            self.publisher.display({}, {}, display_id, update=True, parent=parent)
            self.log.info("connection.install_display_erased", display_id=display_id)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed",
                what="erase install display",
                error=repr(error),
                display_id=display_id,
            )

    def _reset(self) -> None:
        """The link is down; what is owed to the page stays (it is sent on the next comm).
        A probe under way ends with it (its waiters wait for the next comm)."""
        st = self.state
        if st.probing:
            st.probing = False
            if st.install_timer is not None:
                st.install_timer.cancel()
                st.install_timer = None
            self.log.info("connection.probe_ended", comm_id=st.comm_id, reason="link reset")
        if st.opened:
            st.previous_comm, st.replaced_at = st.comm_id, self.clock.now()
        st.comm_id, st.opened, st.installed = None, False, False
        self._arm_expiry()

    def _settle_waiters(self, outcome: bool | Exception) -> None:
        waiters, self.state.waiters = self.state.waiters, []
        for waiter in waiters:
            if isinstance(outcome, Exception):
                waiter.fail(outcome)
            else:
                waiter.resolve(outcome)

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


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
