"""The Connection's traffic toward the page: numbering, window, batches, acks, resends, drops,
syncs and headless runs (docs/protocol.md, "Flow control" and "sync").

A mixin of the Connection actor (actors/connection.py), which owns the link's lifecycle; this
half owns `ConnectionState.outbox` (a `PageOutbox`) and the timers that move it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from commrouter.router.errors import FrontEndUnavailable
from commrouter.router.messages import (
    AckOverdue,
    FlushDue,
    FrontEndValue,
    NoPage,
    Parent,
    ProgramContext,
    ProgramRead,
    ProgramSend,
    ProgramSync,
    QueueExpiry,
    SendToFrontEnd,
    SyncDone,
)
from commrouter.router.page_outbox import READ, SYNC, VALUE, Entry, Settled, by_address, describe
from commrouter.timing.rate import MIN_WAIT as MIN_DELAY

if TYPE_CHECKING:
    from commrouter.actors.connection import Connection

    _Base = Connection
else:
    _Base = object

HEADLESS_WARNING = (
    "commrouter: no page has opened this kernel's link (a headless run such as nbconvert or "
    "papermill?). Values sent to the page are not shown, and sync() does not wait for a page. "
    "Set COMMROUTER_HEADLESS=1 to skip waiting for one.\n"
)

NO_PAGE = "no page has opened this kernel's link (a headless run)"


class PageFlow(_Base):
    """Everything that leaves for the page after the link is up, and what comes back (acks)."""

    # ------------------------------------------------------------------------ requests

    def handle_SendToFrontEnd(self, m: SendToFrontEnd) -> None:
        entry = Entry(VALUE, m.address, m.value, None, m.stream, m.reply, self.clock.now())
        entry.parent = m.parent
        self._enqueue(entry, m.parent)

    def handle_ProgramSend(self, m: ProgramSend) -> None:
        now = self.clock.now()
        entry = Entry(VALUE, m.address, m.value, m.program_id, m.stream, queued_at=now)
        entry.parent = m.parent
        self._enqueue(entry, m.parent)

    def handle_ProgramRead(self, m: ProgramRead) -> None:
        entry = Entry(READ, m.address, None, m.program_id, queued_at=self.clock.now())
        entry.parent = m.parent
        self._enqueue(entry, m.parent)

    def handle_ProgramSync(self, m: ProgramSync) -> None:
        st = self.state
        marker = Entry(SYNC, program_id=m.program_id, sync_id=m.sync_id)
        if st.headless:
            self._answer_sync(marker)
            return
        st.outbox.put(marker)
        self._pump(None)

    def handle_ProgramContext(self, m: ProgramContext) -> None:
        self.state.program_id, self.state.program_parent = m.program_id, m.parent
        if m.program_id is not None and self.state.headless:
            self.program.tell(NoPage(NO_PAGE))

    def _enqueue(self, entry: Entry, parent: Parent) -> None:
        st = self.state
        if st.headless:
            self._not_shown([entry], parent)
            self._ensure(parent, None)
            return
        waiting = st.outbox.waiting.get(entry.address) if entry.address is not None else None
        lost = None if waiting is None else waiting.value  # what a merge replaces
        merged = st.outbox.put(entry)
        if merged is not None:
            self.log.debug(
                "connection.value_merged",
                address=entry.address,
                program_id=entry.program_id,
                queued=len(st.outbox.pending),
                value=lost,
            )
            if entry.reply is not None:
                _chain(merged, entry)
        if st.outbox.over_limit():
            self._dropped(st.outbox.trim(), f"more than {st.outbox.limit} values waiting")
        self._pump(parent)
        self._ensure(parent, None)

    # -------------------------------------------------------------------------- sending

    def _pump(self, parent: Parent) -> None:
        """Send what the window, the rate and the link allow; settle markers whose turn came."""
        st = self.state
        outbox = st.outbox
        outbox.take(0)  # markers at the head need no room
        while st.opened and outbox.pending and outbox.room() > 0:
            now = self.clock.now()
            if not st.bucket.take(now):
                if not st.flush_scheduled:
                    st.flush_scheduled = True
                    self.ctx.scheduler.call_later(st.bucket.wait(now), self.slot, FlushDue())
                break
            self._publish_entries(outbox.take(outbox.room()), parent)
            outbox.take(0)
        settled = outbox.settle() if st.concurrent else outbox.settle_sent()
        for marker in settled:
            self._answer_sync(marker)
        if outbox.numbered and st.ack_timer is None and st.concurrent:
            self._arm_ack_timer()

    def handle_FlushDue(self, m: FlushDue) -> None:
        self.state.flush_scheduled = False
        self._pump(None)

    def _publish_entries(self, entries: list[Entry], parent: Parent) -> None:
        if not entries:
            return
        st = self.state
        if len(entries) == 1:
            data = entries[0].payload()
            data["seq"] = entries[0].seq
        else:
            data = {"seq": entries[0].seq, "batch": [e.payload() for e in entries]}
        now = self.clock.now()
        for entry in entries:  # a round trip is measured only on values sent once
            entry.sends += 1
            entry.sent_at = now if entry.sends == 1 else None
        try:
            parent = entries[0].parent or parent or st.program_parent
            self.publisher.comm_msg(st.comm_id or "", data, parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            # The entries stay in flight: the ack timer sends them again.
            self.log.error(
                "connection.publish_failed",
                what="values",
                comm_id=st.comm_id,
                count=len(entries),
                first_seq=entries[0].seq,
                error=repr(error),
            )
            return
        for entry in entries:
            self.log.debug(
                "connection.sent",
                address=entry.address,
                comm_id=st.comm_id,
                program_id=entry.program_id,
                seq=entry.seq,
            )

    def _resend(self, why: str) -> None:
        st = self.state
        unacked = st.outbox.unacked()
        if not unacked or not st.opened:
            return
        st.resent += len(unacked)
        self.log.info(
            "connection.resent",
            reason=why,
            count=len(unacked),
            first_seq=unacked[0].seq,
            comm_id=st.comm_id,
        )
        self._publish_entries(unacked, None)

    # ------------------------------------------------------------------------------ acks

    def _on_ack(self, value: Any, comm_id: str, msg_id: str | None) -> None:
        st = self.state
        if isinstance(value, bool) or not isinstance(value, int):
            self.log.warning(
                "connection.msg_dropped",
                reason=f"#ack value {value!r} is not a number",
                comm_id=comm_id,
                msg_id=msg_id,
                address="#ack",
            )
            return
        before = st.outbox.acked
        settled = st.outbox.ack(value)
        if st.outbox.acked > before:
            last = settled.acked[-1] if settled.acked else None
            if last is not None and last.sent_at is not None:
                st.ack_rtts.append(self.clock.now() - last.sent_at)
            st.ack_backoff = self._ack_timeout()
            if st.ack_timer is not None:  # the clock starts again from this progress
                st.ack_timer.cancel()
                st.ack_timer = None
            self.log.debug("connection.acked", seq=st.outbox.acked, comm_id=comm_id)
        elif value == before and st.outbox.numbered and st.fast_resent != value:
            # The page acked again what it had: it saw a message skip a number (lost on the way,
            # e.g. at IOPub's high-water mark). Send again at once, once per ack value.
            st.fast_resent = value
            self._resend(f"the page acknowledged {value} again")
        self._settled(settled)
        self._pump(None)

    def _ack_timeout(self) -> float:
        """How long values may wait for their ack before they are sent again: at least
        `flow.ack_timeout`, twice the slowest recent ack round trip, at most the ceiling."""
        slowest = max(self.state.ack_rtts, default=0.0)
        return min(self.ack_timeout_ceiling, max(self.ack_timeout, 2 * slowest))

    def _settled(self, settled: Settled) -> None:
        for entry in settled.acked:
            if entry.reply is not None:
                entry.reply.resolve(True)
        for marker in settled.markers:
            self._answer_sync(marker)

    def _arm_ack_timer(self) -> None:
        st = self.state
        st.ack_generation += 1
        st.ack_timer = self.ctx.scheduler.call_later(
            st.ack_backoff, self.slot, AckOverdue(st.ack_generation, st.outbox.acked)
        )

    def handle_AckOverdue(self, m: AckOverdue) -> None:
        st = self.state
        if m.generation != st.ack_generation:
            return
        st.ack_timer = None
        if not st.outbox.numbered:
            return
        if st.outbox.acked == m.acked and st.opened:
            self._resend(f"nothing acknowledged for {st.ack_backoff} s")
            st.ack_backoff = min(self.ack_timeout_ceiling, st.ack_backoff * 2)
            self._ensure(None, None)  # a page that stays silent is probed, and found dead
        self._arm_ack_timer()

    # ----------------------------------------------------------------------------- drops

    def _arm_expiry(self) -> None:
        st = self.state
        if st.expiry_timer is not None or st.opened:
            return
        oldest = st.outbox.oldest()
        if oldest is None:
            return
        delay = max(MIN_DELAY, oldest + self.queue_max_age - self.clock.now())
        st.expiry_timer = self.ctx.scheduler.call_later(delay, self.slot, QueueExpiry())

    def handle_QueueExpiry(self, m: QueueExpiry) -> None:
        st = self.state
        st.expiry_timer = None
        if st.opened:
            return
        expired = st.outbox.expire(self.clock.now(), self.queue_max_age)
        self._dropped(expired, f"no page for {self.queue_max_age} s")
        self._arm_expiry()

    def _dropped(self, settled: Settled, reason: str) -> None:
        for (program_id, address), count in by_address(settled.dropped).items():
            self.log.warning(
                "connection.values_dropped",
                reason=reason,
                address=address,
                program_id=program_id,
                count=count,
            )
        error = FrontEndUnavailable(f"dropped: {reason}")
        for entry in settled.dropped:
            if entry.reply is not None:
                entry.reply.fail(error)
            if entry.kind == READ and entry.address is not None:  # the program waits for it:
                # answered at once, as the page answers a read it cannot (issue 15)
                failed = f"read request dropped before the page saw it: {reason}"
                self.log.warning(
                    "connection.read_dropped",
                    address=entry.address,
                    program_id=entry.program_id,
                    reason=reason,
                )
                self.router.tell(FrontEndValue(entry.address, None, "", entry.parent, None, failed))
        self._settled(settled)
        for marker in self.state.outbox.settle():
            self._answer_sync(marker)

    def _answer_sync(self, marker: Entry, error: str | None = None) -> None:
        assert marker.program_id is not None and marker.sync_id is not None
        if error is None and marker.lost and not self.state.headless:
            error = f"{describe(marker.lost)} sent before this sync were dropped, never shown"
        self.program.tell(SyncDone(marker.program_id, marker.sync_id, error))

    def _fail_syncs(self, error: str) -> None:
        """An install failed: every sync still waiting fails (its values stay queued)."""
        outbox = self.state.outbox
        markers = outbox.take_markers()
        waiting = len(outbox.pending) + outbox.numbered
        for marker in markers:
            self._answer_sync(marker, f"{error}; {waiting} values are still held for the page")

    # -------------------------------------------------------------------------- headless

    def _go_headless(self, why: str) -> None:
        st = self.state
        if st.headless:
            return
        st.headless = True
        self.program.tell(NoPage(NO_PAGE))
        settled = st.outbox.drop_all()
        self.log.warning("connection.headless", reason=why, not_shown=len(settled.dropped))
        self._not_shown(settled.dropped, st.last_parent)
        for marker in settled.markers:
            self._answer_sync(marker)

    def _not_shown(self, entries: Iterable[Entry], parent: Parent) -> None:
        st = self.state
        entries = list(entries)
        st.not_shown += sum(1 for e in entries if e.kind == VALUE)
        for entry in entries:
            if entry.reply is not None:
                entry.reply.resolve(False)
        if entries:
            self.log.debug("connection.not_shown", count=len(entries), total=st.not_shown)
        if not st.warned_headless:
            st.warned_headless = True
            try:
                self.publisher.stream("stderr", HEADLESS_WARNING, parent or st.program_parent)
            except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
                self.log.error(
                    "connection.publish_failed", what="headless warning", error=repr(error)
                )


def _chain(into: Entry, newer: Entry) -> None:
    """A merged value's reply: the older one is settled (superseded), the newer one waits."""
    if into.reply is not None:
        into.reply.resolve(True)
    into.reply = newer.reply
