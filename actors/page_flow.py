"""The Connection's traffic toward the page's windows: numbering, window, batches, acks,
resends, drops, syncs over every window, reads, relays between windows, the snapshot a new
window gets, and headless runs (docs/protocol.md, "Flow control", "Windows" and "sync").

A mixin of the Connection actor (actors/connection.py), which owns the link's lifecycle; this
half owns each window's `PageOutbox`, the one waiting while no window is open, and the timers
that move them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from commrouter.router.errors import FrontEndUnavailable
from commrouter.router.messages import (
    AckOverdue,
    DrainDue,
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
from commrouter.router.page_outbox import (
    READ,
    SYNC,
    VALUE,
    Entry,
    PageOutbox,
    Settled,
    by_address,
    describe,
)
from commrouter.router.page_window import SyncTrack, Window
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
    """Everything that leaves for the page's windows, and what comes back (acks)."""

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
        self.state.reads.pop(m.address, None)  # a new read asks again from the start
        self._enqueue(entry, m.parent)

    def handle_ProgramSync(self, m: ProgramSync) -> None:
        st = self.state
        marker = Entry(SYNC, program_id=m.program_id, sync_id=m.sync_id)
        if st.headless:
            self._answer_sync(marker)
            return
        outboxes = self._outboxes()
        st.syncs[(m.program_id, m.sync_id)] = SyncTrack(len(outboxes))
        for outbox in outboxes:
            outbox.put(marker if outbox is outboxes[0] else copy_entry(marker))
        self._pump(None)

    def handle_ProgramContext(self, m: ProgramContext) -> None:
        self.state.program_id, self.state.program_parent = m.program_id, m.parent
        if m.program_id is not None and self.state.headless:
            self.program.tell(NoPage(NO_PAGE))

    def _outboxes(self) -> list[PageOutbox]:
        """Where something owed to the page goes: every open window's outbox, or while none is
        open, the outbox the next window takes."""
        st = self.state
        if st.windows:
            return [w.outbox for w in st.windows.values()]
        if st.parked is None:
            st.parked = self._new_outbox()
        return [st.parked]

    def _enqueue(self, entry: Entry, parent: Parent) -> None:
        st = self.state
        st.origins += 1
        entry.origin = st.origins
        if entry.kind == VALUE and not entry.stream:
            assert entry.address is not None
            st.last_values.record(entry.address, entry.value, entry.origin)
        if st.headless:
            self._not_shown([entry], parent)
            self._ensure(parent, None)
            return
        if entry.kind == READ:
            self._put(self._read_outbox(), entry)
        else:
            outboxes = self._outboxes()
            for outbox in outboxes:
                self._put(outbox, entry if outbox is outboxes[0] else copy_entry(entry))
        if not self._drain_first(entry):
            self._pump(parent)
        self._ensure(parent, None)

    def _drain_first(self, entry: Entry) -> bool:
        """Drain batching: True if `entry` waits to go out with what the Connection handles
        before `DrainDue` comes (told behind its inbox in real time, once the actors are quiet
        in virtual time). Only stream values wait so (they never merge: the page receives the
        same values in the same order, in fewer messages), and only while everything waiting
        fits in every window's free room (nothing waits for room it has)."""
        st = self.state
        if not entry.stream or not st.windows or not self.ctx.settings.flow.drain_batching:
            return False
        for window in st.windows.values():
            outbox = window.outbox
            if len(outbox.pending) >= outbox.room():
                return False
        if st.drain_scheduled:
            return True
        if not self.tell_self_when_drained(DrainDue()):
            return False  # nothing queued: publish at once
        st.drain_scheduled = True
        return True

    def handle_DrainDue(self, m: DrainDue) -> None:
        self.state.drain_scheduled = False
        self._pump(None)

    def _put(self, outbox: PageOutbox, entry: Entry) -> None:
        waiting = outbox.waiting.get(entry.address) if entry.address is not None else None
        lost = None if waiting is None else (waiting.value, waiting.origin)  # what a merge replaces
        merged = outbox.put(entry)
        if merged is not None and lost is not None:
            self.state.merged += 1
            self.log.debug(
                "connection.value_merged",
                address=entry.address,
                program_id=entry.program_id,
                queued=len(outbox.pending),
                value=lost[0],
                origin=lost[1],
            )
            if entry.reply is not None:
                _chain(merged, entry)
        if outbox.over_limit():
            self._dropped(outbox.trim(), f"more than {outbox.limit} values waiting")

    # -------------------------------------------------------------------------- sending

    def _pump(self, parent: Parent) -> None:
        """Send what the windows, the rate and the links allow, one message per window in
        turn; settle markers whose turn came."""
        st = self.state
        windows = list(st.windows.values())
        for window in windows:
            window.outbox.take(0)  # markers at the head need no room
        busy = True
        while busy:
            busy = False
            for window in windows:
                outbox = window.outbox
                if not outbox.worth_sending():
                    continue
                now = self.clock.now()
                if not st.bucket.take(now):
                    if not st.flush_scheduled:
                        st.flush_scheduled = True
                        self.ctx.scheduler.call_later(st.bucket.wait(now), self.slot, FlushDue())
                    busy = False
                    break
                self._publish_entries(window, outbox.take(outbox.room()), parent)
                outbox.take(0)
                busy = True
        for window in windows:
            outbox = window.outbox
            for marker in outbox.settle() if window.concurrent else outbox.settle_sent():
                self._marker_done(marker)
            if outbox.numbered and window.ack_timer is None and window.concurrent:
                self._arm_ack_timer(window)
        if st.parked is not None:
            for marker in st.parked.settle():  # what was before them was dropped
                self._marker_done(marker)

    def handle_FlushDue(self, m: FlushDue) -> None:
        self.state.flush_scheduled = False
        self._pump(None)

    def _publish_entries(self, window: Window, entries: list[Entry], parent: Parent) -> None:
        if not entries:
            return
        if len(entries) == 1:
            data = entries[0].payload()
            data["seq"] = entries[0].seq
        else:
            data = {"seq": entries[0].seq, "batch": [e.payload() for e in entries]}
        now = self.clock.now()
        for entry in entries:  # a round trip is measured only on values sent once
            entry.sends += 1
            entry.sent_at = now if entry.sends == 1 else None
        comm_id = window.comm_id
        try:
            parent = entries[0].parent or parent or self.state.program_parent
            self.publisher.comm_msg(comm_id, data, parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            # The entries stay in flight: the ack timer sends them again.
            self.log.error(
                "connection.publish_failed",
                what="values",
                comm_id=comm_id,
                count=len(entries),
                first_seq=entries[0].seq,
                error=repr(error),
            )
            return
        for entry in entries:
            self.log.debug(
                "connection.sent",
                address=entry.address,
                comm_id=comm_id,
                program_id=entry.program_id,
                seq=entry.seq,
                origin=entry.origin,
            )

    def _resend(self, window: Window, why: str) -> None:
        unacked = window.outbox.unacked()
        if not unacked:
            return
        self.state.resent += len(unacked)
        self.log.info(
            "connection.resent",
            reason=why,
            count=len(unacked),
            first_seq=unacked[0].seq,
            comm_id=window.comm_id,
        )
        self._publish_entries(window, unacked, None)

    # ------------------------------------------------------------------------------ acks

    def _on_ack(self, window: Window, value: Any, msg_id: str | None, gap: bool) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.log.warning(
                "connection.msg_dropped",
                reason=f"#ack value {value!r} is not a number",
                comm_id=window.comm_id,
                msg_id=msg_id,
                address="#ack",
            )
            return
        outbox = window.outbox
        before = outbox.acked
        settled = outbox.ack(value)
        if outbox.acked > before:
            last = settled.acked[-1] if settled.acked else None
            if last is not None and last.sent_at is not None:
                window.ack_rtts.append(self.clock.now() - last.sent_at)
            window.ack_backoff = self._ack_timeout(window)
            if window.ack_timer is not None:  # the clock starts again from this progress
                window.ack_timer.cancel()
                window.ack_timer = None
            self.log.debug("connection.acked", seq=outbox.acked, comm_id=window.comm_id)
        elif gap and value == before and outbox.numbered and window.fast_resent != value:
            # The page saw a message skip a number (lost on the way, e.g. at IOPub's high-water
            # mark) and says so (`gap`). Send again at once, once per ack value. A repeated ack
            # without `gap` is the page taking a resend it already had: sending again on it
            # would make every resend cause the next.
            window.fast_resent = value
            self._resend(window, f"the page acknowledged {value} again")
        self._settled(settled)
        self._pump(None)

    def _ack_timeout(self, window: Window) -> float:
        """How long values may wait for their ack before they are sent again: at least
        `flow.ack_timeout`, twice the slowest recent ack round trip, at most the ceiling."""
        slowest = max(window.ack_rtts, default=0.0)
        return min(self.ack_timeout_ceiling, max(self.ack_timeout, 2 * slowest))

    def _settled(self, settled: Settled) -> None:
        for entry in settled.acked:
            if entry.reply is not None:
                entry.reply.resolve(True)
        for marker in settled.markers:
            self._marker_done(marker)

    def _arm_ack_timer(self, window: Window) -> None:
        window.ack_generation += 1
        window.ack_timer = self.ctx.scheduler.call_later(
            window.ack_backoff,
            self.slot,
            AckOverdue(window.comm_id, window.ack_generation, window.outbox.acked),
        )

    def handle_AckOverdue(self, m: AckOverdue) -> None:
        window = self.state.windows.get(m.comm_id)
        if window is None or m.generation != window.ack_generation:
            return
        window.ack_timer = None
        if not window.outbox.numbered:
            return
        if window.outbox.acked == m.acked:
            self._resend(window, f"nothing acknowledged for {window.ack_backoff} s")
            window.ack_backoff = min(self.ack_timeout_ceiling, window.ack_backoff * 2)
            if not window.probing and not self._fresh(window):
                self._probe(window, None)  # a window that stays silent is found dead
        self._arm_ack_timer(window)

    # ----------------------------------------------------------------------------- drops

    def _arm_expiry(self) -> None:
        st = self.state
        if st.expiry_timer is not None or st.windows or st.parked is None:
            return
        oldest = st.parked.oldest()
        if oldest is None:
            return
        delay = max(MIN_DELAY, oldest + self.queue_max_age - self.clock.now())
        st.expiry_timer = self.ctx.scheduler.call_later(delay, self.slot, QueueExpiry())

    def handle_QueueExpiry(self, m: QueueExpiry) -> None:
        st = self.state
        st.expiry_timer = None
        if st.windows or st.parked is None:
            return
        expired = st.parked.expire(self.clock.now(), self.queue_max_age)
        self._dropped(expired, f"no page for {self.queue_max_age} s")
        for marker in st.parked.settle():
            self._marker_done(marker)
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
        self.state.dropped += sum(1 for e in settled.dropped if e.kind == VALUE)
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

    # --------------------------------------------------------------------------- syncs

    def _marker_done(self, marker: Entry, error: str | None = None) -> None:
        """One outbox's marker of a sync settled: the sync is answered with the last one."""
        st = self.state
        assert marker.program_id is not None and marker.sync_id is not None
        key = (marker.program_id, marker.sync_id)
        track = st.syncs.get(key)
        if track is None:
            self._answer_sync(marker, error)
            return
        track.remaining -= 1
        if marker.lost:
            track.lost.update(marker.lost)
        track.error = track.error or error
        if track.remaining > 0:
            return
        del st.syncs[key]
        marker.lost = track.lost or None
        self._answer_sync(marker, track.error)

    def _answer_sync(self, marker: Entry, error: str | None = None) -> None:
        assert marker.program_id is not None and marker.sync_id is not None
        if error is None and marker.lost and not self.state.headless:
            error = f"{describe(marker.lost)} sent before this sync were dropped, never shown"
        self.program.tell(SyncDone(marker.program_id, marker.sync_id, error))

    def _fail_syncs(self, error: str) -> None:
        """An install failed (no window is open): every sync still waiting fails (its values
        stay queued)."""
        outbox = self.state.parked
        if outbox is None:
            return
        markers = outbox.take_markers()
        waiting = len(outbox.pending) + outbox.numbered
        for marker in markers:
            self._marker_done(marker, f"{error}; {waiting} values are still held for the page")

    # -------------------------------------------------------------------------- headless

    def _go_headless(self, why: str) -> None:
        st = self.state
        if st.headless:
            return
        st.headless = True
        self.program.tell(NoPage(NO_PAGE))
        settled = st.parked.drop_all() if st.parked is not None else Settled()
        self.log.warning("connection.headless", reason=why, not_shown=len(settled.dropped))
        self._not_shown(settled.dropped, st.last_parent)
        for marker in settled.markers:
            self._marker_done(marker)

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


def copy_entry(entry: Entry) -> Entry:
    """The same value, read request or marker for another window (numbered there anew)."""
    copy = Entry(
        entry.kind,
        entry.address,
        entry.value,
        entry.program_id,
        entry.stream,
        entry.reply,
        entry.queued_at,
        sync_id=entry.sync_id,
    )
    copy.parent, copy.origin = entry.parent, entry.origin
    return copy


def _chain(into: Entry, newer: Entry) -> None:
    """A merged value's reply: the older one is settled (superseded), the newer one waits."""
    if into.reply is not None:
        into.reply.resolve(True)
    into.reply = newer.reply
