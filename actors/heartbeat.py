"""Heartbeat: numbered `#heartbeat/ping` and `#heartbeat/pong` with the front-end.

One ping at a time per window (comm): a probe of a window whose ping is pending waits on that
same ping; windows are pinged independently. Each ping carries a new number and only a pong
with that number, on that comm, answers it; a pong to an earlier
ping still gives a round-trip sample. The timeout adapts to the measured round trips
(`max(timeout, rtt_multiplier x p99)`, at most `timeout_ceiling`) and is a scheduler deadline,
so virtual time drives it in tests and simulations.
"""

from __future__ import annotations

from collections import OrderedDict, deque
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
RTT_SAMPLES = 32  # round trips the adaptive timeout looks at
REMEMBERED_PINGS = 16  # earlier pings a late pong can still be matched to (for its RTT)


@dataclass(slots=True)
class PendingPing:
    """The ping a window has not answered yet, and who waits for its answer."""

    number: int
    sent_at: float
    timer: Timer | None
    waiters: list[Promise[bool]]


@dataclass(slots=True)
class HeartbeatState:
    """Durable: the pending pings and their waiters survive a restart."""

    ping_seq: int = 0  # the last number used, on any window
    pending: dict[str, PendingPing] = field(default_factory=dict)  # comm id -> its ping
    sent: OrderedDict[int, float] = field(default_factory=OrderedDict)  # ping -> sent at
    rtts: deque[float] = field(default_factory=lambda: deque(maxlen=RTT_SAMPLES))
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
        settings = self.ctx.settings.heartbeat
        self.base_timeout = settings.timeout
        self.multiplier = settings.rtt_multiplier
        self.ceiling = max(settings.timeout_ceiling, settings.timeout)

    def timeout(self) -> float:
        """How long the next ping waits: adapted to the recent round trips (of every window:
        they share the kernel's IOPub and the server)."""
        rtts = self.state.rtts
        if not rtts:
            return self.base_timeout
        ordered = sorted(rtts)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return min(self.ceiling, max(self.base_timeout, self.multiplier * p99))

    def handle_Probe(self, m: Probe) -> None:
        st = self.state
        pending = st.pending.get(m.comm_id)
        if pending is not None:
            pending.waiters.append(m.reply)
            self.log.debug("heartbeat.joined_pending_ping", comm_id=m.comm_id, ping=pending.number)
            return
        number = st.ping_seq + 1
        try:
            self.publisher.comm_msg(m.comm_id, {"address": PING, "value": number}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("heartbeat.send_failed", comm_id=m.comm_id, error=repr(error))
            m.reply.fail(PublishFailed(f"could not send {PING}: {error!r}"))
            return
        timeout = self.timeout() if m.timeout is None else m.timeout
        st.ping_seq = number
        st.pings += 1
        now = self.clock.now()
        st.sent[number] = now
        while len(st.sent) > REMEMBERED_PINGS:
            st.sent.popitem(last=False)
        timer = self.ctx.scheduler.call_later(timeout, self.slot, PingTimedOut(m.comm_id, number))
        st.pending[m.comm_id] = PendingPing(number, now, timer, [m.reply])
        self.log.info("heartbeat.ping_sent", comm_id=m.comm_id, ping=number, timeout=timeout)

    def handle_PongReceived(self, m: PongReceived) -> None:
        st = self.state
        number = m.number
        numbered = isinstance(number, int) and not isinstance(number, bool)
        sent_at = st.sent.pop(number, None) if numbered else None
        rtt = None if sent_at is None else round(self.clock.now() - sent_at, 6)
        if rtt is not None:
            st.rtts.append(rtt)
        pending = st.pending.get(m.comm_id)
        if pending is None or not numbered or number != pending.number:
            if sent_at is not None:
                reason = f"answers ping {number}, not the pending one"
            else:
                reason = f"answers no ping sent (number {number!r})"
            self.log.info(
                "heartbeat.pong_unexpected",
                reason=reason,
                comm_id=m.comm_id,
                msg_id=m.msg_id,
                ping=number if numbered else None,
                rtt=rtt,
            )
            return
        del st.pending[m.comm_id]
        if pending.timer is not None:
            pending.timer.cancel()
        st.pongs += 1
        self.log.info(
            "heartbeat.pong_received", comm_id=m.comm_id, msg_id=m.msg_id, ping=number, rtt=rtt
        )
        _settle(pending, True)

    def handle_PingTimedOut(self, m: PingTimedOut) -> None:
        st = self.state
        pending = st.pending.get(m.comm_id)
        if pending is None or m.ping_seq != pending.number:
            return
        del st.pending[m.comm_id]
        st.timeouts += 1
        self.log.warning("heartbeat.timeout", comm_id=m.comm_id, ping=pending.number)
        _settle(pending, False)

    def handle_PingReceived(self, m: PingReceived) -> None:
        try:
            self.publisher.comm_msg(m.comm_id, {"address": PONG, "value": m.number}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("heartbeat.send_failed", comm_id=m.comm_id, error=repr(error), what=PONG)
            return
        self.log.debug("heartbeat.pong_sent", comm_id=m.comm_id, msg_id=m.msg_id)


def _settle(pending: PendingPing, answered: bool) -> None:
    for waiter in pending.waiters:
        waiter.resolve(answered)
