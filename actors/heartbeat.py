"""Heartbeat: `#heartbeat/ping` and `#heartbeat/pong` with the front-end.

One ping at a time: a probe that arrives while a ping is pending waits on that same ping.
The timeout is a scheduler deadline, so virtual time drives it in tests and simulations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from commrouter.actors.runtime import Promise, RouterActor
from commrouter.router.errors import PublishFailed
from commrouter.router.messages import (
    PingReceived,
    PingTimedOut,
    PongReceived,
    Probe,
)
from commrouter.timing import Timer

PING = "#heartbeat/ping"
PONG = "#heartbeat/pong"


@dataclass(slots=True)
class HeartbeatState:
    """Durable: a pending ping and its waiters survive a restart."""

    pending: bool = False
    ping_seq: int = 0
    comm_id: str | None = None
    sent_at: float = 0.0
    timer: Timer | None = None
    waiters: list[Promise[bool]] = field(default_factory=list)
    pings: int = 0
    pongs: int = 0
    timeouts: int = 0


class Heartbeat(RouterActor):
    name = "heartbeat"
    state: HeartbeatState

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.publisher = self.ctx.publisher
        self.clock = self.ctx.clock

    def handle_Probe(self, m: Probe) -> None:
        st = self.state
        if st.pending:
            st.waiters.append(m.reply)
            self.log.debug("heartbeat.joined_pending_ping", comm_id=st.comm_id, ping=st.ping_seq)
            return
        try:
            self.publisher.comm_msg(m.comm_id, {"address": PING, "value": True}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("heartbeat.send_failed", comm_id=m.comm_id, error=repr(error))
            m.reply.fail(PublishFailed(f"could not send {PING}: {error!r}"))
            return
        st.pending, st.comm_id = True, m.comm_id
        st.ping_seq += 1
        st.pings += 1
        st.sent_at = self.clock.now()
        st.waiters = [m.reply]
        st.timer = self.ctx.scheduler.call_later(m.timeout, self.slot, PingTimedOut(st.ping_seq))
        self.log.info("heartbeat.ping_sent", comm_id=m.comm_id, ping=st.ping_seq, timeout=m.timeout)

    def handle_PongReceived(self, m: PongReceived) -> None:
        st = self.state
        if not st.pending:
            self.log.info("heartbeat.pong_unexpected", comm_id=m.comm_id, msg_id=m.msg_id)
            return
        if st.timer is not None:
            st.timer.cancel()
        st.pending, st.timer = False, None
        st.pongs += 1
        rtt = self.clock.now() - st.sent_at
        self.log.info(
            "heartbeat.pong_received",
            comm_id=m.comm_id,
            msg_id=m.msg_id,
            ping=st.ping_seq,
            rtt=round(rtt, 6),
        )
        self._settle(True)

    def handle_PingTimedOut(self, m: PingTimedOut) -> None:
        st = self.state
        if not st.pending or m.ping_seq != st.ping_seq:
            return
        st.pending, st.timer = False, None
        st.timeouts += 1
        self.log.warning("heartbeat.timeout", comm_id=st.comm_id, ping=st.ping_seq)
        self._settle(False)

    def handle_PingReceived(self, m: PingReceived) -> None:
        try:
            self.publisher.comm_msg(m.comm_id, {"address": PONG, "value": True}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("heartbeat.send_failed", comm_id=m.comm_id, error=repr(error), what=PONG)
            return
        self.log.debug("heartbeat.pong_sent", comm_id=m.comm_id, msg_id=m.msg_id)

    def _settle(self, answered: bool) -> None:
        waiters, self.state.waiters = self.state.waiters, []
        for waiter in waiters:
            waiter.resolve(answered)
